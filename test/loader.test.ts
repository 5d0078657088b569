// The prefetching loader (two-stream batches, cached samples, the next batch prepared ahead), the 3-D
// synthetic generator, and the nnU-Net raw layout.
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { zoomNearest } from '../lib/data/augment.js';
import { PrefetchLoader } from '../lib/data/loader.js';
import { readNnUnetDataset } from '../lib/data/nnunet.js';
import { TwoStreamBatchSampler } from '../lib/data/sampler.js';
import { syntheticBlobs, syntheticCardiac } from '../lib/demo/synthetic.js';
import { dispose, liveTensors, tensor, tidy } from '../lib/index.js';

test.serial('the loader caches samples, prepares the next batch ahead and leaks nothing', async (t) => {
  const start = liveTensors();
  const data = syntheticCardiac({ n: 12, size: 40, seed: 2 });
  const loads: number[] = [];
  const loader = new PrefetchLoader({
    load: async (i) => {
      loads.push(i);
      const slice = (a: ArrayLike<number>) => Array.from(a).slice(i * 1600, (i + 1) * 1600);
      return i < 4
        ? { image: tensor(slice(data.images), { shape: [40, 40] }), label: tensor(slice(data.labels), { shape: [40, 40], dtype: 'int64' }) }
        : { image: tensor(slice(data.images), { shape: [40, 40] }) };
    },
    sampler: new TwoStreamBatchSampler([0, 1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11], { batchSize: 4, labeledBatch: 2, seed: 1 }),
    augment: (im, lb) => [zoomNearest(im, [32, 32]), zoomNearest(lb, [32, 32])],
  });
  const first = await loader.next();
  t.deepEqual(first.images.shape, [4, 1, 32, 32]);
  t.deepEqual(first.labels.shape, [4, 32, 32]);
  t.true(first.indices.slice(0, 2).every((i) => i < 4) && first.indices.slice(2).every((i) => i >= 4));
  t.is(tidy(() => Number(first.labels.narrow(0, 2, 2).abs().sum().item())), 0, 'unlabeled items carry zero labels');
  await new Promise((r) => setImmediate(r));
  t.is(loader.prepared, 2, 'the next batch is prepared ahead');
  dispose([first.images, first.labels]);
  for (let k = 0; k < 6; k++) {
    const b = await loader.next();
    dispose([b.images, b.labels]);
  }
  t.is(new Set(loads).size, loads.length, 'each sample is decoded once');
  await loader.close();
  t.is(liveTensors(), start);
});

test('a failing sample load rejects the batch with its message', async (t) => {
  const loader = new PrefetchLoader({
    load: async (i) => {
      throw new Error(`readH5(): 'case${i}.h5' does not exist`);
    },
    sampler: new TwoStreamBatchSampler([0, 1], [2, 3], { batchSize: 2, labeledBatch: 1 }),
    augment: (im, lb) => [im, lb],
  });
  await t.throwsAsync(loader.next(), { message: /readH5\(\): 'case\d\.h5' does not exist/ });
  await loader.close();
  await t.throwsAsync(loader.next(), { message: /the loader is closed/ });
});

test('3-D synthetic blobs are deterministic, with a bright labelled organ', (t) => {
  const a = syntheticBlobs({ n: 2, shape: [16, 20, 12], seed: 4 });
  const b = syntheticBlobs({ n: 2, shape: [16, 20, 12], seed: 4 });
  t.deepEqual(a.labels, b.labels);
  let inside = 0;
  let sumIn = 0;
  let sumOut = 0;
  a.labels.forEach((l, i) => {
    if (l) {
      inside++;
      sumIn += a.images[i];
    } else sumOut += a.images[i];
  });
  t.true(inside > 100 && inside < a.labels.length / 2, `${inside} organ voxels`);
  t.true(sumIn / inside > sumOut / (a.labels.length - inside) + 0.3);
});

test('the nnU-Net raw layout lists cases with their channels, and reports what is missing', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'semiseg-nnunet-'));
  try {
    mkdirSync(join(root, 'imagesTr'));
    mkdirSync(join(root, 'labelsTr'));
    writeFileSync(join(root, 'dataset.json'), JSON.stringify({ channel_names: { 0: 'T1', 1: 'T2' }, labels: { background: 0, tumor: 1 }, file_ending: '.nii.gz' }));
    for (const id of ['case_002', 'case_001']) {
      writeFileSync(join(root, 'labelsTr', `${id}.nii.gz`), '');
      for (const c of ['0000', '0001']) writeFileSync(join(root, 'imagesTr', `${id}_${c}.nii.gz`), '');
    }
    const ds = readNnUnetDataset(root);
    t.is(ds.channels, 2);
    t.deepEqual(ds.cases.map((c) => c.id), ['case_001', 'case_002']);
    t.deepEqual(ds.cases[0].images.map((p) => p.slice(root.length)), ['/imagesTr/case_001_0000.nii.gz', '/imagesTr/case_001_0001.nii.gz']);
    t.deepEqual(ds.labels, { background: 0, tumor: 1 });
    writeFileSync(join(root, 'labelsTr', 'case_003.nii.gz'), '');
    t.throws(() => readNnUnetDataset(root), { message: /case 'case_003' has a label but no image '.*case_003_0000\.nii\.gz'/ });
    t.throws(() => readNnUnetDataset(join(root, 'nope')), { message: /dataset\.json' does not exist/ });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
