// Explicit memory: dispose, tidy, keep, and the liveTensors() counter that leak tests rely on.
import test from 'ava';

import { dispose, externalMemory, keep, liveTensors, ones, rand, tensor, tidy, zeros, type Tensor } from '../lib/index.js';

test('10,000 create/dispose cycles return liveTensors() to its start', (t) => {
  const start = liveTensors();
  for (let i = 0; i < 10_000; i++) {
    const a = zeros([8, 8]);
    const b = a.add(i);
    t.is(liveTensors(), start + 2);
    a.dispose();
    b.dispose();
  }
  t.is(liveTensors(), start);
});

test('10,000 tidy scopes with intermediates leak nothing', (t) => {
  const start = liveTensors();
  let acc = zeros([4]);
  for (let i = 0; i < 10_000; i++) {
    const next = tidy(() => acc.add(ones([4]).mul(2)).sub(1));
    acc.dispose();
    acc = next;
  }
  t.deepEqual(Array.from(acc.toArray() as Float32Array), [10000, 10000, 10000, 10000]);
  acc.dispose();
  t.is(liveTensors(), start);
});

test('tidy keeps what it returns (nested in arrays and objects) and frees the rest', (t) => {
  const start = liveTensors();
  let inner: Tensor | undefined;
  const out = tidy(() => {
    const a = rand([3]);
    inner = a.mul(2);
    const b = a.add(1);
    return { pair: [a, b], n: 3 };
  });
  t.is(liveTensors(), start + 2);
  t.true(inner!.isDisposed);
  t.false(out.pair[0].isDisposed);
  dispose(out);
  t.is(liveTensors(), start);
});

test('nested tidy hands returned tensors to the outer scope', (t) => {
  const start = liveTensors();
  tidy(() => {
    const x = tidy(() => ones([2]).add(1));
    t.false(x.isDisposed);
    t.is(liveTensors(), start + 1);
    return undefined;
  });
  t.is(liveTensors(), start);
});

test('keep() exempts a tensor from tidy', (t) => {
  const start = liveTensors();
  let kept: Tensor | undefined;
  tidy(() => {
    kept = keep(ones([2]));
    ones([2]);
  });
  t.is(liveTensors(), start + 1);
  kept!.dispose();
  t.is(liveTensors(), start);
});

test('a throwing tidy frees everything it created and rethrows', (t) => {
  const start = liveTensors();
  t.throws(
    () =>
      tidy(() => {
        const a = ones([2, 3]);
        return a.matmul(ones([2, 3]));
      }),
    { message: /cannot be multiplied/ },
  );
  t.is(liveTensors(), start);
});

test('an async function is refused by tidy, with its tensors freed', (t) => {
  const start = liveTensors();
  t.throws(() => tidy((async () => ones([1])) as unknown as () => Tensor), {
    instanceOf: TypeError,
    message: /must be synchronous/,
  });
  t.is(liveTensors(), start);
});

test('dispose is idempotent and use after dispose is a clear error', (t) => {
  const a = tensor([1, 2]);
  a.dispose();
  a.dispose();
  t.true(a.isDisposed);
  t.is(a.toString(), 'Tensor(disposed)');
  t.throws(() => a.add(1), { message: "add(): argument 'input' is a disposed tensor" });
});

test('ops on views and grads do not leak handles', (t) => {
  const start = liveTensors();
  for (let i = 0; i < 500; i++) {
    tidy(() => {
      const w = rand([4, 4]).setRequiresGrad();
      w.transpose(0, 1).matmul(w).sum().backward();
      const g = w.grad;
      t.truthy(g);
    });
  }
  t.is(liveTensors(), start);
});

test('native bytes are reported to V8 while a tensor lives', (t) => {
  // V8's counter also moves with ArrayBuffers and Node's own buffers: allow 64 KiB of such noise.
  const near = (actual: number, expected: number, what: string) =>
    t.true(Math.abs(actual - expected) < 64 * 1024, `${what}: ${actual} vs ${expected}`);
  const before = externalMemory();
  const big = zeros([16, 1024, 1024]); // 64 MiB of float32
  const during = externalMemory();
  near(during - before, 64 * 1024 * 1024, 'growth');
  big.dispose();
  near(externalMemory(), before, 'after dispose');
  // and a loop of 1 MiB creations gives every byte back
  for (let i = 0; i < 100; i++) tidy(() => void rand([256, 1024]).mul(2));
  near(externalMemory(), before, 'after 100 tidy scopes');
});
