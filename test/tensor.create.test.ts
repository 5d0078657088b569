// Creating tensors from JS data and factories, and reading them back.
import test from 'ava';

import {
  arange,
  full,
  linspace,
  manualSeed,
  ones,
  rand,
  randint,
  randn,
  tensor,
  tidy,
  zeros,
  DTYPES,
  Tensor,
} from '../lib/index.js';

test('tensor() infers shape from nested arrays and copies the data', (t) => {
  const src = [
    [1, 2, 3],
    [4, 5, 6],
  ];
  const x = tensor(src);
  src[0][0] = 100; // the tensor holds a copy
  t.deepEqual(x.shape, [2, 3]);
  t.is(x.dtype, 'float32');
  t.is(x.device, 'cpu');
  t.false(x.requiresGrad);
  t.deepEqual(Array.from(x.toArray() as Float32Array), [1, 2, 3, 4, 5, 6]);
  const out = x.toArray() as Float32Array;
  out[0] = -1; // and toArray() returns a fresh copy
  t.is((x.toArray() as Float32Array)[0], 1);
  x.dispose();
});

test('TypedArrays keep their element type; options convert', (t) => {
  tidy(() => {
    t.is(tensor(new Float64Array([1, 2])).dtype, 'float64');
    t.is(tensor(new Int32Array([1, 2])).dtype, 'int32');
    t.is(tensor(new BigInt64Array([1n, -2n])).dtype, 'int64');
    t.is(tensor(new Uint8Array([1, 2])).dtype, 'uint8');
    t.is(tensor(new Int16Array([1, -2])).dtype, 'int32');
    t.is(tensor(new Uint32Array([4000000000])).dtype, 'int64');
    t.deepEqual(Array.from(tensor(new Uint32Array([4000000000])).toArray() as BigInt64Array), [4000000000n]);
    t.deepEqual(tensor([true, false, true]).toArray(), new Uint8Array([1, 0, 1]));
    t.is(tensor([true]).dtype, 'bool');
    const shaped = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), { shape: [3, 2], dtype: 'int64' });
    t.deepEqual(shaped.shape, [3, 2]);
    t.deepEqual(shaped.toArray(), new BigInt64Array([1n, 2n, 3n, 4n, 5n, 6n]));
  });
});

test('every dtype round-trips through tensor() and toArray()', (t) => {
  const values = [0, 1, 2, 3];
  for (const dtype of DTYPES) {
    tidy(() => {
      const x = tensor(values, { dtype });
      t.is(x.dtype, dtype);
      const back = Array.from(x.toArray() as ArrayLike<number | bigint>, Number);
      t.deepEqual(back, dtype === 'bool' ? [0, 1, 1, 1] : values, dtype);
      t.is(x.to('float64').dtype, 'float64');
    });
  }
});

test('half precision reads back widened to Float32Array with rounding', (t) => {
  tidy(() => {
    const h = tensor([1.0009765625, 3.14159], { dtype: 'float16' });
    const back = h.toArray();
    t.true(back instanceof Float32Array);
    t.is(back[0], 1.0009765625); // exactly representable in float16
    t.is(back[1], 3.140625); // float16 rounding of pi
    const bf = tensor([3.14159], { dtype: 'bfloat16' });
    t.is(bf.toArray()[0], 3.140625);
  });
});

test('scalars, item() and empty tensors', (t) => {
  tidy(() => {
    const s = tensor(2.5);
    t.deepEqual(s.shape, []);
    t.is(s.item(), 2.5);
    t.is(tensor([7], { dtype: 'int64' }).item(), 7);
    t.is(tensor([true]).item(), true);
    const e = tensor([]);
    t.deepEqual(e.shape, [0]);
    t.is(e.toArray().length, 0);
    t.deepEqual(zeros([2, 0, 3]).shape, [2, 0, 3]);
    t.is(zeros([2, 0, 3]).sum().item(), 0);
  });
});

test('factories take the shape first and honour dtype', (t) => {
  tidy(() => {
    t.deepEqual(Array.from(zeros([2, 2]).toArray() as Float32Array), [0, 0, 0, 0]);
    t.deepEqual(Array.from(ones([3], { dtype: 'int32' }).toArray() as Int32Array), [1, 1, 1]);
    t.deepEqual(Array.from(full([2], 7.5).toArray() as Float32Array), [7.5, 7.5]);
    t.is(full([1], true).dtype, 'bool');
    t.deepEqual(arange(4).toArray(), new BigInt64Array([0n, 1n, 2n, 3n]));
    t.deepEqual(Array.from(arange(0, 1, 0.25).toArray() as Float32Array), [0, 0.25, 0.5, 0.75]);
    t.deepEqual(Array.from(arange(5, 0, -2).toArray() as BigInt64Array, Number), [5, 3, 1]);
    t.deepEqual(Array.from(linspace(-1, 1, 5).toArray() as Float32Array), [-1, -0.5, 0, 0.5, 1]);
    const u = rand([1000]).toArray() as Float32Array;
    t.true(u.every((v) => v >= 0 && v < 1));
    const r = randint([1000], -3, 4).toArray() as BigInt64Array;
    t.true(r.every((v) => v >= -3n && v < 4n));
    t.is(new Set(r).size, 7);
    const g = randn([20000]);
    t.true(Math.abs(g.mean().item() as number) < 0.05);
    t.true(Math.abs((g.square().mean().item() as number) - 1) < 0.05);
    t.true(zeros([2], { requiresGrad: true }).requiresGrad);
  });
});

test('manualSeed makes random factories repeatable', (t) => {
  tidy(() => {
    manualSeed(1234);
    const a = randn([16]).toArray();
    const ai = randint([16], 0, 100).toArray();
    manualSeed(1234);
    t.deepEqual(randn([16]).toArray(), a);
    t.deepEqual(randint([16], 0, 100).toArray(), ai);
    manualSeed(1235);
    t.notDeepEqual(randn([16]).toArray(), a);
  });
});

test('views share storage and toString describes the tensor', (t) => {
  tidy(() => {
    const x = arange(6, undefined, 1, { dtype: 'float32' }).reshape([2, 3]);
    const tr = x.transpose(0, 1);
    t.deepEqual(tr.shape, [3, 2]);
    t.deepEqual(Array.from(tr.toArray() as Float32Array), [0, 3, 1, 4, 2, 5]); // exported contiguous
    t.is(x.toString(), 'Tensor(shape=[2, 3], dtype=float32, device=cpu)');
    t.true(x instanceof Tensor);
    t.is(x.rank, 2);
    t.is(x.numel, 6);
  });
});

test('grad, zeroGrad, detach and noGrad', async (t) => {
  const { noGrad, isGradEnabled } = await import('../lib/index.js');
  tidy(() => {
    const w = tensor([1, 2, 3], { requiresGrad: true });
    t.is(w.grad, null);
    w.mul(w).sum().backward();
    t.deepEqual(Array.from(w.grad!.toArray() as Float32Array), [2, 4, 6]);
    w.mul(w).sum().backward(); // accumulates, as in PyTorch
    t.deepEqual(Array.from(w.grad!.toArray() as Float32Array), [4, 8, 12]);
    w.zeroGrad();
    t.is(w.grad, null);
    t.false(w.detach().requiresGrad);
    const y = noGrad(() => {
      t.false(isGradEnabled());
      return w.mul(2);
    });
    t.true(isGradEnabled());
    t.false(y.requiresGrad);
    t.true(w.mul(2).requiresGrad);
  });
});

