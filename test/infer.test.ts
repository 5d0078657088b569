// Inference against the published test code (benchmarks/reference/inference.py): the LA sliding window
// (with padding of a volume smaller than the patch) and the ACDC slice-wise protocol; cancellation.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  dispose,
  liveTensors,
  manualSeed,
  nets,
  probabilitiesToLabels,
  randn,
  readTorchStateDict,
  sliceInference,
  tidy,
  slidingWindowInference,
  pad,
  tensor,
  trainers,
  writeTorchStateDict,
} from '../lib/index.js';
import { referencePython } from './helpers/reference.js';
import { maxAbs, maxAbsDiff, runPython } from './helpers/python.js';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-infer-'));
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.serial('sliding window and slice-wise inference equal the published test code', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  const start = liveTensors();
  manualSeed(21);
  const spec = { nFilters: 4, patch: [48, 48, 32], strides: [18, 18, 4], features: [4, 8, 16, 32, 64], size: [64, 64] };
  const vnet = nets.VNet3D({ nFilters: 4, hasDropout: false });
  const unet = nets.UNet2D({ features: spec.features });
  // x is smaller than the patch (padding), y and z need several windows
  const volume = randn([40, 61, 45]);
  const slices = randn([3, 50, 37]);
  const vsd = vnet.stateDict();
  const usd = unet.stateDict();
  await writeTorchStateDict(join(dir, 'vnet.pt'), vsd);
  await writeTorchStateDict(join(dir, 'unet.pt'), usd);
  await writeTorchStateDict(join(dir, 'io.pt'), { volume, slices });
  writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
  runPython('inference.py', dir);
  const ref = await readTorchStateDict(join(dir, 'out.pt'));
  const probs = await slidingWindowInference(vnet, volume, { patch: spec.patch, strides: spec.strides, batch: 5 });
  t.deepEqual(probs.shape, [2, 40, 61, 45]);
  const diff = maxAbsDiff(probs.toArray() as Float32Array, ref.score.toArray() as Float32Array);
  t.true(diff <= 1e-5, `probabilities differ by ${diff}`);
  t.true(maxAbs(ref.score.toArray() as Float32Array) > 0.5);
  const labels = probabilitiesToLabels(probs, { threshold: 0.5 });
  t.deepEqual(labels.shape, [40, 61, 45]);
  const acdc = await sliceInference(unet, slices, { size: [64, 64] });
  t.deepEqual(acdc.shape, [3, 50, 37]);
  t.deepEqual(acdc.toArray(), ref.slices.toArray());
  t.true(unet.training && vnet.training, 'both networks are back in training mode (their default)');
  dispose([vsd, usd, volume, slices, ref, probs, labels, acdc]);
  vnet.dispose();
  unet.dispose();
  t.is(liveTensors(), start);
});

test.serial('sliding-window inference stops when its signal aborts, and the network is usable after', async (t) => {
  const vnet = nets.VNet3D({ nFilters: 4 }).train();
  const volume = randn([64, 64, 64]);
  const controller = new AbortController();
  const run = slidingWindowInference(vnet, volume, { patch: [32, 32, 32], strides: [4, 4, 4], batch: 1, signal: controller.signal });
  setTimeout(() => controller.abort(new Error('stopped by the user')), 50);
  await t.throwsAsync(run, { message: 'stopped by the user' });
  t.true(vnet.training, 'the mode is restored');
  const probs = await slidingWindowInference(vnet, volume.narrow(0, 0, 32), { patch: [32, 32, 32], strides: [32, 32, 32] });
  t.deepEqual(probs.shape, [2, 32, 64, 64]);
  await t.throwsAsync(slidingWindowInference(vnet, volume, { patch: [32, 32] }), { instanceOf: RangeError, message: /'patch' and 'strides' need 3 entries for a VNet3D/ });
  dispose([volume, probs]);
  vnet.dispose();
});

test.serial('Gaussian window weighting: one window equals the plain result, overlaps still average to probabilities', async (t) => {
  const vnet = nets.VNet3D({ nFilters: 4, hasDropout: false });
  const volume = randn([32, 48, 32]);
  const one = { patch: [32, 48, 32], strides: [32, 48, 32] };
  const plain = await slidingWindowInference(vnet, volume, one);
  const weighted = await slidingWindowInference(vnet, volume, { ...one, gaussian: true });
  t.true(maxAbsDiff(plain.toArray() as Float32Array, weighted.toArray() as Float32Array) < 1e-6);
  const many = await slidingWindowInference(vnet, volume, { patch: [16, 16, 16], strides: [8, 8, 8], gaussian: true });
  const sums = tidy(() => many.sum(0).sub(1).abs().max().item() as number);
  t.true(sums < 1e-5, `class probabilities sum to 1 (off by ${sums})`);
  const uniform = await slidingWindowInference(vnet, volume, { patch: [16, 16, 16], strides: [8, 8, 8] });
  const diff = maxAbsDiff(many.toArray() as Float32Array, uniform.toArray() as Float32Array);
  t.true(diff > 0 && diff < 0.5, `weighting changes the average, within reason (${diff})`);
  dispose([volume, plain, weighted, many, uniform]);
  vnet.dispose();
});

test('pad: constant padding and cropping from the last axis backwards, with clear errors', (t) => {
  const x = tensor([
    [1, 2],
    [3, 4],
  ]);
  const p = pad(x, [1, 0, 0, 1], 9);
  t.deepEqual(p.shape, [3, 3]);
  t.deepEqual(Array.from(p.toArray() as Float32Array), [9, 1, 2, 9, 3, 4, 9, 9, 9]);
  const c = pad(x, [0, -1]);
  t.deepEqual(Array.from(c.toArray() as Float32Array), [1, 3]);
  t.throws(() => pad(x, [1, 2, 3]), { message: "pad(): argument 'padding' must hold pairs for at most 2 dimensions, got 3 values" });
  t.throws(() => pad(x, [0.5, 1]), { message: /pad\(\): argument 'padding' must be an array of integers/ });
  dispose([x, p, c]);
});

// The LA protocol's labels are p1 >= 0.5: at an exact tie (a network whose logits are all equal) every
// voxel is foreground, where argmax would pick the background.
test.serial('two-class volumes are labelled p1 >= 0.5, foreground at a tie', async (t) => {
  const net = nets.VNet3D({ nFilters: 2, normalization: 'none', hasDropout: false }).eval();
  const sd = net.stateDict();
  tidy(() => Object.values(sd).forEach((w) => w.copyFrom(w.mul(0))));
  const image = randn([16, 16, 16]);
  const labels = await trainers.predictVolume(net, image, { size: [16, 16, 16], classes: 2 });
  t.deepEqual(labels.shape, [16, 16, 16]);
  t.is(Number(labels.sum().item()), 16 * 16 * 16, 'all foreground');
  dispose([...Object.values(sd), image, labels]);
  net.dispose();
});

// Inference builds its BatchNorm-folded copy by cloning the network, whose fresh modules draw their
// initialisation from the global generator: it must leave the generator where it was (a training run
// stopped during validation resumed with other draws).
test.serial('inference leaves the global random generator untouched, also when it rebuilds its folded copy', async (t) => {
  const net = nets.UNet2D({ features: [2, 4, 8, 16, 32] }).eval();
  const volume = randn([2, 32, 32]);
  for (const round of [0, 1]) {
    // changed weights: the folded copy is rebuilt (cloned) in this call
    const sd = net.stateDict();
    tidy(() => sd['decoder.out_conv.weight'].copyFrom(sd['decoder.out_conv.weight'].add(0.1)));
    dispose(Object.values(sd));
    manualSeed(5);
    const expected = randn([4]);
    manualSeed(5);
    const labels = await sliceInference(net, volume, { size: [32, 32] });
    const drawn = randn([4]);
    t.deepEqual(Array.from(drawn.toArray() as Float32Array), Array.from(expected.toArray() as Float32Array), `round ${round}`);
    dispose([expected, labels, drawn]);
  }
  volume.dispose();
  net.dispose();
});

// Slices kept at a plan's spacing (plan.slices 'crop'): each whole slice zero-padded (centred) to at least
// the slice size and to multiples of 16, its labels cut back; the same as the network on the padded slice.
test.serial('sliceInference with resize: false pads each slice instead of resizing it, and cuts the labels back', async (t) => {
  const live = liveTensors();
  manualSeed(3);
  const net = nets.UNet2D({ features: [2, 4, 8, 16, 32] }).eval();
  const volume = randn([3, 37, 21]);
  const labels = await sliceInference(net, volume, { size: [32, 16], resize: false, foldBatchNorm: false });
  t.deepEqual(labels.shape, [3, 37, 21]);
  // reference: pad to 48 x 32 (37 -> 48: 5 before, 6 after; 21 -> max(16, 32) = 32: 5 before, 6 after)
  const expected = tidy(() => {
    const padded = pad(volume, [5, 6, 5, 6], 0).unsqueeze(1);
    return net.forwardSync(padded).argmax(1).narrow(1, 5, 37).narrow(2, 5, 21);
  });
  t.is(tidy(() => Number(labels.ne(expected).sum().item())), 0);
  // the resize protocol differs (the slices are zoomed to 32 x 16 and back)
  const resized = await sliceInference(net, volume, { size: [32, 16] });
  t.deepEqual(resized.shape, [3, 37, 21]);
  await t.throwsAsync(sliceInference(net, volume, { resize: 'no' as never }), { message: /sliceInference\(\): argument 'resize' must be/ });
  dispose([volume, labels, expected, resized]);
  net.dispose();
  t.is(liveTensors(), live);
});
