// Decathlon / nnU-Net folders read by readImageDataset / readCase, against files nibabel writes: the layout
// decided from the files (Decathlon ids ending in _0000, nnU-Net v1 folders), non-finite intensities and
// non-integer label maps refused naming the file, and preprocessing errors of plannedData naming the case.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readCase, readImageDataset } from '../lib/data/folders.js';
import { readNifti } from '../lib/data/nifti.js';
import { preprocessWithPlan } from '../lib/data/preprocess.js';
import { setNumThreads } from '../lib/runtime.js';
import { dispose } from '../lib/scope.js';
import { plannedData } from '../lib/trainers/planned-data.js';
import { syntheticFolder } from './helpers/folders.js';
import { testPlan } from './helpers/nifti.js';
import { referencePython } from './helpers/reference.js';
import { runPythonCode } from './helpers/python.js';

setNumThreads(1);

/** The folders are written by nibabel in the reference python. */
const skip = !referencePython
  ? 'no reference python'
  : spawnSync(referencePython, ['-c', 'import nibabel'], { stdio: 'ignore' }).status !== 0
    ? 'no nibabel in the reference python'
    : '';

const small = { shape: [10, 12, 8] };

test('non-finite intensities (NaN, +Inf, -Inf) are refused naming the image file', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({
    ...small,
    n: 4,
    tweak: `
for k, v in enumerate([np.nan, np.inf, -np.inf]):
    f = f'{root}/imagesTr/case_{k:03d}.nii.gz'
    i = np.asarray(nib.load(f).dataobj).astype(np.float32); i[2, 3, 4] = v; save(i, f)
`,
  });
  const ds = readImageDataset(root);
  for (const k of [0, 1, 2]) {
    const err = await t.throwsAsync(readCase(ds, ds.labeled[k]));
    t.regex(err?.message ?? '', new RegExp(`^'[^']*imagesTr/case_00${k}\\.nii\\.gz' holds NaN or infinite intensities$`), `case ${k}`);
  }
  const ok = await readCase(ds, ds.labeled[3]);
  t.deepEqual(ok.data.shape, [1, 10, 12, 8]);
  dispose([ok.data, ok.label]);
  rmSync(root, { recursive: true });
});

test('float label maps: integer values are read, values between classes (linear resampling) are refused naming the file and a value', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({
    ...small,
    n: 4,
    tweak: `
def lab(k): return np.asarray(nib.load(f'{root}/labelsTr/case_{k:03d}.nii.gz').dataobj)
save(lab(0), f'{root}/orig_000.nii.gz'); save(lab(3), f'{root}/orig_003.nii.gz')
save(lab(0).astype(np.float32), f'{root}/labelsTr/case_000.nii.gz')
l = lab(1).astype(np.float32); l[0, 0, 0] = 0.6; l[1, 0, 0] = 1.5; l[2, 0, 0] = 2.4
save(l, f'{root}/labelsTr/case_001.nii.gz')
l = lab(2).astype(np.float32); l[4, 4, 4] = np.nan
save(l, f'{root}/labelsTr/case_002.nii.gz')
l = lab(3).astype(np.float64); l[l == 1] = 1.0004
save(l, f'{root}/labelsTr/case_003.nii.gz')
`,
  });
  const ds = readImageDataset(root);
  for (const k of [0, 3]) {
    const c = await readCase(ds, ds.labeled[k]);
    const ref = await readNifti(join(root, `orig_00${k}.nii.gz`));
    t.is(c.label!.dtype, 'int64');
    t.deepEqual(Array.from(c.label!.toArray() as ArrayLike<number | bigint>, Number), Array.from(ref.data.toArray() as ArrayLike<number>, Number), `case ${k}: the integer label values`);
    dispose([c.data, c.label, ref.data]);
  }
  let err = await t.throwsAsync(readCase(ds, ds.labeled[1]));
  t.regex(
    err?.message ?? '',
    /^'[^']*labelsTr\/case_001\.nii\.gz' holds label value 1\.5, which is not an integer; labels must be integers \(resample label maps with nearest neighbour, not linear interpolation\)$/,
  );
  err = await t.throwsAsync(readCase(ds, ds.labeled[2]));
  t.regex(err?.message ?? '', /^'[^']*labelsTr\/case_002\.nii\.gz' holds label value NaN, which is not an integer/);
  rmSync(root, { recursive: true });
});

test('a Decathlon folder whose case ids end in _0000 reads as Decathlon', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({
    ...small,
    n: 3,
    tweak: `
for k in range(n):
    for d in ('imagesTr', 'labelsTr'): os.rename(f'{root}/{d}/case_{k:03d}.nii.gz', f'{root}/{d}/case_{k:04d}.nii.gz')
`,
  });
  const ds = readImageDataset(root);
  t.is(ds.layout, 'decathlon');
  t.deepEqual(ds.channels, ['MRI']);
  t.deepEqual(ds.labeled.map((c) => c.id), ['case_0000', 'case_0001', 'case_0002']);
  t.deepEqual(ds.labeled[0].images, [join(root, 'imagesTr', 'case_0000.nii.gz')]);
  t.deepEqual(ds.unlabeled, []);
  const c = await readCase(ds, ds.labeled[1]);
  t.deepEqual(c.data.shape, [1, 10, 12, 8]);
  t.deepEqual(c.label!.shape, [10, 12, 8]);
  dispose([c.data, c.label]);
  rmSync(root, { recursive: true });
});

test("a case saved with the other NIfTI ending than dataset.json's file_ending is an error naming the file", (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({ ...small, n: 3 });
  // a label as .nii: its case was silently unlabeled; an image as .nii: the case was left out
  for (const [dir, id] of [
    ['labelsTr', 'case_001'],
    ['imagesTr', 'case_002'],
  ]) {
    renameSync(join(root, dir, `${id}.nii.gz`), join(root, dir, `${id}.nii`));
    t.throws(() => readImageDataset(root), {
      message: `readImageDataset(): '${join(root, dir, `${id}.nii`)}' does not end in the dataset's file_ending '.nii.gz' (dataset.json): save every image and label as '.nii.gz', or set file_ending`,
    });
    renameSync(join(root, dir, `${id}.nii`), join(root, dir, `${id}.nii.gz`));
  }
  t.is(readImageDataset(root).labeled.length, 3);
  rmSync(root, { recursive: true });
});

test('an nnU-Net v1 folder ("modality", <id>_0000 channel files) still reads as nnU-Net', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({
    ...small,
    n: 3,
    layout: 'nnunet',
    channels: 2,
    tweak: `
json.dump({'name': 'V1', 'modality': {'0': 'MRI', '1': 'MRI'}, 'labels': {'0': 'background', '1': 'c1', '2': 'c2'}}, open(f'{root}/dataset.json', 'w'))
`,
  });
  const ds = readImageDataset(root);
  t.is(ds.layout, 'nnunet');
  t.deepEqual(ds.channels, ['MRI', 'MRI']);
  t.deepEqual(ds.classes, ['background', 'c1', 'c2']);
  t.deepEqual(ds.labeled.map((c) => c.id), ['case_000', 'case_001', 'case_002']);
  t.deepEqual(ds.unlabeled, []);
  const c = await readCase(ds, ds.labeled[0]);
  t.deepEqual(c.data.shape, [2, 10, 12, 8]);
  dispose([c.data, c.label]);
  rmSync(root, { recursive: true });
});

test('plannedData: a preprocessing error names the case image, keeping its message and class', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({ ...small, n: 2 });
  const ds = readImageDataset(root);
  // a CT normalisation without a foreground spread: the native preprocessing refuses it
  const plan = testPlan({ dataset: ds.name, channels: ['CT'], classes: ds.classes, spacing: null, normalization: [{ scheme: 'ct', lo: 0, hi: 0, mean: 0, std: 0 }], crop: false, foregroundOversampling: 0 });
  const c = await readCase(ds, ds.labeled[0]);
  const direct = await t.throwsAsync(preprocessWithPlan(c.data, c.label, c.spacing, plan));
  dispose([c.data, c.label]);
  t.regex(direct?.message ?? '', /preprocess: the CT normalisation needs a foreground std > 0/);
  const err = await t.throwsAsync(plannedData(ds, plan));
  const image = join(root, 'imagesTr', 'case_000.nii.gz');
  t.is(err?.message, `'${image}': ${direct?.message}`);
  t.is(err?.constructor, direct?.constructor);
  t.true(err?.stack?.includes(`'${image}': `));
  rmSync(root, { recursive: true });
});

test('plannedData: a cached preprocessed case is used only while its files are unchanged (a corrected label is read again)', async (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({ ...small, n: 3 });
  const cacheDir = mkdtempSync(join(tmpdir(), 'semiseg-cache-'));
  const ds = readImageDataset(root);
  const plan = testPlan({ dataset: ds.name, classes: ds.classes, spacing: null, crop: false, foregroundOversampling: 0 });
  const labelOf0 = async () => {
    const data = await plannedData(ds, plan, { labeled: 3, val: 0, cacheDir });
    try {
      const item = await data.load(0);
      const values = Array.from(item.label!.toArray() as BigInt64Array, Number);
      dispose([item.image, item.label]);
      return values;
    } finally {
      data.dispose();
    }
  };
  const before = await labelOf0();
  t.true(before.some((v) => v > 0));
  // the label of case 0 corrected (here: emptied) after the first run cached it
  runPythonCode(`
import nibabel as nib, numpy as np
f = '${join(root, 'labelsTr', 'case_000.nii.gz')}'
img = nib.load(f); nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), f)
`);
  const after = await labelOf0();
  t.deepEqual(after, new Array(before.length).fill(0));
  t.deepEqual(await labelOf0(), after, 'and cached again');
  rmSync(root, { recursive: true });
  rmSync(cacheDir, { recursive: true });
});

test("nnU-Net v2's 'ignore' label is refused by name (it would train as a class)", (t) => {
  if (skip) return t.pass(`skipped: ${skip}`);
  const root = syntheticFolder({ ...small, n: 2, layout: 'nnunet' });
  const meta = join(root, 'dataset.json');
  const json = JSON.parse(readFileSync(meta, 'utf8')) as { labels: Record<string, number> };
  writeFileSync(meta, JSON.stringify({ ...json, labels: { ...json.labels, ignore: 3 } }));
  t.throws(() => readImageDataset(root), {
    message: `readImageDataset(): '${meta}': label 'ignore' (3) is nnU-Net v2's ignore label (unannotated voxels), which is not supported: it would train as a class; annotate those voxels or leave 'ignore' out of the labels and the label maps`,
  });
  rmSync(root, { recursive: true });
});
