// A DICOM SEG whose frames carry plane positions but no references to the source images is placed by
// those positions, also on a gantry-tilted series (slices that step off the normal of their planes).
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decodeDicomSeg, dispose, encodeDicomSeg, readDicomSeries, tidy } from '../lib/index.js';
import { copySeries, dicomDir, editDicom, SERIES } from './helpers/dicom.js';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-seg-tilt-'));
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const dot = (a: number[], b: number[]) => a.reduce((s, x, n) => s + x * b[n], 0);

test('SEG frames without source references are placed by their plane positions, on a tilted series too', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data (SEMISEG_DATA or ../shared/data)');
  for (const tilt of [0, 0.25]) {
    const folder = join(dir, `tilt-${tilt}`);
    copySeries(join(dicomDir, SERIES[0]), folder);
    const plain = await readDicomSeries(folder);
    const iop = plain.dicom.imageOrientationPatient;
    const [row, col] = [iop.slice(0, 3), iop.slice(3, 6)];
    const normal = [row[1] * col[2] - row[2] * col[1], row[2] * col[0] - row[0] * col[2], row[0] * col[1] - row[1] * col[0]];
    const d0 = dot(plain.dicom.slices[0].position, normal);
    plain.data.dispose();
    // shift every slice along its rows in proportion to its distance along the normal: a tilted gantry
    for (const name of readdirSync(folder)) {
      editDicom(join(folder, name), (_, ds) => {
        const p = (ds.ImagePositionPatient as number[]).map(Number);
        const along = dot(p, normal) - d0;
        ds.ImagePositionPatient = p.map((x, n) => x + tilt * along * row[n]);
      });
    }
    const img = await readDicomSeries(folder);
    const [, , K] = img.data.shape;
    const normalGap = (dot(img.dicom.slices[K - 1].position, normal) - d0) / (K - 1);
    t.true(Math.abs(img.spacing[2] - Math.abs(normalGap) * Math.hypot(1, tilt)) < 1e-3, `slice step ${img.spacing[2]} vs ${normalGap}`);
    const labels = tidy(() => img.data.gt(img.data.mean()).to('int64').add(img.data.gt(img.data.mean().mul(2)).to('int64')));
    const segPath = join(dir, `seg-${tilt}.dcm`);
    writeFileSync(segPath, encodeDicomSeg(labels, img));
    editDicom(segPath, (_, ds) => {
      for (const g of ds.PerFrameFunctionalGroupsSequence as Record<string, unknown>[]) delete g.DerivationImageSequence;
    });
    const back = decodeDicomSeg(readFileSync(segPath), img, 'seg.dcm');
    t.deepEqual(back.labels.shape, labels.shape);
    t.is(tidy(() => Number(back.labels.ne(labels).sum().item())), 0, `tilt ${tilt}: labels placed by plane positions`);
    dispose([img.data, labels, back.labels]);
  }
});
