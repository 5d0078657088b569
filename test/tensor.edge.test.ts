// Tensor API edges a TypeScript user meets (an adversarial review against PyTorch's behaviour): async
// bodies in tidy, in-place writes under a pending async op, integer ranges and int64 precision, keepdim
// without dims, integer powers, -0, sparse arrays, SharedArrayBuffer input, printing, and LibTorch errors
// that name their op.
import { inspect } from 'node:util';

import test from 'ava';

import { dispose, liveTensors, ones, randn, tensor, tidy, zeros } from '../lib/index.js';

test.serial('tidy refuses an async function before running it, and a returned promise does not become an unhandled rejection', async (t) => {
  const before = liveTensors();
  let ran = false;
  t.throws(
    () =>
      tidy((async () => {
        ran = true;
        return ones([2]);
      }) as unknown as () => number),
    { instanceOf: TypeError, message: "tidy(): argument 'fn' must be synchronous, got an async function (await outside tidy)" },
  );
  t.false(ran);
  // a plain function returning a failing promise: refused, and its rejection is handled
  const rejections: unknown[] = [];
  const onRejection = (r: unknown) => rejections.push(r);
  process.on('unhandledRejection', onRejection);
  t.throws(() => tidy(() => Promise.reject(new Error('inner'))), { message: /must be synchronous, got a function that returned a Promise/ });
  await new Promise((r) => setTimeout(r, 20));
  process.off('unhandledRejection', onRejection);
  t.deepEqual(rejections, []);
  t.is(liveTensors(), before);
});

test('an in-place write waits for nothing: it is refused while a pending async op reads the tensor', async (t) => {
  const a = ones([300, 300]);
  const pending = a.matmulAsync(a);
  t.throws(() => a.copyFrom(zeros([300, 300])), { message: 'copyFrom(): the tensor is in use by 1 pending async native call(s); await them first' });
  const product = await pending;
  t.is(Number(product.max().item()), 300);
  const z = zeros([300, 300]);
  a.copyFrom(z);
  t.is(Number(a.sum().item()), 0);
  dispose([a, product, z]);
});

test.serial('integers: out-of-range values are refused, int64 scalars beyond 2^53 stay exact, item() refuses to round', (t) => {
  t.throws(() => tensor([3e9], { dtype: 'int32' }), { instanceOf: RangeError, message: 'tensor(): value 3000000000 (flat index 0) cannot be converted to int32 without overflow' });
  t.throws(() => tensor([1, 256], { dtype: 'uint8' }), { message: /value 256 \(flat index 1\) cannot be converted to uint8/ });
  t.throws(() => tensor([NaN], { dtype: 'int64' }), { message: /value NaN \(flat index 0\) cannot be converted to int64/ });
  const before = liveTensors();
  t.throws(() => zeros([4], { dtype: 'int64', requiresGrad: true }), { instanceOf: TypeError, message: "zeros(): option 'requiresGrad' needs a floating-point dtype; only those have gradients, got int64" });
  t.is(liveTensors(), before, 'nothing created');
  // PyTorch: torch.tensor([1], dtype=torch.int64) + 2**54 == 18014398509481985 (int64)
  const big = tensor(new BigInt64Array([1n])).add(2 ** 54);
  t.is(big.dtype, 'int64');
  t.deepEqual(Array.from(big.toArray() as BigInt64Array), [18014398509481985n]);
  t.throws(() => big.item(), { instanceOf: RangeError, message: "item(): the int64 value 18014398509481985 is beyond JavaScript's safe integers (2^53); read it with toArray(), a BigInt64Array" });
  const small = tensor(new BigInt64Array([42n]));
  t.is(small.item(), 42);
  // pow with a negative integer exponent on an integer tensor: PyTorch refuses
  t.throws(() => tensor(new Int32Array([2])).pow(-1), { message: /Integers to negative integer powers are not allowed/ });
  t.is(Number(tensor([2]).pow(-1).item()), 0.5);
  dispose([big, small]);
});

test('keepdim without dims keeps every dim as 1; -0 scalars stay negative zero', (t) => {
  const x = randn([2, 3]);
  for (const [name, r] of [['sum', x.sum(undefined, true)], ['mean', x.mean(undefined, true)], ['max', x.max(undefined, true)], ['min', x.min(undefined, true)]] as const) {
    t.deepEqual(r.shape, [1, 1], name);
    r.dispose();
  }
  const total = x.sum();
  t.deepEqual(total.shape, []);
  const z = tensor([1]).mul(-0);
  t.true(Object.is((z.toArray() as Float32Array)[0], -0));
  dispose([x, total, z]);
});

test('sparse arrays, shared memory, printing, and LibTorch errors that name their op', (t) => {
  // eslint-disable-next-line no-sparse-arrays
  t.throws(() => tensor([1, , 3] as number[]), { message: /tensor\(\): argument 'data\[1\]' must be a number or a boolean, got undefined/ });
  const x = randn([3, 4]);
  // eslint-disable-next-line no-sparse-arrays
  t.throws(() => x.reshape([3, , 4] as number[]), { message: /reshape\(\): argument 'shape\[1\]' must be an integer, got undefined/ });
  const shared = new Float32Array(new SharedArrayBuffer(12));
  shared.set([1, 2, 3]);
  const fromShared = tensor(shared);
  t.deepEqual(Array.from(fromShared.toArray() as Float32Array), [1, 2, 3]);
  t.is(inspect(x), 'Tensor(shape=[3, 4], dtype=float32, device=cpu)');
  t.is(JSON.stringify({ x }), '{"x":"Tensor(shape=[3, 4], dtype=float32, device=cpu)"}');
  t.throws(() => x.to('int16' as 'int32'), { instanceOf: RangeError, message: /to\(\): argument 'target' must be a dtype \(float32, .*\) or a device/ });
  t.throws(() => x.narrow(5, 0, 1), { message: /^narrow\(\): Dimension out of range/ });
  t.throws(() => x.transpose(0, 7), { message: /^transpose\(\): Dimension out of range/ });
  dispose([x, fromShared]);
});
