// Metrics against the medpy-definition reference (benchmarks/reference/metrics.py) on real ACDC and LA
// labels, perturbed; known answers on synthetic masks; the empty-mask policy; largest connected component
// against BCP's skimage code.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  MetricsTable,
  binaryMetrics,
  dispose,
  largestConnectedComponent,
  metrics,
  perClassMetrics,
  readTorchStateDict,
  tensor,
  zeros,
  type Tensor,
} from '../lib/index.js';
import { dataDir } from './helpers/data.js';
import { referencePython } from './helpers/reference.js';
import { runPython } from './helpers/python.js';

const ready = Boolean(dataDir && referencePython);
let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-metrics-'));
  if (ready) runPython('metrics.py', 'fixtures', dataDir!, dir);
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

interface Expected {
  name: string;
  spacing: number[] | null;
  dice: number;
  jaccard: number;
  hd95: number;
  asd: number;
  assd: number;
}

test.serial('metrics on real ACDC and LA labels equal the reference to 1e-6', async (t) => {
  if (!ready) return t.pass('skipped: no ../shared/data (SEMISEG_DATA) or no python with torch');
  const masks = await readTorchStateDict(join(dir, 'masks.pt'));
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected[];
  t.true(expected.length >= 50);
  for (const [i, e] of expected.entries()) {
    const got = await metrics.binaryAsync(masks[`pred_${i}`], masks[`ref_${i}`], e.spacing ? { spacing: e.spacing } : {});
    for (const k of ['dice', 'jaccard', 'hd95', 'asd', 'assd'] as const)
      t.true(Math.abs(got[k] - e[k]) <= 1e-6 * Math.max(1, Math.abs(e[k])), `${e.name} ${k}: ${got[k]} vs ${e[k]}`);
  }
  dispose(masks);
});

test.serial('largest connected component equals skimage in 3D and per 2D slice', async (t) => {
  if (!ready) return t.pass('skipped: no ../shared/data (SEMISEG_DATA) or no python with torch');
  const f = await readTorchStateDict(join(dir, 'lcc.pt'));
  const lcc3d = largestConnectedComponent(f.noisy, { classes: [1, 2, 3] });
  const lcc2d = largestConnectedComponent(f.noisy, { classes: [1, 2, 3], spatialDims: 2 });
  t.deepEqual(lcc3d.toArray(), f.lcc3d.toArray());
  t.deepEqual(lcc2d.toArray(), f.lcc2d.toArray());
  t.notDeepEqual(lcc3d.toArray(), f.noisy.toArray(), 'the islands were removed');
  dispose([f, lcc3d, lcc2d]);
});

function mask(shape: number[], points: number[][]): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Uint8Array(size);
  for (const p of points) data[p.reduce((acc, x, d) => acc * shape[d] + x, 0)] = 1;
  return tensor(data, { shape });
}

function square(shape: number[], y0: number, x0: number, side: number): Tensor {
  const pts: number[][] = [];
  for (let y = y0; y < y0 + side; y++) for (let x = x0; x < x0 + side; x++) pts.push([y, x]);
  return mask(shape, pts);
}

test('known answers on synthetic masks', (t) => {
  const a = square([12, 12], 2, 2, 4);
  const same = binaryMetrics(a, a);
  t.deepEqual([same.dice, same.jaccard, same.hd95, same.asd, same.assd], [1, 1, 0, 0, 0]);
  // two single voxels 3 apart: no overlap, every surface distance is 3
  const p = mask([5, 9], [[2, 1]]);
  const r = mask([5, 9], [[2, 4]]);
  const m = binaryMetrics(p, r);
  t.deepEqual([m.dice, m.jaccard, m.hd95, m.asd, m.assd], [0, 0, 3, 3, 3]);
  // voxel spacing scales distances per axis: 3 voxels along x at 0.5 -> 1.5
  t.is(metrics.hd95(p, r, { spacing: [2, 0.5] }), 1.5);
  // a 4x4 square against the same square shifted by one column: Dice 2*12/32, Jaccard 12/20
  const b = square([12, 12], 2, 3, 4);
  const s = binaryMetrics(a, b);
  t.is(s.dice, 0.75);
  t.is(s.jaccard, 0.6);
  t.is(s.hd95, 1);
  // 3D: a cube against itself, and a voxel against a voxel 2 slices away (z spacing 2.5)
  const c = mask([4, 4, 4], [[1, 1, 1], [1, 1, 2], [1, 2, 1], [2, 1, 1]]);
  t.is(metrics.dice(c, c), 1);
  t.is(metrics.asd(mask([5, 3, 3], [[0, 1, 1]]), mask([5, 3, 3], [[2, 1, 1]]), { spacing: [2.5, 1, 1] }), 5);
  dispose([a, p, r, b, c]);
});

test('the empty-mask policy is explicit', (t) => {
  const empty = zeros([8, 8], { dtype: 'uint8' });
  const one = square([8, 8], 2, 2, 3);
  const zero = binaryMetrics(empty, one);
  t.deepEqual([zero.dice, zero.jaccard, zero.hd95, zero.asd, zero.assd], [0, 0, 0, 0, 0]);
  t.true(zero.predictionEmpty);
  t.is(zero.emptyPolicy, 'zero');
  const nan = binaryMetrics(empty, one, { emptyPolicy: 'nan' });
  t.is(nan.dice, 0);
  t.true(Number.isNaN(nan.hd95));
  const refEmpty = binaryMetrics(one, empty);
  t.true(refEmpty.referenceEmpty);
  t.is(refEmpty.dice, 0);
  t.true(Number.isNaN(refEmpty.hd95) && Number.isNaN(refEmpty.asd));
  const both = binaryMetrics(empty, empty, { emptyPolicy: 'nan' });
  t.true(Number.isNaN(both.dice));
  dispose([empty, one]);
});

test('per-class metrics and the table of a multi-class case', async (t) => {
  const y = tensor(
    [
      [0, 1, 1, 0],
      [2, 2, 0, 0],
      [3, 3, 3, 0],
      [0, 0, 0, 0],
    ],
    { dtype: 'int64' },
  );
  const yPred = tensor(
    [
      [0, 1, 1, 0],
      [2, 0, 0, 0],
      [3, 3, 3, 3],
      [0, 0, 0, 0],
    ],
    { dtype: 'int64' },
  );
  const r = await perClassMetrics(yPred, y, { classes: [1, 2, 3] });
  t.is(r.classes[1].dice, 1);
  t.is(r.classes[2].dice, 2 / 3);
  t.is(r.classes[3].dice, 6 / 7);
  t.is(r.mean.dice, (1 + 2 / 3 + 6 / 7) / 3);
  const table = new MetricsTable().add('a', r).add('b', r);
  t.is(table.summary().mean.dice, r.mean.dice);
  t.is(table.summary().cases, 2);
  t.regex(table.toCSV(), /^case,class,dice,jaccard,hd95,asd,assd\na,1,1,1,0,0,0\n/);
  dispose([y, yPred]);
});

test('metric inputs are checked', (t) => {
  const a = zeros([4, 4]);
  t.throws(() => binaryMetrics(a, zeros([4, 5])), { message: /metrics: 'yPred' and 'y' must have the same shape, got \[4, 4\] and \[4, 5\]/ });
  t.throws(() => binaryMetrics(a, a, { spacing: [1, 1, 1] }), { message: /option 'spacing' must have 2 entries \(one per dimension\), got 3/ });
  t.throws(() => binaryMetrics(a, a, { spacing: [1, 0] }), { instanceOf: RangeError, message: /binaryMetrics\(\): argument 'spacing\[1\]' must be a voxel size > 0, got 0/ });
  t.throws(() => binaryMetrics(a, a, { emptyPolicy: 'ignore' as never }), { instanceOf: RangeError, message: /argument 'emptyPolicy' must be one of 'zero', 'nan'/ });
  t.throws(() => largestConnectedComponent(a, { classes: [1] }), { message: /'labels' must be an integer label map, got Float/ });
  a.dispose();
});
