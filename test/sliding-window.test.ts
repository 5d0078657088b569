// slidingWindowWith (the sliding-window protocol around a JS predictor) against the native sliding
// window. In a file of its own: it counts live tensors, and the abort test of infer.test.ts leaves a
// native job finishing in the background.
import test from 'ava';

import { dispose, liveTensors, manualSeed, nets, randn, slidingWindowInference, slidingWindowWith, tidy } from '../lib/index.js';
import { maxAbsDiff } from './helpers/python.js';

test('slidingWindowWith around a JS predictor equals the native sliding window (padding, origins, averaging)', async (t) => {
  manualSeed(8);
  const net = nets.VNet3D({ nFilters: 4 }).eval();
  const before = liveTensors();
  for (const shape of [
    [37, 29, 21],
    [20, 20, 10], // smaller than the patch on every axis: zero padding
  ]) {
    const image = randn(shape);
    const native = await slidingWindowInference(net, image, { patch: [32, 32, 16], strides: [18, 18, 4] });
    const viaJs = await slidingWindowWith(async (w) => tidy(() => net.forwardSync(w).softmax(1)), image, { patch: [32, 32, 16], strides: [18, 18, 4], batch: 3 });
    t.deepEqual(viaJs.shape, [2, ...shape]);
    t.true(maxAbsDiff(viaJs.toArray() as Float32Array, native.toArray() as Float32Array) < 1e-6);
    dispose([image, native, viaJs]);
  }
  t.is(liveTensors(), before);
  net.dispose();
});

