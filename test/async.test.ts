// Long native calls run off the JS thread: the event loop keeps turning while they work.
// Serial: liveTensors() counts are only meaningful when no other test of this file runs in between.
import test from 'ava';

import { liveTensors, noGrad, ones, rand, tensor, tidy } from '../lib/index.js';

test.serial('a timer fires while a long native call runs asynchronously', async (t) => {
  const a = rand([1536, 1536]);
  const b = rand([1536, 1536]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  // several back-to-back multiplications (each ~7 GFLOP) so the call lasts far longer than a tick
  let settled = 0;
  const started = Date.now();
  const results = await Promise.all([a.matmulAsync(b), a.matmulAsync(b), a.matmulAsync(b)].map((p) => p.then((r) => (settled++, r))));
  const elapsed = Date.now() - started;
  clearInterval(timer);
  t.is(settled, 3);
  t.true(ticks >= 1, `no timer tick during ${elapsed} ms of native work`);
  // the result is right: compare one element with a JS dot product
  const av = a.toArray() as Float32Array;
  const bv = b.toArray() as Float32Array;
  let dot = 0;
  for (let k = 0; k < 1536; k++) dot += av[5 * 1536 + k] * bv[k * 1536 + 7];
  const got = (results[0].toArray() as Float32Array)[5 * 1536 + 7];
  t.true(Math.abs(got - dot) < 1e-3 * Math.abs(dot), `${got} vs ${dot}`);
  for (const r of [a, b, ...results]) r.dispose();
});

test.serial('the synchronous variant blocks the loop, the async one does not', async (t) => {
  const a = rand([1024, 1024]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  await new Promise((r) => setTimeout(r, 5));
  const before = ticks;
  tidy(() => {
    for (let i = 0; i < 3; i++) a.matmul(a);
  });
  t.is(ticks, before, 'timers cannot run during a synchronous call');
  const r = await a.matmulAsync(a);
  clearInterval(timer);
  r.dispose();
  a.dispose();
});

test.serial('async ops capture the grad mode at call time', async (t) => {
  const w = tensor([[1, 2], [3, 4]], { requiresGrad: true });
  const p = noGrad(() => w.matmulAsync(w));
  const q = w.matmulAsync(w);
  const [inNoGrad, withGrad] = await Promise.all([p, q]);
  t.false(inNoGrad.requiresGrad);
  t.true(withGrad.requiresGrad);
  withGrad.sum().backward();
  t.deepEqual(Array.from(w.grad!.toArray() as Float32Array), [7, 11, 9, 13]);
  for (const x of [w, inNoGrad, withGrad]) x.dispose();
});

test.serial('dataAsync reads values off the JS thread and disposing early is safe', async (t) => {
  const start = liveTensors();
  const x = tidy(() => ones([1000, 100]).mul(3));
  const y = ones([100, 2]);
  const pending = x.dataAsync();
  const product = x.matmulAsync(y);
  x.dispose(); // the native work holds its own references
  y.dispose();
  const values = (await pending) as Float32Array;
  t.is(values.length, 100000);
  t.true(values.every((v) => v === 3));
  const p = await product;
  t.deepEqual(Array.from(p.toArray() as Float32Array).slice(0, 2), [300, 300]);
  p.dispose();
  t.is(liveTensors(), start);
});
