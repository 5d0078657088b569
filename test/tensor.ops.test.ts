// Tensor ops against the PyTorch reference (benchmarks/reference/tensor_ops.py) on random inputs:
// values, shapes and result dtypes (type promotion included).
import test from 'ava';

import {
  arange,
  cat,
  conv,
  interpolate,
  manualSeed,
  oneHot,
  rand,
  randint,
  randn,
  stack,
  tensor,
  tidy,
  where,
  type InterpolateOptions,
  type Tensor,
} from '../lib/index.js';
import { closeness, decodeValues, referencePython, runReference, type RefCase } from './helpers/reference.js';

interface Case {
  name: string;
  run: () => Tensor | Tensor[];
  ref: RefCase;
  atol?: number;
  rtol?: number;
}

function buildCases(): Case[] {
  manualSeed(7);
  const cases: Case[] = [];
  const a = randn([3, 4, 5]);
  const b = randn([4, 5]); // broadcasts against a
  const c = randn([3, 1, 5]);
  const pos = rand([3, 4, 5]).add(0.1);
  const ints = randint([3, 4, 5], -5, 6, { dtype: 'int32' });
  const ints64 = randint([3, 4, 5], 1, 6);
  const mask = rand([3, 4, 5]).gt(0.5);
  const mask2 = rand([4, 5]).gt(0.3);

  const binaries = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
  for (const op of binaries) {
    cases.push({ name: `${op}(a, b) broadcast`, run: () => a[op](b), ref: { op, inputs: [a, b] } });
    cases.push({ name: `${op}(c, a) broadcast`, run: () => c[op](a), ref: { op, inputs: [c, a] } });
  }
  for (const op of ['add', 'sub', 'mul', 'div', 'eq', 'lt', 'ge', 'remainder'] as const) {
    cases.push({ name: `${op}(a, 1.5)`, run: () => a[op](1.5), ref: { op, inputs: [a], args: { scalar: 1.5 } } });
    cases.push({ name: `${op}(int32, 2)`, run: () => ints[op](2), ref: { op, inputs: [ints], args: { scalar: 2 } } });
    cases.push({ name: `${op}(int32, 2.5) promotes`, run: () => ints[op](2.5), ref: { op, inputs: [ints], args: { scalar: 2.5 } } });
  }
  cases.push({ name: 'add alpha', run: () => a.add(b, 0.25), ref: { op: 'add', inputs: [a, b], args: { alpha: 0.25 } } });
  cases.push({ name: 'sub alpha', run: () => a.sub(c, 3), ref: { op: 'sub', inputs: [a, c], args: { alpha: 3 } } });
  cases.push({ name: 'int32 + int64', run: () => ints.add(ints64), ref: { op: 'add', inputs: [ints, ints64] } });
  cases.push({ name: 'int32 + float32', run: () => ints.add(a), ref: { op: 'add', inputs: [ints, a] } });
  cases.push({ name: 'pow(pos, 2.5)', run: () => pos.pow(2.5), ref: { op: 'pow', inputs: [pos], args: { scalar: 2.5 } } });
  cases.push({ name: 'pow(pos, a)', run: () => pos.pow(a), ref: { op: 'pow', inputs: [pos, a] } });
  cases.push({ name: 'remainder(a, c)', run: () => a.remainder(c), ref: { op: 'remainder', inputs: [a, c] } });
  cases.push({ name: 'logicalAnd', run: () => mask.logicalAnd(mask2), ref: { op: 'logicalAnd', inputs: [mask, mask2] } });
  cases.push({ name: 'logicalOr', run: () => mask.logicalOr(mask2), ref: { op: 'logicalOr', inputs: [mask, mask2] } });

  const unaries = ['neg', 'abs', 'exp', 'sigmoid', 'tanh', 'relu', 'floor', 'ceil', 'round', 'sign', 'square'] as const;
  for (const op of unaries) cases.push({ name: op, run: () => a[op](), ref: { op, inputs: [a] } });
  for (const op of ['log', 'sqrt', 'rsqrt', 'reciprocal'] as const)
    cases.push({ name: op, run: () => pos[op](), ref: { op, inputs: [pos] } });
  cases.push({ name: 'logicalNot', run: () => mask.logicalNot(), ref: { op: 'logicalNot', inputs: [mask] } });
  cases.push({ name: 'clamp both', run: () => a.clamp(-0.5, 0.7), ref: { op: 'clamp', inputs: [a], args: { min: -0.5, max: 0.7 } } });
  cases.push({ name: 'clamp min', run: () => a.clamp(0), ref: { op: 'clamp', inputs: [a], args: { min: 0 } } });
  cases.push({ name: 'clamp max', run: () => a.clamp(null, 0.1), ref: { op: 'clamp', inputs: [a], args: { max: 0.1 } } });
  cases.push({ name: 'where tensors', run: () => where(mask, a, c), ref: { op: 'where', inputs: [mask, a, c] } });

  for (const op of ['sum', 'mean'] as const) {
    cases.push({ name: `${op}()`, run: () => a[op](), ref: { op, inputs: [a] } });
    cases.push({ name: `${op}(1)`, run: () => a[op](1), ref: { op, inputs: [a], args: { dim: 1 } } });
    cases.push({ name: `${op}([0, 2], keepdim)`, run: () => a[op]([0, 2], true), ref: { op, inputs: [a], args: { dim: [0, 2], keepdim: true } } });
    cases.push({ name: `${op}(-1)`, run: () => a[op](-1), ref: { op, inputs: [a], args: { dim: -1 } } });
  }
  cases.push({ name: 'sum(int32) -> int64', run: () => ints.sum(), ref: { op: 'sum', inputs: [ints] } });
  for (const op of ['max', 'min', 'argmax', 'argmin'] as const) {
    cases.push({ name: `${op}()`, run: () => a[op](), ref: { op, inputs: [a] } });
    cases.push({ name: `${op}(1)`, run: () => a[op](1), ref: { op, inputs: [a], args: { dim: 1 } } });
    cases.push({ name: `${op}(2, keepdim)`, run: () => a[op](2, true), ref: { op, inputs: [a], args: { dim: 2, keepdim: true } } });
  }
  for (const op of ['softmax', 'logSoftmax'] as const) {
    cases.push({ name: `${op}(1)`, run: () => a[op](1), ref: { op, inputs: [a], args: { dim: 1 } } });
    cases.push({ name: `${op}(-1)`, run: () => a[op](-1), ref: { op, inputs: [a], args: { dim: -1 } } });
  }

  const m1 = randn([6, 7]);
  const m2 = randn([7, 3]);
  const batched = randn([2, 5, 6, 7]);
  cases.push({ name: 'matmul 2d', run: () => m1.matmul(m2), ref: { op: 'matmul', inputs: [m1, m2] }, atol: 1e-5 });
  cases.push({ name: 'matmul batched broadcast', run: () => batched.matmul(m2), ref: { op: 'matmul', inputs: [batched, m2] }, atol: 1e-5 });

  cases.push({ name: 'reshape', run: () => a.reshape([5, -1]), ref: { op: 'reshape', inputs: [a], args: { shape: [5, -1] } } });
  cases.push({ name: 'permute', run: () => a.permute([2, 0, 1]), ref: { op: 'permute', inputs: [a], args: { dims: [2, 0, 1] } } });
  cases.push({ name: 'transpose', run: () => a.transpose(0, 2), ref: { op: 'transpose', inputs: [a], args: { dim0: 0, dim1: 2 } } });
  cases.push({ name: 'narrow', run: () => a.narrow(1, 1, 2), ref: { op: 'narrow', inputs: [a], args: { dim: 1, start: 1, length: 2 } } });
  cases.push({ name: 'slice step', run: () => a.slice(2, 1, null, 2), ref: { op: 'slice', inputs: [a], args: { dim: 2, start: 1, step: 2 } } });
  cases.push({ name: 'slice negative', run: () => a.slice(-1, -3, -1), ref: { op: 'slice', inputs: [a], args: { dim: -1, start: -3, end: -1 } } });
  const idx = tensor(new BigInt64Array([3n, 0n, 3n]));
  cases.push({ name: 'indexSelect', run: () => a.indexSelect(1, idx), ref: { op: 'indexSelect', inputs: [a, idx] , args: { dim: 1 } } });
  const gidx = randint([3, 4, 2], 0, 5);
  cases.push({ name: 'gather', run: () => a.gather(2, gidx), ref: { op: 'gather', inputs: [a, gidx], args: { dim: 2 } } });
  cases.push({ name: 'cat dim 1', run: () => cat([a, a.narrow(1, 0, 2)], 1), ref: { op: 'cat', inputs: [a, a.narrow(1, 0, 2)], args: { dim: 1 } } });
  cases.push({ name: 'stack dim -1', run: () => stack([a, c.expand([3, 4, 5])], -1), ref: { op: 'stack', inputs: [a, c.expand([3, 4, 5])], args: { dim: -1 } } });
  const labels = randint([2, 3, 3], 0, 4);
  cases.push({ name: 'oneHot', run: () => oneHot(labels, 4), ref: { op: 'oneHot', inputs: [labels], args: { numClasses: 4 } } });
  cases.push({ name: 'oneHot inferred', run: () => labels.oneHot(), ref: { op: 'oneHot', inputs: [labels] } });

  const img = randn([2, 3, 7, 9]);
  const vol = randn([1, 2, 4, 5, 6]);
  const interp: [string, Tensor, Record<string, unknown>][] = [
    ['nearest size', img, { size: [12, 5], mode: 'nearest' }],
    ['nearest scale 2', img, { scaleFactor: 2, mode: 'nearest' }],
    ['nearest-exact scale 1.7', img, { scaleFactor: 1.7, mode: 'nearest-exact' }],
    ['bilinear align', img, { size: [16, 16], mode: 'bilinear', alignCorners: true }],
    ['bilinear no align', img, { size: [16, 16], mode: 'bilinear', alignCorners: false }],
    ['bilinear scale 2 align', img, { scaleFactor: 2, mode: 'bilinear', alignCorners: true }],
    ['bilinear down 0.5', img, { scaleFactor: 0.5, mode: 'bilinear', alignCorners: false }],
    ['trilinear', vol, { size: [8, 3, 11], mode: 'trilinear', alignCorners: false }],
    ['nearest 3d', vol, { scaleFactor: 2, mode: 'nearest' }],
  ];
  for (const [name, x, args] of interp)
    cases.push({ name: `interpolate ${name}`, run: () => interpolate(x, args as InterpolateOptions), ref: { op: 'interpolate', inputs: [x], args }, atol: 1e-5 });

  const w = randn([4, 3, 3, 3]);
  const bias = randn([4]);
  cases.push({ name: 'conv2d pad 1', run: () => conv(img, w, { bias, padding: 1 }), ref: { op: 'conv', inputs: [img, w, bias], args: { padding: 1 } }, atol: 1e-4 });
  const w3 = randn([3, 2, 2, 2, 2]);
  cases.push({ name: 'conv3d stride 2', run: () => conv(vol, w3, { stride: 2 }), ref: { op: 'conv', inputs: [vol, w3], args: { stride: 2 } }, atol: 1e-4 });

  const g = randn([2, 3, 4]);
  cases.push({
    name: 'backward of a composite',
    run: () => {
      const x = g.clone().setRequiresGrad();
      const y = x.softmax(1).mul(x.sigmoid()).sum().add(x.square().mean().mul(0.5));
      y.backward();
      return [y.detach(), x.grad!];
    },
    ref: { op: 'grad', inputs: [g], args: { scale: 0.5 } },
    atol: 1e-5,
  });
  const ar = arange(0, 12).reshape([3, 4]);
  cases.push({ name: 'arange reshape sum', run: () => ar.sum(0), ref: { op: 'sum', inputs: [ar], args: { dim: 0 } } });
  return cases;
}

test('tensor ops equal the PyTorch reference', (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch (set SEMISEG_PYTHON or run npm run setup)');
  const cases = tidy(() => buildCases());
  const results = runReference('tensor_ops.py', cases.map((c) => c.ref));
  let checked = 0;
  for (const [i, c] of cases.entries()) {
    const r = results[i];
    if ('error' in r) {
      t.fail(`${c.name}: the reference failed: ${r.error}`);
      continue;
    }
    tidy(() => {
      const out = c.run();
      const outs = Array.isArray(out) ? out : [out];
      t.is(outs.length, r.outputs.length, c.name);
      outs.forEach((o, k) => {
        const e = r.outputs[k];
        t.deepEqual(o.shape, e.shape, `${c.name}: shape`);
        t.is(o.dtype as string, e.dtype, `${c.name}: dtype`);
        const worst = closeness(o.toArray(), decodeValues(e), c.atol ?? 1e-6, c.rtol ?? 1e-5);
        t.true(worst <= 1, `${c.name}: output ${k} differs from PyTorch (${worst.toFixed(2)} x tolerance)`);
        checked++;
      });
    });
  }
  // every case compared (the backward case has two outputs): no case was silently dropped
  t.is(checked, cases.length + 1);
});
