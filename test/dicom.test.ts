// DICOM in, DICOM SEG out, against pydicom / nibabel (benchmarks/reference/dicom_reference.py):
// - the three hippocampus series and the T1 series read into the volume pydicom's stacked, rescaled pixel
//   arrays make in position order, with the spacing and affine the positions and orientation give (and
//   nibabel's own DICOM geometry);
// - the same voxels through ten transfer syntaxes (compressed here by pydicom / imagecodecs, not
//   by the decoders under test), per-slice rescale, and an enhanced multi-frame file;
// - a SEG that pydicom reads back (SOP class, segments, per-frame source references, bits) and that decodes
//   to the label map exactly; NIfTI output of a DICOM series with its affine (sform and qform);
// - damaged files, mixed series, missing pixel data, uneven spacing or orientation, an unsupported transfer
//   syntax: one-line errors naming the file.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  decodeDicomSeg,
  dispose,
  encodeDicomSeg,
  listDicomSeries,
  niftiReference,
  parseDicomSeries,
  readDicomSeg,
  readDicomSeries,
  SEG_SOP_CLASS_UID,
  tensor,
  tidy,
  writeDicomSeg,
  writeNiftiLabels,
  type DicomImage,
  type Tensor,
} from '../lib/index.js';
import { copySeries, dicomDir, editDicom, havePydicom, SERIES } from './helpers/dicom.js';
import { runPython } from './helpers/python.js';

const skip = !dicomDir ? 'no DICOM data (SEMISEG_DATA or ../shared/data)' : !havePydicom ? 'no pydicom / imagecodecs in the reference python' : '';
let dir = '';
/** Reference volumes by tag, and the variants' info, made by one python process in test.before. */
const refs = new Map<string, VolumeRef>();
let enhancedInfo: { sop: string; frames: Array<{ position_index: number; slope: number; intercept: number }> };
const KINDS: Record<string, string> = {
  implicit: '1.2.840.10008.1.2',
  deflated: '1.2.840.10008.1.2.1.99',
  bigendian: '1.2.840.10008.1.2.2',
  rle: '1.2.840.10008.1.2.5',
  'jpeg-lossless': '1.2.840.10008.1.2.4.70',
  'jpeg-lossless-p3': '1.2.840.10008.1.2.4.57',
  jpegls: '1.2.840.10008.1.2.4.80',
  j2k: '1.2.840.10008.1.2.4.90',
  htj2k: '1.2.840.10008.1.2.4.201',
  jpegxl: '1.2.840.10008.1.2.4.110',
};

/** Runs several reference commands in one python process; returns what each printed. */
function batch(commands: string[][]): string[] {
  const spec = join(dir, `batch-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(spec, JSON.stringify(commands));
  return JSON.parse(runPython('dicom_reference.py', 'batch', spec)) as string[];
}

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-dicom-'));
  if (skip) return;
  const commands: string[][] = [];
  const tags: Array<[string, string]> = [];
  const volume = (tag: string, folder: string) => {
    commands.push(['volume', folder, join(dir, `${tag}.f32`)]);
    tags.push([tag, join(dir, `${tag}.f32`)]);
  };
  SERIES.forEach((s, n) => volume(`series-${n}`, join(dicomDir!, s)));
  for (const kind of Object.keys(KINDS)) commands.push(['variant', join(dicomDir!, SERIES[0]), join(dir, `ts-${kind}`), kind]);
  commands.push(['variant', join(dicomDir!, SERIES[1]), join(dir, 'rescaled'), 'rescale']);
  volume('rescaled', join(dir, 'rescaled'));
  commands.push(['variant', join(dicomDir!, SERIES[0]), join(dir, 'bad-j2k'), 'j2k']);
  commands.push(['enhanced', join(dicomDir!, SERIES[2]), join(dir, 'enhanced.dcm')]);
  const out = batch(commands);
  let at = 0;
  commands.forEach((c, n) => {
    if (c[0] === 'volume') {
      const [tag, file] = tags[at++];
      const b = readFileSync(file);
      refs.set(tag, { ...(JSON.parse(out[n]) as Omit<VolumeRef, 'values'>), values: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) });
    }
    if (c[0] === 'enhanced') enhancedInfo = JSON.parse(out[n]) as typeof enhancedInfo;
  });
});
test.after.always(() => (process.env.SEMISEG_KEEP ? undefined : rmSync(dir, { recursive: true, force: true })));

interface VolumeRef {
  shape: number[];
  spacing: number[];
  affine: number[][];
  sop: string[];
  files: string[];
  nibabel_affine: number[][];
  values: Float32Array;
}


function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `at ${i}: ${a[i]} vs ${b[i]}`;
  return '';
}

/** Equal shapes and values. */
function sameValues(a: Tensor, b: Tensor): boolean {
  if (a.shape.join('x') !== b.shape.join('x')) return false;
  const x = Array.from(a.toArray() as ArrayLike<number | bigint>, Number);
  const y = Array.from(b.toArray() as ArrayLike<number | bigint>, Number);
  return firstDifference(x, y) === '';
}

const close = (a: number[][], b: number[][], tol: number) => a.every((r, i) => r.every((x, j) => Math.abs(x - b[i][j]) <= tol));

test.serial('the hippocampus and T1 series read as pydicom stacks them, with the geometry of their positions', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  for (const [n, s] of SERIES.entries()) {
    const folder = join(dicomDir!, s);
    const ref = refs.get(`series-${n}`)!;
    const img = await readDicomSeries(folder);
    t.deepEqual(img.data.shape, ref.shape, s);
    t.is(img.data.dtype, 'float32');
    t.is(firstDifference(img.data.toArray() as Float32Array, ref.values), '', `${s}: voxels equal pydicom's`);
    t.true(img.spacing.every((x, n) => Math.abs(x - ref.spacing[n]) < 1e-9), `${s}: spacing ${img.spacing} vs ${ref.spacing}`);
    t.true(close(img.affine, ref.affine, 1e-9), `${s}: affine ${JSON.stringify(img.affine)} vs ${JSON.stringify(ref.affine)}`);
    // nibabel's DICOM geometry of the first slice (nibabel.nicom) is in LPS with rows first: flipped to RAS
    // and with i and j swapped, it is ours
    const nib = ref.nibabel_affine;
    for (let r = 0; r < 3; r++) {
      const flip = r < 2 ? -1 : 1;
      t.true(Math.abs(img.affine[r][0] - flip * nib[r][1]) < 1e-6 && Math.abs(img.affine[r][1] - flip * nib[r][0]) < 1e-6, `${s}: in-plane axes, row ${r}`);
      t.true(Math.abs(img.affine[r][3] - flip * nib[r][3]) < 1e-6, `${s}: origin, row ${r}`);
    }
    t.deepEqual(img.dicom.slices.map((x) => x.sopInstanceUID), ref.sop, `${s}: slices in position order`);
    t.is(img.dicom.slices.length, ref.shape[2]);
    dispose(img.data);
  }
  // the files are named out of order: the order comes from the positions, not the names
  const ref = refs.get('series-0')!;
  t.notDeepEqual(ref.files, [...ref.files].sort(), 'file-name order differs from position order');
});

test.serial('every transfer syntax decodes to the same voxels: implicit, deflated, big endian, RLE, JPEG lossless, JPEG-LS, JPEG 2000, HTJ2K, JPEG XL', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const ref = refs.get('series-0')!;
  for (const [kind, uid] of Object.entries(KINDS)) {
    const out = join(dir, `ts-${kind}`);
    const img = await readDicomSeries(out);
    t.is(img.dicom.transferSyntaxUID, uid, kind);
    t.is(firstDifference(img.data.toArray() as Float32Array, ref.values), '', `${kind}: voxels equal the uncompressed series'`);
    t.true(close(img.affine, ref.affine, 1e-9), kind);
    dispose(img.data);
  }
});

test.serial('RescaleSlope / RescaleIntercept apply per slice, as pydicom applies them', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const ref = refs.get('rescaled')!;
  const img = await readDicomSeries(join(dir, 'rescaled'));
  t.is(firstDifference(img.data.toArray() as Float32Array, ref.values), '');
  t.true(ref.values.some((v) => v !== Math.round(v)), 'the slopes make fractional values');
  dispose(img.data);
});

test.serial('an enhanced multi-frame file: frames placed by their positions, per-frame rescale, frame references', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const ref = refs.get('series-2')!;
  const file = join(dir, 'enhanced.dcm');
  const info = enhancedInfo;
  const img = await readDicomSeries(file);
  const [I, J, K] = ref.shape;
  t.deepEqual(img.data.shape, [I, J, K]);
  const expected = new Float32Array(ref.values.length);
  const byPosition = new Map(info.frames.map((f, n) => [f.position_index, { ...f, frame: n + 1 }]));
  for (let i = 0; i < I; i++)
    for (let j = 0; j < J; j++)
      for (let k = 0; k < K; k++) {
        const f = byPosition.get(k)!;
        const at = (i * J + j) * K + k;
        expected[at] = ref.values[at] * f.slope + f.intercept;
      }
  t.is(firstDifference(img.data.toArray() as Float32Array, expected), '');
  t.true(close(img.affine, ref.affine, 1e-9));
  t.true(img.dicom.slices.every((s) => s.sopInstanceUID === info.sop));
  t.deepEqual(
    img.dicom.slices.map((s) => s.frameNumber),
    Array.from({ length: K }, (_, k) => byPosition.get(k)!.frame),
  );
  // a SEG of it references the frames
  const labels = tidy(() => img.data.gt(90).to('int64'));
  const segPath = join(dir, 'enhanced-seg.dcm');
  await writeDicomSeg(segPath, labels, img);
  const seg = JSON.parse(runPython('dicom_reference.py', 'seg', segPath)) as SegRef;
  for (const f of seg.frames) {
    const k = f.dimension[1] - 1;
    t.is(f.sop, info.sop);
    t.is(f.frameNumber, img.dicom.slices[k].frameNumber ?? null);
  }
  const back = await readDicomSeg(segPath, img);
  t.is(firstDifference(back.labels.toArray() as BigInt64Array as unknown as number[], labels.toArray() as BigInt64Array as unknown as number[]), '');
  dispose([img.data, labels, back.labels]);
});

interface SegRef {
  sopClass: string;
  modality: string;
  segmentationType: string;
  study: string;
  frameOfReference: string;
  patientID: string;
  referencedSeries: string;
  referencedInstances: number;
  orientation: number[];
  segments: Array<{ number: number; label: string; algorithmType: string; category: { value: string; scheme: string; meaning: string }; type: { value: string } }>;
  frames: Array<{ segment: number; sop: string; sopClass: string; frameNumber: number | null; position: number[]; dimension: number[] }>;
  pixels: string;
  shape: number[];
}

/** A label map with three classes, empty slices and a single-voxel island, on `img`'s grid. */
function syntheticLabels(img: DicomImage): Tensor {
  const [I, J, K] = img.data.shape;
  const values = img.data.toArray() as Float32Array;
  const out = new Int32Array(I * J * K);
  for (let i = 0; i < I; i++)
    for (let j = 0; j < J; j++)
      for (let k = 2; k < K - 3; k++) {
        const at = (i * J + j) * K + k;
        out[at] = values[at] > 110 ? 2 : values[at] > 70 ? 1 : 0;
      }
  out[(1 * J + 2) * K + K - 1] = 3;
  return tensor(out, { shape: [I, J, K], dtype: 'int64' });
}

test.serial('a SEG reads back with pydicom (SOP class, segments, per-frame references, bits) and decodes to the label map exactly', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const img = await readDicomSeries(join(dicomDir!, SERIES[1]));
  const labels = syntheticLabels(img);
  const [I, J, K] = img.data.shape;
  const segments = [
    { label: 'Anterior', type: { value: '5001000', scheme: '99TEST', meaning: 'Hippocampus anterior' } },
    { label: 'Posterior' },
    { label: 'Îlot à part', color: [0, 0, 255] as [number, number, number] },
  ];
  const path = join(dir, 'seg.dcm');
  await writeDicomSeg(path, labels, img, { segments, seriesDescription: 'hippocampus' });
  const seg = JSON.parse(runPython('dicom_reference.py', 'seg', path)) as SegRef;
  t.is(seg.sopClass, SEG_SOP_CLASS_UID);
  t.is(seg.modality, 'SEG');
  t.is(seg.segmentationType, 'BINARY');
  t.is(seg.study, img.dicom.studyInstanceUID);
  t.is(seg.frameOfReference, img.dicom.frameOfReferenceUID);
  t.is(seg.referencedSeries, img.dicom.seriesInstanceUID);
  t.is(seg.referencedInstances, K);
  t.is(seg.patientID, img.dicom.patientStudy.PatientID);
  t.deepEqual(
    seg.segments.map((s) => [s.number, s.label, s.algorithmType, s.category.meaning, s.type.value]),
    [
      [1, 'Anterior', 'AUTOMATIC', 'Anatomical Structure', '5001000'],
      [2, 'Posterior', 'AUTOMATIC', 'Anatomical Structure', '85756007'],
      [3, 'Îlot à part', 'AUTOMATIC', 'Anatomical Structure', '85756007'],
    ],
  );
  // one frame per (segment, slice) that has voxels, referencing that slice's source image
  const lab = labels.toArray() as BigInt64Array;
  const present = new Set<string>();
  for (let i = 0; i < I; i++) for (let j = 0; j < J; j++) for (let k = 0; k < K; k++) if (lab[(i * J + j) * K + k] > 0n) present.add(`${lab[(i * J + j) * K + k]},${k}`);
  t.deepEqual(seg.frames.map((f) => `${f.segment},${f.dimension[1] - 1}`).sort(), [...present].sort());
  t.true(present.size < 3 * K, 'empty frames are left out');
  const px = Buffer.from(seg.pixels, 'base64');
  t.deepEqual(seg.shape, [seg.frames.length, J, I]);
  let mismatches = 0;
  seg.frames.forEach((f, n) => {
    const k = f.dimension[1] - 1;
    t.is(f.segment, f.dimension[0]);
    t.is(f.sop, img.dicom.slices[k].sopInstanceUID);
    t.is(f.sopClass, img.dicom.slices[k].sopClassUID);
    t.deepEqual(f.position, img.dicom.slices[k].position);
    t.is(f.frameNumber, null);
    for (let j = 0; j < J; j++) for (let i = 0; i < I; i++) if (px[(n * J + j) * I + i] !== (lab[(i * J + j) * K + k] === BigInt(f.segment) ? 1 : 0)) mismatches++;
  });
  t.is(mismatches, 0, 'pydicom unpacks the frames to the label map');
  t.deepEqual(seg.orientation, img.dicom.imageOrientationPatient);

  const back = await readDicomSeg(path, img);
  t.is(firstDifference(Array.from(back.labels.toArray() as BigInt64Array, Number), Array.from(lab, Number)), '', 'SEG -> label map is exact');
  t.deepEqual(back.segments.map((s) => s.label), ['Anterior', 'Posterior', 'Îlot à part']);
  t.is(back.frames, seg.frames.length);

  // the SEG written into the series folder: the folder still reads as the image series
  const withSeg = join(dir, 'with-seg');
  copySeries(join(dicomDir!, SERIES[1]), withSeg);
  await writeDicomSeg(join(withSeg, 'seg.dcm'), labels, img);
  t.deepEqual((await listDicomSeries(withSeg)).map((s) => s.modality).sort(), ['MR', 'SEG']);
  const again = await readDicomSeries(withSeg);
  t.deepEqual(again.dicom.slices.map((s) => s.sopInstanceUID), img.dicom.slices.map((s) => s.sopInstanceUID));
  dispose(again.data);

  // every frame, empty or not: still exact
  const full = encodeDicomSeg(labels, img, { segments, omitEmptyFrames: false });
  const all = decodeDicomSeg(full, img, 'full');
  t.is(all.frames, 3 * K);
  t.is(firstDifference(Array.from(all.labels.toArray() as BigInt64Array, Number), Array.from(lab, Number)), '');
  dispose([img.data, labels, back.labels, all.labels]);
});

test.serial('a SEG of the oblique T1 round-trips, and an all-background label map still makes a valid SEG', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const img = await readDicomSeries(join(dicomDir!, SERIES[3]));
  const labels = tidy(() => img.data.gt(300).to('int64').add(img.data.gt(600).to('int64')));
  const back = decodeDicomSeg(encodeDicomSeg(labels, img), img, 't1');
  t.true(sameValues(back.labels, labels));
  const empty = tidy(() => labels.mul(0));
  const seg = encodeDicomSeg(empty, img);
  const none = decodeDicomSeg(seg, img, 'empty');
  t.is(none.frames, 1);
  t.true(sameValues(none.labels, empty));
  dispose([img.data, labels, back.labels, empty, none.labels]);
});

test.serial('NIfTI output of a DICOM series carries its affine in sform and qform', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const cases = [SERIES[3], SERIES[0]].map((s) => ({ s, path: join(dir, `labels-${s.replace(/\W/g, '_')}.nii.gz`) }));
  const written = [];
  for (const { s, path } of cases) {
    const img = await readDicomSeries(join(dicomDir!, s));
    const labels = tidy(() => img.data.gt(100).to('int64'));
    await writeNiftiLabels(path, labels, niftiReference(img, path));
    written.push({ s, path, img, labels });
  }
  const read = batch(cases.map(({ path }) => ['nifti', path, `${path}.i64`]));
  for (const [n, { s, path, img, labels }] of written.entries()) {
    const nii = JSON.parse(read[n]) as { shape: number[]; sform: number[][]; qform: number[][]; codes: number[]; zooms: number[] };
    t.deepEqual(nii.shape, img.data.shape);
    t.deepEqual(nii.codes, [1, 1]);
    t.true(close(nii.sform, img.affine, 1e-4), `${s}: sform ${JSON.stringify(nii.sform)}`);
    t.true(close(nii.qform, img.affine, 1e-4), `${s}: qform ${JSON.stringify(nii.qform)}`);
    t.true(nii.zooms.every((z, n) => Math.abs(z - img.spacing[n]) < 1e-4));
    const b = readFileSync(`${path}.i64`);
    t.is(firstDifference(Array.from(new BigInt64Array(b.buffer, b.byteOffset, b.byteLength / 8), Number), Array.from(labels.toArray() as BigInt64Array, Number)), '');
    dispose([img.data, labels]);
  }
});

test.serial('in-memory files (an upload) read as the folder does; several series are listed', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const folder = join(dicomDir, SERIES[0]);
  const files = readdirSync(folder).map((n) => ({ name: n, bytes: readFileSync(join(folder, n)) }));
  const a = await parseDicomSeries(files.reverse());
  const b = await readDicomSeries(folder);
  t.true(sameValues(a.data, b.data));
  t.deepEqual(a.affine, b.affine);
  const list = await listDicomSeries(join(dicomDir, 'Study1'));
  t.deepEqual(list.map((s) => [s.seriesDescription, s.files]).sort(), [
    ['HippoCrop', 32],
    ['T1post', 22],
  ]);
  dispose([a.data, b.data]);
});

test.serial('bad input: one-line errors naming the file and what is wrong', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const src = join(dicomDir, SERIES[0]);
  let n = 0;
  const caseDir = (edit: (folder: string, names: string[]) => void): string => {
    const d = join(dir, `bad-${n++}`);
    const names = copySeries(src, d).sort((x, y) => Number(x.replace('.dcm', '')) - Number(y.replace('.dcm', '')));
    edit(d, names);
    return d;
  };
  const missingSlice = caseDir((d) => unlinkSync(join(d, '12.dcm')));
  const cases: Array<[string, string | string[], RegExp]> = [
    ['truncated file', caseDir((d) => writeFileSync(join(d, '7.dcm'), readFileSync(join(d, '7.dcm')).subarray(0, 2000))), /'.*7\.dcm' is truncated or damaged/],
    ['not DICOM', caseDir((d) => writeFileSync(join(d, 'notes.dcm'), 'hello, this is not DICOM')), /'.*notes\.dcm' is not a DICOM file \(no 'DICM' marker at byte 128; it has 24 bytes\)/],
    ['garbage inside', caseDir((d) => {
      const b = readFileSync(join(d, '3.dcm'));
      for (let i = 400; i < 700; i++) b[i] = (i * 7) & 255;
      writeFileSync(join(d, '3.dcm'), b);
    }), /'.*3\.dcm' is (truncated or damaged|not a readable DICOM file)/],
    ['mixed series', join(dicomDir, 'Study1'), /holds 2 series; choose one by SeriesInstanceUID: .*'T1post', 22 files.*'HippoCrop', 32 files/],
    ['missing pixel data', caseDir((d) => editDicom(join(d, '5.dcm'), (_m, ds) => delete ds.PixelData)), /'.*5\.dcm' has no pixel data \(7FE0,0010\)/],
    ['missing slice', missingSlice, /inconsistent slice spacing: '.*11\.dcm' and '.*13\.dcm' are 2\.000 mm apart where the other slices are 1\.000 mm \(gaps range from 1\.000 to 2\.000 mm; missing slices\?\)/],
    ['orientation', caseDir((d) => editDicom(join(d, '9.dcm'), (_m, ds) => (ds.ImageOrientationPatient = [1, 0, 0, 0, 0.995, 0.0998749]))), /inconsistent orientation between slices: '.*' has ImageOrientationPatient \[1, 0, 0, 0, 1, 0\] but '.*9\.dcm' \[1, 0, 0, 0, 0\.995, 0\.0999\]/],
    ['off the line', caseDir((d) => editDicom(join(d, '9.dcm'), (_m, ds) => (ds.ImagePositionPatient = [0.5, 0, 9]))), /slice positions do not lie on one line: '.*9\.dcm' is 0\.500 mm off the line through the first and last slices/],
    ['pixel spacing', caseDir((d) => editDicom(join(d, '9.dcm'), (_m, ds) => (ds.PixelSpacing = [1, 1.2]))), /inconsistent pixel spacing between slices: .*9\.dcm' \[1, 1\.2\]/],
    ['same position', caseDir((d) => editDicom(join(d, '4.dcm'), (_m, ds) => (ds.SOPInstanceUID = '1.2.3.4'), join(d, '4b.dcm'))), /two slices at the same position \[0, 0, 4\]: '.*4b?\.dcm' and '.*4b?\.dcm' \(several echoes/],
    ['sizes differ', caseDir((d) => editDicom(join(d, '6.dcm'), (_m, ds) => {
      ds.Rows = 35;
      ds.Columns = 51;
    })), /slices differ in size: '.*' is 51 x 35 but '.*6\.dcm' is 35 x 51 \(rows x columns\)/],
    ['unsupported transfer syntax', caseDir((d) => editDicom(join(d, '2.dcm'), (m) => (m.TransferSyntaxUID = '1.2.840.10008.1.2.4.100'))),
      /'.*2\.dcm' uses transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100 \(MPEG2 Main Profile \/ Main Level\), which semiseg cannot decode; it reads uncompressed/],
    ['short pixel data', caseDir((d) => editDicom(join(d, '8.dcm'), (_m, ds) => (ds.PixelData = [new ArrayBuffer(100)]))), /'.*8\.dcm' holds 100 bytes of pixel data where 3570 are needed/],
    ['colour', caseDir((d) => editDicom(join(d, '8.dcm'), (_m, ds) => (ds.SamplesPerPixel = 3))), /'.*8\.dcm' has 3 samples per pixel/],
    ['no position', caseDir((d) => editDicom(join(d, '8.dcm'), (_m, ds) => delete ds.ImagePositionPatient)), /'.*8\.dcm' has no valid ImagePositionPatient \(0020,0032\): it cannot be placed in a volume/],
    ['empty folder', caseDir((d, names) => names.forEach((x) => unlinkSync(join(d, x)))), /holds no DICOM files/],
    ['no such folder', join(dir, 'nope'), /'.*nope' cannot be read: ENOENT/],
  ];
  for (const [what, input, message] of cases) {
    const err = await t.throwsAsync(readDicomSeries(input), undefined, what);
    t.regex(err?.message ?? '', message, what);
    t.false((err?.message ?? '').includes('\n'), `${what}: one line`);
  }
  // a looser tolerance accepts the gap; options are checked
  const progress: number[] = [];
  const gapped = await readDicomSeries(missingSlice, { positionTolerance: 1.5, onProgress: (done, total) => progress.push(done / total) });
  t.deepEqual(gapped.data.shape, [35, 51, 31]);
  t.deepEqual(progress, Array.from({ length: 31 }, (_, k) => (k + 1) / 31));
  dispose(gapped.data);
  await t.throwsAsync(readDicomSeries(src, { seriesUID: 'x' } as never), { message: /readDicomSeries\(\): unknown key 'seriesUID' in argument 'options' \(expected one of seriesInstanceUID, positionTolerance, onProgress\)/ });
  await t.throwsAsync(readDicomSeries(src, { positionTolerance: -1 }), { message: /argument 'options.positionTolerance' must be a number > 0 \(millimetres\), got -1/ });
  await t.throwsAsync(parseDicomSeries([{ name: 'x', bytes: 'nope' }] as never), { message: /parseDicomSeries\(\): argument 'files' must be an array of \{ name: string, bytes: Uint8Array \}/ });
  // a named series out of several
  const t1 = (await listDicomSeries(join(dicomDir, 'Study1'))).find((s) => s.seriesDescription === 'T1post')!;
  const img = await readDicomSeries(join(dicomDir, 'Study1'), { seriesInstanceUID: t1.seriesInstanceUID });
  t.deepEqual(img.data.shape, [512, 512, 22]);
  dispose(img.data);
  await t.throwsAsync(readDicomSeries(join(dicomDir, 'Study1'), { seriesInstanceUID: '1.2.3' }), { message: /has no series 1\.2\.3; it holds .*T1post/ });
  // a damaged JPEG 2000 frame is an error, not a crash, and the codecs keep working
  const j2k = join(dir, 'bad-j2k');
  if (!skip) {
    const good = await readDicomSeries(j2k);
    const b = readFileSync(join(j2k, '10.dcm'));
    const soc = b.indexOf(Buffer.from([0xff, 0x4f, 0xff, 0x51])); // the codestream's start and SIZ marker
    t.true(soc > 0);
    b.fill(0xee, soc + 4, soc + 40);
    writeFileSync(join(j2k, '10.dcm'), b);
    await t.throwsAsync(readDicomSeries(j2k), { message: /'.*10\.dcm' (has JPEG 2000 \(Lossless Only\) pixel data that does not decode|is truncated or damaged|has damaged encapsulated pixel data)/ });
    const again = await readDicomSeries(join(dir, 'ts-j2k'));
    t.true(sameValues(again.data, good.data));
    dispose([good.data, again.data]);
  }
});

test.serial('SEG errors: not a SEG, another grid', async (t) => {
  if (!dicomDir) return t.pass('skipped: no DICOM data');
  const a = await readDicomSeries(join(dicomDir, SERIES[0]));
  const b = await readDicomSeries(join(dicomDir, SERIES[1]));
  t.throws(() => decodeDicomSeg(readFileSync(join(dicomDir!, SERIES[0], '1.dcm')), a, 'mr.dcm'), { message: /'mr\.dcm' is not a DICOM SEG \(SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.4, not 1\.2\.840\.10008\.5\.1\.4\.1\.1\.66\.4\)/ });
  const labels = tidy(() => a.data.gt(100).to('int64'));
  const seg = encodeDicomSeg(labels, a);
  t.throws(() => decodeDicomSeg(seg, b, 'seg.dcm'), { message: /'seg\.dcm' has 51 x 35 frames but the reference series 48 x 36/ });
  t.throws(() => encodeDicomSeg(tidy(() => labels.narrow(2, 0, 3)), a), { message: /'labels' has shape \[35, 51, 3\] but the source series is \[35, 51, 32\]/ });
  t.throws(() => encodeDicomSeg(labels, a, { segments: [] }), { message: /at least one segment/ });
  const three = tidy(() => labels.mul(3));
  t.throws(() => encodeDicomSeg(three, a, { segments: [{ label: 'x' }] }), { message: /holds label 3 but only 1 segment is described/ });
  t.throws(() => encodeDicomSeg(a.data, a), { message: /must be an integer tensor, got float32/ });
  dispose([a.data, b.data, labels, three]);
});
