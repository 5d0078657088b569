// `semiseg predict` on a DICOM series folder with a 3-D checkpoint: a SEG that pydicom reads (named segments,
// references to the source slices) and a NIfTI on the series' grid, both holding the label map the library's
// Segmenter gives; the choice of series and the DICOM-only output are usage errors (exit 2, one line).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, listDicomSeries, manualSeed, nets, readDicomSeg, readDicomSeries, readNifti, saveCheckpoint, Segmenter, type Tensor } from '../lib/index.js';
import { dicomDir, havePydicom, SERIES } from './helpers/dicom.js';
import { runPython } from './helpers/python.js';
import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });
let dir = '';
let checkpoint = '';

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-dicom-cli-'));
  checkpoint = join(dir, 'vnet.ckpt');
  manualSeed(11);
  const net = nets.VNet3D({ nFilters: 4, outChannels: 3, hasDropout: false });
  await saveCheckpoint(checkpoint, { network: net, iteration: 0, extra: { config: { size: [32, 32, 16], classes: 3, method: 'supervised' } } });
  net.dispose();
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const values = (t: Tensor) => Array.from(t.toArray() as BigInt64Array, Number);

test.serial('predict <series folder> -o seg.dcm / labels.nii.gz writes the Segmenter label map as a SEG and a NIfTI', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const folder = join(dicomDir, SERIES[0]);
  const segPath = join(dir, 'seg.dcm');
  const r = run('predict', folder, '--checkpoint', checkpoint, '-o', segPath, '--segment-names', 'Anterior,Posterior');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /read: .*13_HCropVolume \(DICOM MR 'HippoCrop', 32 slices of 51 x 35, spacing 1 x 1 x 1 mm\)/);
  t.regex(r.stdout, /written: .*seg\.dcm \(35x51x32, classes /);

  // the library on the same series
  const img = await readDicomSeries(folder);
  const seg = await Segmenter.load(checkpoint);
  const expected = await seg.segmentImage(img);
  seg.dispose();
  const back = await readDicomSeg(segPath, img);
  t.deepEqual(values(back.labels), values(expected), 'the SEG holds the label map');
  t.deepEqual(back.segments.map((s) => s.label), ['Anterior', 'Posterior']);
  if (havePydicom) {
    const ref = JSON.parse(runPython('dicom_reference.py', 'seg', segPath)) as { sopClass: string; referencedSeries: string; segments: Array<{ label: string }>; frames: Array<{ sop: string; dimension: number[] }> };
    t.is(ref.sopClass, '1.2.840.10008.5.1.4.1.1.66.4');
    t.is(ref.referencedSeries, img.dicom.seriesInstanceUID);
    t.deepEqual(ref.segments.map((s) => s.label), ['Anterior', 'Posterior']);
    t.true(ref.frames.length > 0);
    t.true(ref.frames.every((f) => f.sop === img.dicom.slices[f.dimension[1] - 1].sopInstanceUID));
  }

  const niiPath = join(dir, 'labels.nii.gz');
  const n = run('predict', folder, '--checkpoint', checkpoint, '-o', niiPath);
  t.is(n.status, 0, n.stderr);
  const nii = await readNifti(niiPath);
  t.deepEqual(nii.data.shape, img.data.shape);
  t.deepEqual(values(nii.data), values(expected));
  t.true(nii.affine.every((row, i) => row.every((x, j) => Math.abs(x - img.affine[i][j]) < 1e-5)));
  t.true(readFileSync(niiPath).length > 0);
  dispose([img.data, expected, back.labels, nii.data]);
});

test.serial('predict: several series need --series; DICOM SEG output needs DICOM input', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const study = join(dicomDir, 'Study1');
  const several = run('predict', study, '--checkpoint', checkpoint, '-o', join(dir, 'x.dcm'));
  t.is(several.status, 2);
  t.regex(several.stderr, /^semiseg: predict: '.*Study1' holds 2 series; choose one with --series <uid>: .*'T1post', 22 files.*'HippoCrop', 32 files\)\n$/);
  const hippo = (await listDicomSeries(study)).find((s) => s.seriesDescription === 'HippoCrop')!;
  const chosen = run('predict', study, '--series', hippo.seriesInstanceUID, '--checkpoint', checkpoint, '-o', join(dir, 'chosen.dcm'));
  t.is(chosen.status, 0, chosen.stderr);
  const unknown = run('predict', study, '--series', '1.2.3', '--checkpoint', checkpoint, '-o', join(dir, 'y.dcm'));
  t.is(unknown.status, 2);
  t.regex(unknown.stderr, /--series: '.*Study1' has no series 1\.2\.3; it holds /);
  const nifti = run('predict', join(dir, 'labels.nii.gz'), '--checkpoint', checkpoint, '-o', join(dir, 'z.dcm'));
  t.is(nifti.status, 2);
  t.regex(nifti.stderr, /--output: a DICOM SEG \(\.dcm\) references the DICOM series it segments, and '.*labels\.nii\.gz' is not one \(write \.nii\.gz instead\)/);
  const names = run('predict', join(dicomDir, SERIES[0]), '--checkpoint', checkpoint, '-o', join(dir, 'w.dcm'), '--segment-names', 'A,,B');
  t.is(names.status, 2);
  t.regex(names.stderr, /--segment-names: expected comma-separated names of labels 1, 2, \.\.\., got 'A,,B'/);
  const bad = run('predict', join(dicomDir, SERIES[0]), '--checkpoint', checkpoint, '-o', join(dir, 'v.png'));
  t.is(bad.status, 2);
  t.regex(bad.stderr, /--output: '.*v\.png' must end in \.nii or \.nii\.gz \(a NIfTI label map\) or \.dcm \(a DICOM SEG\)/);
});
