// Segmenter's checks of what it is given: options (unknown keys, maxVoxels), the checkpoint path (a
// folder) and kind, the image (not a SpatialImage, NaN / infinite voxels, its layout: 3-D, channels first,
// channels last, a trailing 1) and the size the plan's resampling would give, refused before any
// preprocessing. Serial: liveTensors() is process-wide.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { liveTensors, manualSeed, nets, parseNifti, saveCheckpoint, Segmenter, setNumThreads, tensor, tidy, zeros, type Tensor } from '../lib/index.js';
import { DEFAULT_MAX_VOXELS, ImageTooLargeError, networkFromCheckpoint } from '../lib/segmenter.js';
import type { SpatialImage } from '../lib/data/image.js';
import { niftiImageBytes, testPlan, testValues } from './helpers/nifti.js';

setNumThreads(1);
let dir = '';
let plain = ''; // a UNet2D checkpoint without a plan
let planned = ''; // a VNet3D checkpoint with a plan: 1 mm, crop, z-score
let planned2d = ''; // a UNet2D checkpoint with a 2-D plan: slices along axis 2 keep their spacing
let twoChannel = ''; // a VNet3D checkpoint of two channels (T1, T2)

const IDENTITY = [
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
];

const plan = testPlan;

const values = testValues;

function image(shape: number[], spacing: number[], seed = 1, data?: Float32Array): SpatialImage {
  const v = data ?? values(shape.reduce((a, b) => a * b, 1), seed);
  return { data: tidy(() => tensor(v).reshape(shape)), spacing, affine: IDENTITY };
}

const labelsOf = (t: Tensor) => Array.from(t.data() as BigInt64Array, Number);

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-segmenter-'));
  manualSeed(11);
  const u = nets.UNet2D({ inChannels: 1, outChannels: 3, features: [2, 4, 8, 16, 32] });
  plain = join(dir, 'plain.ckpt');
  await saveCheckpoint(plain, { network: u, iteration: 0, extra: { config: { size: [16, 16], classes: 3, method: 'supervised' } } });
  planned2d = join(dir, 'planned2d.ckpt');
  const p2 = plan({ network: 'UNet2D', spacing: [1, 1, 5], size: [16, 16], classes: ['b', 'x', 'y'] });
  await saveCheckpoint(planned2d, { network: u, iteration: 0, extra: { config: { size: [16, 16], classes: 3, method: 'supervised', plan: p2 } } });
  u.dispose();
  const v = nets.VNet3D({ inChannels: 1, outChannels: 2, nFilters: 2 });
  planned = join(dir, 'planned.ckpt');
  await saveCheckpoint(planned, { network: v, iteration: 0, extra: { config: { size: [16, 16, 16], classes: 2, method: 'supervised', plan: plan({}) } } });
  v.dispose();
  manualSeed(3);
  const v2 = nets.VNet3D({ inChannels: 2, outChannels: 2, nFilters: 2, normalization: 'instancenorm' });
  twoChannel = join(dir, 'two.ckpt');
  const p3 = plan({ channels: ['T1', 'T2'], normalization: [{ scheme: 'zscore' }, { scheme: 'zscore' }], crop: false });
  await saveCheckpoint(twoChannel, { network: v2, iteration: 0, extra: { config: { size: [16, 16, 16], classes: 2, method: 'supervised', plan: p3 } } });
  v2.dispose();
});

test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.serial('Segmenter.load refuses unknown option keys, a bad maxVoxels and a folder, naming them', async (t) => {
  const live = liveTensors();
  await t.throwsAsync(() => Segmenter.load(plain, { precison: 'bfloat16' } as never), {
    instanceOf: RangeError,
    message: "Segmenter.load(): unknown key 'precison' in argument 'options' (expected one of precision, task, maxVoxels)",
  });
  for (const bad of [0, -5, 1.5, Number.NaN, Infinity])
    await t.throwsAsync(() => Segmenter.load(plain, { maxVoxels: bad }), { instanceOf: RangeError, message: /Segmenter\.load\(\): argument 'maxVoxels' must be an integer/ }, String(bad));
  await t.throwsAsync(() => Segmenter.load(plain, { maxVoxels: '1000' as never }), { instanceOf: TypeError, message: /argument 'maxVoxels'/ });
  await t.throwsAsync(() => Segmenter.load(dir), { message: `Segmenter.load(): cannot open '${dir}': it is a directory, not a checkpoint file (e.g. best.ckpt or final.ckpt)` });
  await t.throwsAsync(() => Segmenter.load(undefined as never), { instanceOf: TypeError, message: /Segmenter\.load\(\): argument 'checkpoint' must be a file path, got undefined/ });
  // the checkpoint readers' errors name the function the user called
  const junk = join(dir, 'junk.ckpt');
  writeFileSync(junk, 'not a checkpoint');
  await t.throwsAsync(() => Segmenter.load(junk), { message: `Segmenter.load(): '${junk}' is not a readable torch file: it is not the zip format that torch.save writes` });
  await t.throwsAsync(() => networkFromCheckpoint(junk), { message: `networkFromCheckpoint(): '${junk}' is not a readable torch file: it is not the zip format that torch.save writes` });
  const s = await Segmenter.load(plain);
  t.is(s.maxVoxels, DEFAULT_MAX_VOXELS);
  t.is(DEFAULT_MAX_VOXELS, 512 ** 3);
  s.dispose();
  const s2 = await Segmenter.load(plain, { maxVoxels: 1234, precision: 'float32' });
  t.is(s2.maxVoxels, 1234);
  s2.dispose();
  t.is(liveTensors(), live);
});

test.serial('nets.fromOptions refuses an unknown kind, and so does loading a checkpoint of one', async (t) => {
  t.throws(() => nets.fromOptions('ResNet' as never, { features: [1, 2, 3, 4, 5] }), {
    instanceOf: RangeError,
    message: "nets.fromOptions(): unknown network kind 'ResNet' (expected one of UNet2D, VNet3D, VerSemi)",
  });
  t.throws(() => nets.fromOptions(undefined as never, {}), { instanceOf: TypeError, message: /nets\.fromOptions\(\): argument 'kind'/ });
  // a checkpoint whose metadata names another kind (a newer semiseg, another program)
  const u = nets.UNet2D({ inChannels: 1, outChannels: 2, features: [2, 4, 8, 16, 32] });
  (u as { kind: string }).kind = 'ResNet';
  const path = join(dir, 'resnet.ckpt');
  await saveCheckpoint(path, { network: u, iteration: 0 });
  (u as { kind: string }).kind = 'UNet2D';
  u.dispose();
  const live = liveTensors();
  await t.throwsAsync(() => Segmenter.load(path), {
    instanceOf: RangeError,
    message: `Segmenter.load(): '${path}': unknown network kind 'ResNet' (expected one of UNet2D, VNet3D, VerSemi)`,
  });
  await t.throwsAsync(() => networkFromCheckpoint(path), {
    instanceOf: RangeError,
    message: `networkFromCheckpoint(): '${path}': unknown network kind 'ResNet' (expected one of UNet2D, VNet3D, VerSemi)`,
  });
  t.is(liveTensors(), live);
});

test.serial('segmentImage / segmentNifti refuse what is not a SpatialImage, and a bad signal, with a TypeError', async (t) => {
  const s = await Segmenter.load(plain);
  const raw = zeros([20, 20, 4]);
  const live = liveTensors();
  const spatial = /argument 'image' must be a SpatialImage \{ data: Tensor, spacing: number\[\], affine: number\[\]\[\] \}/;
  await t.throwsAsync(() => s.segmentNifti(raw as never), { instanceOf: TypeError, message: /^Segmenter\.segmentNifti\(\): argument 'image' must be a SpatialImage .*, got a Tensor$/ });
  await t.throwsAsync(() => s.segmentImage(raw as never), { instanceOf: TypeError, message: /^Segmenter\.segmentImage\(\): .*got a Tensor$/ });
  await t.throwsAsync(() => s.segmentImage(niftiImageBytes([4, 4, 4], new Float32Array(64)) as never), { instanceOf: TypeError, message: spatial });
  await t.throwsAsync(() => s.segmentImage({ data: raw } as never), { instanceOf: TypeError, message: /its 'spacing' is undefined, not 3 or more numbers/ });
  await t.throwsAsync(() => s.segmentImage({ data: raw, spacing: [1, 1, 1] } as never), { instanceOf: TypeError, message: /its 'affine' is undefined/ });
  await t.throwsAsync(() => s.segmentImage({ data: [1, 2], spacing: [1, 1, 1], affine: IDENTITY } as never), { instanceOf: TypeError, message: /its 'data' is an array \[1, 2\]/ });
  await t.throwsAsync(() => s.segmentImage(null as never), { instanceOf: TypeError, message: spatial });
  const img = { data: raw, spacing: [1, 1, 1], affine: IDENTITY };
  const c = new AbortController();
  await t.throwsAsync(() => s.segmentNifti(img, { signal: c.signal } as never), { instanceOf: TypeError, message: "Segmenter.segmentNifti(): argument 'signal' must be an AbortSignal (or undefined), got an object" });
  const gone = zeros([4, 4, 4]);
  gone.dispose();
  await t.throwsAsync(() => s.segmentImage({ data: gone, spacing: [1, 1, 1], affine: IDENTITY }), { instanceOf: TypeError, message: /holds a disposed tensor/ });
  t.is(liveTensors(), live);
  raw.dispose();
  s.dispose();
});

test.serial('an image with a NaN or an infinite voxel is a RangeError, with and without a plan', async (t) => {
  for (const ckpt of [plain, planned]) {
    const s = await Segmenter.load(ckpt);
    for (const bad of [Number.NaN, Infinity, -Infinity]) {
      const v = values(20 * 20 * 8, 3);
      v[37] = bad;
      const img = image([20, 20, 8], [1, 1, 1], 3, v);
      const live = liveTensors();
      await t.throwsAsync(() => s.segmentImage(img), { instanceOf: RangeError, message: 'Segmenter.segmentImage(): the image holds NaN or infinite intensities' }, `${ckpt} ${bad}`);
      t.is(liveTensors(), live, 'nothing left behind');
      img.data.dispose();
    }
    // float64 beyond float32's range becomes infinite on the way in: refused too
    const big = { data: tidy(() => tensor(new Float64Array(20 * 20 * 8).fill(1e300)).reshape([20, 20, 8])), spacing: [1, 1, 1], affine: IDENTITY };
    await t.throwsAsync(() => s.segmentImage(big), { instanceOf: RangeError, message: /NaN or infinite/ });
    big.data.dispose();
    // a finite image still segments
    const ok = image([20, 20, 8], [1, 1, 1], 4);
    const labels = await s.segmentImage(ok);
    t.deepEqual(labels.shape, [20, 20, 8]);
    labels.dispose();
    ok.data.dispose();
    s.dispose();
  }
});

test.serial('maxVoxels: the resampled shape is checked before preprocessing, with an error naming shape, spacing, resampled shape and the limit', async (t) => {
  const live = liveTensors();
  // default 2^27: 12^3 voxels of 50 mm would be 600^3 = 216,000,000 voxels at the plan's 1 mm
  const s = await Segmenter.load(planned);
  const img = image([12, 12, 12], [50, 50, 50]);
  const peak = process.resourceUsage().maxRSS; // KiB
  const err = await t.throwsAsync(() => s.segmentImage(img), { instanceOf: RangeError });
  t.true(err instanceof ImageTooLargeError);
  t.is(
    err!.message,
    "Segmenter.segmentImage(): the image of shape 12x12x12 at spacing 50x50x50 mm resamples to 600x600x600 (216000000 voxels) at the model's spacing of 1x1x1 mm: more than the limit of 134217728 voxels (maxVoxels)",
  );
  t.is((err as unknown as { code: string }).code, 'ERR_IMAGE_TOO_LARGE');
  t.deepEqual((err as ImageTooLargeError).resampledShape, [600, 600, 600]);
  const grown = (process.resourceUsage().maxRSS - peak) / 1024;
  t.true(grown < 256, `refused before resampling (600^3 float32 is 824 MiB); the peak RSS grew by ${grown.toFixed(0)} MiB`);
  s.dispose();
  // a set limit, exactly at and one under the resampled size (12^3 at 2 mm -> 24^3 = 13,824)
  const small = image([12, 12, 12], [2, 2, 2]);
  const at = await Segmenter.load(planned, { maxVoxels: 24 ** 3 });
  const labels = await at.segmentImage(small);
  t.deepEqual(labels.shape, [12, 12, 12]);
  labels.dispose();
  at.dispose();
  const under = await Segmenter.load(planned, { maxVoxels: 24 ** 3 - 1 });
  await t.throwsAsync(() => under.segmentImage(small), {
    instanceOf: ImageTooLargeError,
    message: "Segmenter.segmentImage(): the image of shape 12x12x12 at spacing 2x2x2 mm resamples to 24x24x24 (13824 voxels) at the model's spacing of 1x1x1 mm: more than the limit of 13823 voxels (maxVoxels)",
  });
  under.dispose();
  small.data.dispose();
  img.data.dispose();
  t.is(liveTensors(), live);
});

test.serial('maxVoxels counts the crop to the non-zero region, the 2-D plan\'s kept slice axis, and images without a plan', async (t) => {
  // 30^3 at 1 mm with a 10 x 8 x 6 non-zero block: 27,000 voxels uncropped, 480 cropped
  const v = new Float32Array(30 ** 3);
  for (let i = 5; i < 15; i++) for (let j = 10; j < 18; j++) for (let k = 20; k < 26; k++) v[(i * 30 + j) * 30 + k] = 1 + ((i + j + k) % 5);
  const img = image([30, 30, 30], [1, 1, 1], 0, v);
  const fits = await Segmenter.load(planned, { maxVoxels: 480 });
  const labels = await fits.segmentImage(img);
  t.deepEqual(labels.shape, [30, 30, 30]);
  labels.dispose();
  fits.dispose();
  const over = await Segmenter.load(planned, { maxVoxels: 479 });
  await t.throwsAsync(() => over.segmentImage(img), {
    instanceOf: ImageTooLargeError,
    message: "Segmenter.segmentImage(): the image of shape 30x30x30 at spacing 1x1x1 mm, cropped to its non-zero region 10x8x6, resamples to 10x8x6 (480 voxels) at the model's spacing of 1x1x1 mm: more than the limit of 479 voxels (maxVoxels)",
  });
  over.dispose();
  img.data.dispose();
  // 2-D plan at 1 x 1 x 5 mm: axis 2 keeps its 7 slices, 10 x 10 at 2 mm becomes 20 x 20
  const slices = image([10, 10, 7], [2, 2, 1]);
  const s2 = await Segmenter.load(planned2d, { maxVoxels: 20 * 20 * 7 - 1 });
  await t.throwsAsync(() => s2.segmentImage(slices), { instanceOf: ImageTooLargeError, message: /resamples to 20x20x7 \(2800 voxels\) at the model's spacing of 1x1x5 mm: more than the limit of 2799 voxels/ });
  s2.dispose();
  const s3 = await Segmenter.load(planned2d, { maxVoxels: 20 * 20 * 7 });
  const l3 = await s3.segmentImage(slices);
  t.deepEqual(l3.shape, [10, 10, 7]);
  l3.dispose();
  s3.dispose();
  slices.data.dispose();
  // no plan: the image's own size counts
  const s4 = await Segmenter.load(plain, { maxVoxels: 100 });
  const flat = image([10, 10, 2], [1, 1, 1]);
  await t.throwsAsync(() => s4.segmentImage(flat), {
    instanceOf: ImageTooLargeError,
    message: 'Segmenter.segmentImage(): the image of shape 10x10x2 at spacing 1x1x1 mm is 10x10x2 (200 voxels; the model does not resample): more than the limit of 100 voxels (maxVoxels)',
  });
  s4.dispose();
  flat.data.dispose();
});

test.serial('layouts: (I, J, K), (I, J, K, 1), (1, I, J, K); two channels first or last give the same labels', async (t) => {
  const s = await Segmenter.load(plain);
  const base = image([20, 16, 5], [1.5, 1.5, 5]);
  const expected = await s.segmentImage(base);
  t.deepEqual(expected.shape, [20, 16, 5]);
  const want = labelsOf(expected);
  t.true(new Set(want).size > 1, 'the labels vary, so comparing them means something');
  // the same volume as a 4-D NIfTI with a trailing 1 (spacing of 4 entries: only the first 3 count)
  const bytes = niftiImageBytes([20, 16, 5, 1], base.data.data() as Float32Array, [1.5, 1.5, 5, 2]);
  const nifti = parseNifti(bytes, 'trailing-one');
  t.deepEqual(nifti.data.shape, [20, 16, 5, 1]);
  const fromNifti = await s.segmentNifti(nifti);
  t.deepEqual(fromNifti.shape, [20, 16, 5]);
  t.deepEqual(labelsOf(fromNifti), want);
  const first = { ...base, data: base.data.unsqueeze(0) };
  const fromFirst = await s.segmentImage(first);
  t.deepEqual(labelsOf(fromFirst), want);
  // 4-D of other channel counts, and other ranks, are refused naming the shape
  const three = { ...base, data: zeros([20, 16, 5, 3]) };
  await t.throwsAsync(() => s.segmentImage(three), {
    instanceOf: RangeError,
    message: 'Segmenter.segmentImage(): the image has shape 20x16x5x3; the model takes one channel: a 3-D image (I, J, K) is needed, or a 4-D one of shape (1, I, J, K) or (I, J, K, 1)',
  });
  const flat = { ...base, data: zeros([20, 16]) };
  await t.throwsAsync(() => s.segmentImage(flat), { instanceOf: RangeError, message: /the image has shape 20x16; the model takes one channel/ });
  for (const x of [expected, nifti.data, fromNifti, first.data, fromFirst, three.data, flat.data, base.data]) x.dispose();
  s.dispose();

  const s2 = await Segmenter.load(twoChannel);
  const cf = image([2, 18, 18, 18], [1, 1, 1], 9);
  const a = await s2.segmentImage(cf);
  t.deepEqual(a.shape, [18, 18, 18]);
  t.true(new Set(labelsOf(a)).size > 1, 'the labels vary');
  const cl = { ...cf, data: cf.data.permute([1, 2, 3, 0]).contiguous(), spacing: [1, 1, 1, 1] };
  const b = await s2.segmentImage(cl);
  t.deepEqual(b.shape, [18, 18, 18]);
  t.deepEqual(labelsOf(b), labelsOf(a), 'channels last are permuted to channels first');
  // as readNifti returns a Decathlon multi-modal image: (I, J, K, C)
  const nii = parseNifti(niftiImageBytes([18, 18, 18, 2], cl.data.data() as Float32Array, [1, 1, 1, 1]), 'multi');
  const c = await s2.segmentNifti(nii);
  t.deepEqual(labelsOf(c), labelsOf(a));
  const one = image([18, 18, 18], [1, 1, 1]);
  await t.throwsAsync(() => s2.segmentImage(one), { instanceOf: RangeError, message: 'Segmenter.segmentImage(): the model takes 2 channels (T1, T2); the image of shape 18x18x18 has one' });
  const wrong = { ...one, data: zeros([3, 18, 18, 18]) };
  await t.throwsAsync(() => s2.segmentImage(wrong), {
    instanceOf: RangeError,
    message: 'Segmenter.segmentImage(): the image has shape 3x18x18x18; the model takes 2 channels (T1, T2): a 4-D image of shape (2, I, J, K) or (I, J, K, 2) is needed',
  });
  for (const x of [cf.data, a, cl.data, b, nii.data, c, one.data, wrong.data]) x.dispose();
  s2.dispose();
});
