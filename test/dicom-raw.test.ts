// DICOM files without the 128-byte preamble and 'DICM' marker (raw data sets, as older PACS export them and
// as pydicom reads them with force=True): the same series written by pydicom with and without preambles
// reads to the same voxels and affine, in folders whatever the file names; other files are still refused.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, readDicomSeries, type DicomImage } from '../lib/index.js';
import { dicomDir, SERIES } from './helpers/dicom.js';
import { runPythonCode } from './helpers/python.js';
import { referencePython } from './helpers/reference.js';

const havePydicom = Boolean(referencePython) && spawnSync(referencePython!, ['-c', 'import pydicom, numpy'], { stdio: 'ignore' }).status === 0;
const skip = !dicomDir ? 'no DICOM data (SEMISEG_DATA or ../shared/data)' : !havePydicom ? 'no pydicom in the reference python' : '';

const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';

let dir = '';
test.before(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'semiseg-dicom-raw-'));
  // each variant: no preamble; 'implicit' and 'explicit' without a file meta group either (the transfer
  // syntax is then guessed from the first element), 'meta' with its meta group (explicit VR) first;
  // file names without the .dcm extension. pydicom (force=True) reads every file back to the same pixels.
  const out = runPythonCode(`
import glob, os, numpy as np, pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
src, dst = ${JSON.stringify(join(dicomDir ?? '', SERIES[0]))}, ${JSON.stringify(dir)}
for k, f in enumerate(sorted(glob.glob(f'{src}/*.dcm'))):
    for kind in ('implicit', 'explicit', 'meta'):
        os.makedirs(f'{dst}/{kind}', exist_ok=True)
        ds = pydicom.dcmread(f)
        ds.preamble = None
        path = f'{dst}/{kind}/IM{k:04d}'
        if kind == 'meta':
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=True)
        else:
            del ds.file_meta
            pydicom.dcmwrite(path, ds, implicit_vr=kind == 'implicit', little_endian=True)
        back = pydicom.dcmread(path, force=True)
        assert back.original_encoding == (kind == 'implicit', True), (path, back.original_encoding)
        if kind != 'meta':
            back.file_meta = pydicom.dataset.FileMetaDataset()
            back.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if kind == 'implicit' else ExplicitVRLittleEndian
        assert np.array_equal(back.pixel_array, pydicom.dcmread(f).pixel_array), path
print('ok')
`);
  if (out.trim() !== 'ok') throw new Error(`writing the raw series failed: ${out}`);
});
test.after.always(() => (dir && !process.env.SEMISEG_KEEP ? rmSync(dir, { recursive: true, force: true }) : undefined));

const values = (im: DicomImage) => Array.from(im.data.toArray() as Float32Array);

test.serial('a series without preambles reads to the same voxels and affine as with them (implicit, explicit, with a meta group)', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const ref = await readDicomSeries(join(dicomDir!, SERIES[0]));
  const want: Record<string, [number[], string]> = { implicit: [[0x08, 0x00], IMPLICIT], explicit: [[0x08, 0x00], EXPLICIT], meta: [[0x02, 0x00], EXPLICIT] };
  for (const [kind, [start, syntax]] of Object.entries(want)) {
    const folder = join(dir, kind);
    const names = readdirSync(folder);
    t.is(names.length, 32, kind);
    const first = readFileSync(join(folder, names[0]));
    t.deepEqual([first[0], first[1]], start, `${kind}: the file starts with its first element`);
    t.not(first.subarray(128, 132).toString('latin1'), 'DICM', `${kind}: no preamble`);
    const im = await readDicomSeries(folder);
    t.deepEqual(im.data.shape, ref.data.shape, kind);
    t.deepEqual(values(im), values(ref), `${kind}: voxels`);
    t.deepEqual(im.affine, ref.affine, `${kind}: affine`);
    t.deepEqual(im.spacing, ref.spacing, `${kind}: spacing`);
    t.is(im.dicom.transferSyntaxUID, syntax, kind);
    t.is(im.dicom.seriesInstanceUID, ref.dicom.seriesInstanceUID, kind);
    dispose(im.data);
  }
  // a list of raw files reads as the folder does
  const files = readdirSync(join(dir, 'implicit')).map((n) => join(dir, 'implicit', n));
  const listed = await readDicomSeries(files);
  t.deepEqual(values(listed), values(ref));
  dispose([listed.data, ref.data]);
});

test.serial('files that are not DICOM are still skipped in folders, or refused with the DICM message', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const folder = join(dir, 'implicit');
  writeFileSync(join(folder, 'README'), 'exported by an old PACS\n');
  writeFileSync(join(folder, 'zeros'), Buffer.alloc(300));
  writeFileSync(join(folder, 'fake'), Buffer.from([0x08, 0x00, 0x05, 0x00, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4])); // a length past the end
  const im = await readDicomSeries(folder);
  t.is(im.data.shape[2], 32, 'the other files are skipped');
  dispose(im.data);
  for (const [name, message] of [
    ['README', /'.*README' is not a DICOM file \(no 'DICM' marker at byte 128; it has 24 bytes\)$/],
    ['zeros', /'.*zeros' is not a DICOM file \(no 'DICM' marker at byte 128\)$/],
    ['fake', /'.*fake' is not a DICOM file \(no 'DICM' marker at byte 128; it has 12 bytes\)$/],
  ] as const) {
    await t.throwsAsync(readDicomSeries([join(folder, name)]), { message: message }, name);
  }
});
