// HDF5 readers and dataset splits on the real ACDC / LA data (skipped without it), damaged files made by
// h5py, and the two-stream sampler.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readH5 } from '../lib/data/hdf5.js';
import { acdcSlicePath, acdcSplit, acdcVolumePath, laSplit, laVolumePath } from '../lib/data/datasets.js';
import { TwoStreamBatchSampler } from '../lib/data/sampler.js';
import { dispose, liveTensors, tidy } from '../lib/index.js';
import { dataDir } from './helpers/data.js';
import { referencePython } from './helpers/reference.js';
import { runPythonCode } from './helpers/python.js';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-data-'));
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.serial('ACDC slices and volumes and LA volumes read with their shapes and label ranges', async (t) => {
  if (!dataDir) return t.pass('skipped: no ../shared/data (set SEMISEG_DATA)');
  const start = liveTensors();
  const acdc = join(dataDir, 'ACDC');
  const split = acdcSplit(acdc, 7);
  const s = await readH5(acdcSlicePath(acdc, split.labeled[0]), { numClasses: 4 });
  t.is(s.image.dtype, 'float32');
  t.is(s.label!.dtype, 'int64');
  t.deepEqual(s.image.shape, s.label!.shape);
  t.is(s.image.rank, 2);
  t.true(tidy(() => (s.image.min().item() as number) >= 0 && (s.image.max().item() as number) <= 1), 'min-max normalised');
  const v = await readH5(acdcVolumePath(acdc, split.val[0]), { numClasses: 4 });
  t.is(v.image.rank, 3);
  t.deepEqual(new Set(Array.from(v.label!.toArray() as BigInt64Array, Number)), new Set([0, 1, 2, 3]));
  const la = join(dataDir, 'LA');
  const l = await readH5(laVolumePath(la, laSplit(la, 8).labeled[0]), { numClasses: 2 });
  t.is(l.image.rank, 3);
  t.is(l.image.shape[2], 88);
  if (referencePython) {
    // the same numbers h5py reads
    const ref = JSON.parse(
      runPythonCode(
        `import h5py, json; f = h5py.File(${JSON.stringify(laVolumePath(la, laSplit(la, 8).labeled[0]))}, 'r'); print(json.dumps([list(f['image'].shape), float(f['image'][:].astype('float64').sum()), int(f['label'][:].sum())]))`,
      ),
    ) as [number[], number, number];
    t.deepEqual(l.image.shape, ref[0]);
    t.true(tidy(() => Math.abs((l.image.to('float64').sum().item() as number) - ref[1]) < 1e-6 * Math.abs(ref[1])));
    t.is(tidy(() => Number(l.label!.sum().item())), ref[2]);
  }
  dispose([s, v, l].flatMap((x) => [x.image, x.label]));
  t.is(liveTensors(), start);
});

test('labeled splits follow the spec: ACDC by patients, LA by ids', (t) => {
  if (!dataDir) return t.pass('skipped: no ../shared/data (set SEMISEG_DATA)');
  const acdc = join(dataDir, 'ACDC');
  const counts = [1, 3, 7, 14, 21, 28, 35, 70].map((p) => acdcSplit(acdc, p).labeled.length);
  t.deepEqual(counts, [32, 68, 136, 256, 396, 512, 664, 1312]);
  const s = acdcSplit(acdc, 3);
  t.is(s.labeled.length + s.unlabeled.length, 1312);
  t.is(s.val.length, 20);
  t.deepEqual(s.labeled, s.train.slice(0, 68), 'the FIRST slices of the list');
  const la = laSplit(join(dataDir, 'LA'), 4);
  t.deepEqual(la.labeled, la.train.slice(0, 4));
  t.is(la.unlabeled.length, 8);
  t.throws(() => acdcSplit(acdc, 71), { instanceOf: RangeError, message: /acdcSplit\(\): argument 'patients' must be an integer between 1 and 70, got 71/ });
  t.throws(() => laSplit(join(dir, 'nowhere'), 4), { message: /the list '.*nowhere\/train\.list' does not exist/ });
});

test.serial('damaged or mismatched HDF5 files fail with the file named', async (t) => {
  const missing = join(dir, 'missing.h5');
  await t.throwsAsync(readH5(missing), { message: `readH5(): '${missing}' does not exist` });
  const text = join(dir, 'text.h5');
  writeFileSync(text, 'not hdf5 at all');
  await t.throwsAsync(readH5(text), { message: /readH5\(\): '.*text\.h5' is not an HDF5 file \(no HDF5 signature\)/ });
  if (!referencePython) return;
  runPythonCode(`
import h5py, numpy as np
d = ${JSON.stringify(dir)}
with h5py.File(d + '/nolabel.h5', 'w') as f: f.create_dataset('image', data=np.zeros((4, 4), np.float32))
with h5py.File(d + '/mismatch.h5', 'w') as f:
    f.create_dataset('image', data=np.zeros((4, 4), np.float32)); f.create_dataset('label', data=np.zeros((4, 5), np.uint8))
with h5py.File(d + '/range.h5', 'w') as f:
    f.create_dataset('image', data=np.zeros((4, 4), np.float32)); f.create_dataset('label', data=np.full((4, 4), 7, np.uint8))
with h5py.File(d + '/good.h5', 'w') as f:
    f.create_dataset('image', data=np.random.rand(64, 64, 32).astype(np.float32), compression='gzip', chunks=(16, 16, 8))
    f.create_dataset('label', data=np.zeros((64, 64, 32), np.uint8), compression='gzip', chunks=(16, 16, 8))
`);
  await t.throwsAsync(readH5(join(dir, 'nolabel.h5')), { message: /'.*nolabel\.h5' has no dataset 'label' \(found: image\)/ });
  await t.throwsAsync(readH5(join(dir, 'mismatch.h5')), { message: /'.*mismatch\.h5' has image and label of different shapes: \[4, 4\] and \[4, 5\]/ });
  await t.throwsAsync(readH5(join(dir, 'range.h5'), { numClasses: 4 }), { message: /'.*range\.h5' has labels in \[7, 7\], outside the 4 classes \[0, 3\]/ });
  const unlabeled = await readH5(join(dir, 'nolabel.h5'), { requireLabel: false });
  t.is(unlabeled.label, undefined);
  unlabeled.image.dispose();
  const whole = readFileSync(join(dir, 'good.h5'));
  writeFileSync(join(dir, 'cut.h5'), whole.subarray(0, Math.floor(whole.length / 2)));
  await t.throwsAsync(readH5(join(dir, 'cut.h5')), { message: /readH5\(\): '.*cut\.h5' (could not be read|has an unreadable|has no dataset)/ });
});

test('the two-stream sampler: labeled then unlabeled, one labeled pass per epoch, deterministic', (t) => {
  const labeled = Array.from({ length: 10 }, (_, i) => i);
  const unlabeled = Array.from({ length: 7 }, (_, i) => 100 + i);
  const a = new TwoStreamBatchSampler(labeled, unlabeled, { batchSize: 6, labeledBatch: 3, seed: 1 });
  const b = new TwoStreamBatchSampler(labeled, unlabeled, { batchSize: 6, labeledBatch: 3, seed: 1 });
  t.is(a.batchesPerEpoch, 3);
  const epoch1 = [a.next(), a.next(), a.next()];
  t.deepEqual(epoch1, [b.next(), b.next(), b.next()]);
  for (const batch of epoch1) {
    t.true(batch.slice(0, 3).every((i) => i < 10));
    t.true(batch.slice(3).every((i) => i >= 100));
  }
  const seen = epoch1.flatMap((x) => x.slice(0, 3));
  t.is(new Set(seen).size, 9, 'no labeled repeats within an epoch (one left over)');
  // the unlabeled stream covers every item before repeating
  t.deepEqual([...epoch1.flatMap((x) => x.slice(3)).slice(0, 7)].sort((x, y) => x - y), unlabeled);
  a.next();
  t.is(a.epoch, 2);
  t.throws(() => new TwoStreamBatchSampler([1], unlabeled, { batchSize: 4, labeledBatch: 2 }), { message: /1 labeled items cannot fill a labeled batch of 2/ });
});

test('the package entry exports the data readers, splits, augmentations and loaders', async (t) => {
  const pkg = (await import('../lib/index.js')) as Record<string, unknown>;
  for (const name of ['readH5', 'readNifti', 'writeNiftiLabels', 'readNnUnetDataset', 'acdcSplit', 'laSplit', 'acdcAugment', 'laAugment', 'TwoStreamBatchSampler', 'PrefetchLoader', 'syntheticCardiac'])
    t.is(typeof pkg[name], 'function', name);
});
