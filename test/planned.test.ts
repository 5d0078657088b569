// NIfTI dataset folders (Decathlon, nnU-Net v2), planning, native preprocessing, and bad input.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { tensor } from '../lib/create.js';
import { readCase, readImageDataset } from '../lib/data/folders.js';
import { preprocessWithPlan, resampleImage, restoreLabels } from '../lib/data/preprocess.js';
import { DEMO_DATA } from '../lib/demo/demo.js';
import { fingerprintDataset } from '../lib/plan/fingerprint.js';
import { checkPlan, planFromFingerprint, type Plan } from '../lib/plan/plan.js';
import { dispose } from '../lib/scope.js';
import { syntheticFolder } from './helpers/folders.js';
import { maxAbsDiff, runPythonCode } from './helpers/python.js';
import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });

test('the bundled hippocampus subset reads as a Decathlon folder with its three classes', (t) => {
  const ds = readImageDataset(DEMO_DATA);
  t.is(ds.layout, 'decathlon');
  t.is(ds.labeled.length, 40);
  t.deepEqual(ds.channels, ['MRI']);
  t.deepEqual(ds.classes, ['background', 'Anterior', 'Posterior']);
  t.is(ds.unlabeled.length, 0);
  t.true(existsSync(join(DEMO_DATA, 'LICENSE.md')), 'the CC BY-SA attribution travels with the data');
});

test('nnU-Net v2 folders: one file per channel, stacked channels first; imagesTs with labelsTs is the test split', async (t) => {
  const root = syntheticFolder({ layout: 'nnunet', channels: 2, n: 3, test: 2 });
  const ds = readImageDataset(root);
  t.is(ds.layout, 'nnunet');
  t.deepEqual(ds.channels, ['MRI', 'MRI']);
  t.deepEqual(ds.classes, ['background', 'c1', 'c2']);
  t.deepEqual(ds.labeled.map((c) => c.id), ['case_000', 'case_001', 'case_002']);
  t.deepEqual(ds.test.map((c) => c.id), ['case_003', 'case_004']);
  const c = await readCase(ds, ds.labeled[1]);
  t.deepEqual(c.data.shape, [2, 24, 28, 20]);
  const [a, b] = [c.data.narrow(0, 0, 1), c.data.narrow(0, 1, 1)];
  t.true(maxAbsDiff(b.data() as Float32Array, (a.mul(2).data() as Float32Array)) < 1e-3, 'channel 1 is the second file');
  t.deepEqual(c.label!.shape, [24, 28, 20]);
  t.deepEqual(c.spacing, [1, 1, 1]);
  dispose([a, b, c.data, c.label]);
  rmSync(root, { recursive: true });
});

const badInputs: [string, Parameters<typeof syntheticFolder>[0], RegExp][] = [
  ['image and label of different shapes', { tweak: "save(np.zeros((24, 28, 19), np.uint8), f'{root}/labelsTr/case_001.nii.gz')" }, /'[^']*labelsTr\/case_001\.nii\.gz' has shape 24x28x19 but its image '[^']*case_001\.nii\.gz' has 24x28x20/],
  [
    'image and label of different affines',
    { tweak: "a2 = aff.copy(); a2[0, 3] += 4\nnib.save(nib.Nifti1Image(case(1)[1], a2), f'{root}/labelsTr/case_001.nii.gz')" },
    /'[^']*labelsTr\/case_001\.nii\.gz' has another affine than its image/,
  ],
  ['a label value dataset.json does not name', { tweak: "l = case(2)[1]; l[0, 0, 0] = 5; save(l, f'{root}/labelsTr/case_002.nii.gz')" }, /'[^']*case_002\.nii\.gz' holds label value 5, which dataset\.json's labels do not name \(0 \.\. 2: background, c1, c2\)/],
  ['a missing channel file', { layout: 'nnunet', channels: 2, tweak: "os.remove(f'{root}/imagesTr/case_002_0001.nii.gz')" }, /case 'case_002' has no channel file '[^']*case_002_0001\.nii\.gz'/],
  ['a 4-D image where 3-D is expected', { tweak: "save(np.zeros((24, 28, 20, 2), np.float32), f'{root}/imagesTr/case_003.nii.gz')" }, /'[^']*case_003\.nii\.gz' has 4 dimensions \(24x28x20x2\); a 3-D image is expected/],
  ['NaN intensities', { tweak: "i = case(0)[0]; i[3, 3, 3] = np.nan; save(i, f'{root}/imagesTr/case_000.nii.gz')" }, /'[^']*case_000\.nii\.gz' holds NaN or infinite intensities/],
  ['infinite intensities', { tweak: "i = case(0)[0]; i[3, 3, 3] = -np.inf; save(i, f'{root}/imagesTr/case_000.nii.gz')" }, /'[^']*imagesTr\/case_000\.nii\.gz' holds NaN or infinite intensities/],
  [
    'a label map resampled linearly (non-integer values)',
    { tweak: "l = case(1)[1].astype(np.float32); l[0, 0, 0] = 0.6; l[1, 0, 0] = 1.5; save(l, f'{root}/labelsTr/case_001.nii.gz')" },
    /'[^']*labelsTr\/case_001\.nii\.gz' holds label value 1\.5, which is not an integer; labels must be integers \(resample label maps with nearest neighbour/,
  ],
  ['no dataset.json (an unknown layout)', { tweak: "os.remove(f'{root}/dataset.json')" }, /is not a Decathlon or nnU-Net dataset folder|is not a Decathlon or nnU-Net folder/],
  ['no labels at all', { tweak: "import shutil; shutil.rmtree(f'{root}/labelsTr'); os.makedirs(f'{root}/labelsTr')" }, /labelsTr' holds no '\*\.nii\.gz' labels/],
  ['a label without its image', { tweak: "os.remove(f'{root}/imagesTr/case_004.nii.gz')" }, /case 'case_004' has no image '[^']*case_004\.nii\.gz'/],
];

for (const [what, o, message] of badInputs) {
  test(`bad input is one line naming the file: ${what}`, (t) => {
    const root = syntheticFolder({ n: 5, ...o });
    const out = mkdtempSync(join(tmpdir(), 'semiseg-bad-'));
    const r = run('train', '--method', 'supervised', '--data', root, '--iterations', '2', '--out', join(out, 'run'));
    t.not(r.status, 0);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.false(existsSync(join(out, 'run', 'plan.json')), 'nothing written on failure');
    t.false(existsSync(join(out, 'run', 'last.ckpt')));
    rmSync(root, { recursive: true });
    rmSync(out, { recursive: true });
  });
}

test('--labeled larger than the labeled pool, and unknown plan settings, are usage errors', (t) => {
  const root = syntheticFolder({ n: 5 });
  let r = run('train', '--method', 'supervised', '--data', root, '--labeled', '50', '--iterations', '2', '--out', join(root, 'run'));
  t.is(r.status, 1);
  t.regex(r.stderr, /--labeled 50: '[^']*' has 4 labeled cases after holding out 1 for validation/);
  r = run('plan', '--data', root, '--set', 'plan.spacnig=[1,1,1]');
  t.is(r.status, 2);
  t.regex(r.stderr, /plan\.spacnig is not a plan setting/);
  r = run('plan', '--data', join(root, 'imagesTr'));
  t.is(r.status, 2);
  t.regex(r.stderr, /is not a Decathlon or nnU-Net folder/);
  rmSync(root, { recursive: true });
});

test('native preprocessing equals the reference: crop to non-zero, z-score, trilinear resampling, one-hot linear labels', async (t) => {
  const shape = [10, 12, 9];
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Float32Array.from({ length: n }, (_, i) => {
    const [x, y, z] = [Math.floor(i / 108), Math.floor(i / 9) % 12, i % 9];
    return x < 1 || y > 10 ? 0 : 50 + 3 * x + 2 * Math.sin(y) + z * z;
  });
  const labels = BigInt64Array.from({ length: n }, (_, i) => BigInt(values[i] > 80 ? 2 : values[i] > 60 ? 1 : 0));
  const image = tensor(values, { shape: [1, ...shape] });
  const label = tensor(labels, { shape });
  const plan = { crop: true, spacing: [2, 1.5, 1], network: 'VNet3D', sliceAxis: 2, normalization: [{ scheme: 'zscore' }], imageInterpolation: 'linear', labelInterpolation: 'linear', classes: ['a', 'b', 'c'], channels: ['MRI'] } as unknown as Plan;
  const p = await preprocessWithPlan(image, label, [1, 1, 1], plan);
  const ref = JSON.parse(
    runPythonCode(`
import json, numpy as np, torch, torch.nn.functional as F
v = np.array(${JSON.stringify(Array.from(values))}, np.float32).reshape(${JSON.stringify(shape)})
l = np.array(${JSON.stringify(Array.from(labels, Number))}).reshape(${JSON.stringify(shape)})
nz = np.argwhere(v != 0); lo, hi = nz.min(0), nz.max(0) + 1
v = v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64); l = l[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
v = (v - v.mean()) / v.std()
size = [max(1, round(s * 1 / t)) for s, t in zip(v.shape, [2, 1.5, 1])]
img = F.interpolate(torch.tensor(v, dtype=torch.float32)[None, None], size=size, mode='trilinear', align_corners=False)[0, 0]
hot = F.one_hot(torch.tensor(l), 3).permute(3, 0, 1, 2).float()[None]
lab = F.interpolate(hot, size=size, mode='trilinear', align_corners=False)[0].argmax(0)
print(json.dumps({'start': lo.tolist(), 'crop': (hi - lo).tolist(), 'size': size, 'image': img.flatten().tolist(), 'label': lab.flatten().tolist()}))
`),
  ) as { start: number[]; crop: number[]; size: number[]; image: number[]; label: number[] };
  t.deepEqual(p.cropStart, ref.start);
  t.deepEqual(p.cropShape, ref.crop);
  t.deepEqual(p.image.shape, [1, ...ref.size]);
  t.true(maxAbsDiff(p.image.data() as Float32Array, ref.image) < 1e-5, `image differs by ${maxAbsDiff(p.image.data() as Float32Array, ref.image)}`);
  t.deepEqual(Array.from(p.label!.data() as BigInt64Array, Number), ref.label);
  // and back: labels on the plan's grid return to the input grid (nearest), background outside the crop
  const back = await restoreLabels(p.label!, p);
  t.deepEqual(back.shape, shape);
  t.is(Number(back.narrow(0, 0, 1).abs().sum().item()), 0, 'outside the crop is background');
  dispose([image, label, p.image, p.label, back]);
});

test("masked z-score (nnU-Net's use_mask_for_norm): statistics over the voxels non-zero in some channel, 0 outside; the plan chooses it when the crop keeps under 3/4", async (t) => {
  // two channels, a zero background inside the crop box (a skull-stripped scan); channel 1 has zeros inside
  // the brain where channel 0 does not, so the mask is the union of both channels' non-zero voxels
  const shape = [6, 7, 5];
  const n = shape.reduce((a, b) => a * b, 1);
  const inside = (i: number) => {
    const [x, y, z] = [Math.floor(i / 35), Math.floor(i / 5) % 7, i % 5];
    return (x - 2.5) ** 2 + (y - 3) ** 2 + (z - 2) ** 2 < 7;
  };
  const c0 = Float32Array.from({ length: n }, (_, i) => (inside(i) ? 100 + (i % 11) * 3 : 0));
  const c1 = Float32Array.from({ length: n }, (_, i) => (inside(i) && i % 4 !== 0 ? 20 + (i % 7) : 0));
  const image = tensor(Float32Array.from([...c0, ...c1]), { shape: [2, ...shape] });
  const plan = { crop: false, spacing: null, network: 'VNet3D', sliceAxis: 2, normalization: [{ scheme: 'zscore', mask: true }, { scheme: 'zscore', mask: true }], imageInterpolation: 'linear', labelInterpolation: 'nearest', classes: ['a', 'b'], channels: ['T1', 'T2'] } as unknown as Plan;
  const p = await preprocessWithPlan(image, undefined, [1, 1, 1], plan);
  const ref = JSON.parse(
    runPythonCode(`
import json, numpy as np
v = np.array(${JSON.stringify([...c0, ...c1])}, np.float64).reshape([2] + ${JSON.stringify(shape)})
m = (v != 0).any(0)
out = [np.where(m, (c - c[m].mean()) / c[m].std(), 0) for c in v]
print(json.dumps(np.stack(out).flatten().tolist()))
`),
  ) as number[];
  t.true(maxAbsDiff(p.image.data() as Float32Array, ref) < 1e-5, `differs by ${maxAbsDiff(p.image.data() as Float32Array, ref)}`);
  // the plan's rule: z-score in the mask when the crop keeps under 3/4 of the voxels on average
  const fp = { dataset: 'x', cases: 1, shapes: [shape], spacings: [[1, 1, 1]], medianShape: shape, medianSpacing: [1, 1, 1], channels: [{ name: 'T1', mean: 0, std: 1, p005: 0, p995: 1, min: 0, max: 1 }], classFrequencies: [0.9, 0.1], cropRatio: 0.6 };
  const ds = { name: 'x', channels: ['T1'], classes: ['background', 'brain'] };
  t.deepEqual(planFromFingerprint(fp, ds).normalization, [{ scheme: 'zscore', mask: true }]);
  t.deepEqual(planFromFingerprint({ ...fp, cropRatio: 0.9 }, ds).normalization, [{ scheme: 'zscore' }]);
  t.deepEqual(planFromFingerprint(fp, ds, { normalization: { scheme: 'zscore', mask: false } }).normalization, [{ scheme: 'zscore' }]);
  t.throws(() => planFromFingerprint(fp, ds, { normalization: { scheme: 'ct', mask: true } }), { message: /mask only with 'zscore'/ });
  dispose([image, p.image]);
});

test('CT normalisation clips to the foreground percentiles and z-scores with the foreground statistics; cubic keeps constants', async (t) => {
  const image = tensor([[[[-1000, 0], [40, 2000]]]]); // (1, 1, 2, 2)
  const plan = { crop: false, spacing: null, network: 'VNet3D', sliceAxis: 2, normalization: [{ scheme: 'ct', lo: -100, hi: 1000, mean: 50, std: 10 }], imageInterpolation: 'cubic', labelInterpolation: 'nearest', classes: ['a', 'b'], channels: ['CT'] } as unknown as Plan;
  const p = await preprocessWithPlan(image, undefined, [1, 1, 1], plan);
  t.deepEqual(Array.from(p.image.data() as Float32Array), [-15, -5, -1, 95]);
  const flat = tensor(new Float32Array(6 * 7 * 5).fill(3.5), { shape: [1, 6, 7, 5] });
  const up = await resampleImage(flat, [9, 11, 7], 'cubic');
  t.true(maxAbsDiff(up.data() as Float32Array, new Float32Array(9 * 11 * 7).fill(3.5)) < 1e-5);
  dispose([image, p.image, flat, up]);
});

test('planning: isotropic data gets the 3-D V-Net with a patch of multiples of 16; anisotropic data the 2-D U-Net along its coarse axis; CT gets foreground percentiles', async (t) => {
  const iso = syntheticFolder({ n: 4, shape: [40, 44, 30] });
  const aniso = syntheticFolder({ n: 4, spacing: [0.8, 0.8, 4], shape: [60, 64, 8], modality: 'CT' });
  const a = readImageDataset(iso);
  const pa = planFromFingerprint(await fingerprintDataset(a), a);
  t.is(pa.network, 'VNet3D');
  t.deepEqual(pa.spacing, [1, 1, 1]);
  t.true(pa.size.every((s) => s % 16 === 0) && pa.size[0] === pa.size[1], `patch ${pa.size}`);
  t.deepEqual(pa.normalization, [{ scheme: 'zscore' }]);
  const b = readImageDataset(aniso);
  const fb = await fingerprintDataset(b);
  const pb = planFromFingerprint(fb, b);
  t.is(pb.network, 'UNet2D');
  t.is(pb.sliceAxis, 2);
  t.is(pb.size.length, 2);
  t.is(pb.normalization[0].scheme, 'ct');
  const ref = JSON.parse(
    runPythonCode(`
import json, glob, numpy as np, nibabel as nib
vals = []
for f in sorted(glob.glob('${aniso}/labelsTr/*.nii.gz')):
    l = np.asarray(nib.load(f).dataobj); i = np.asarray(nib.load(f.replace('labelsTr', 'imagesTr')).dataobj)
    vals.append(i[l > 0])
v = np.concatenate(vals).astype(np.float64)
print(json.dumps([float(np.percentile(v, 0.5)), float(np.percentile(v, 99.5)), float(v.mean()), float(v.std())]))
`),
  ) as number[];
  const n = pb.normalization[0];
  [n.lo!, n.hi!, n.mean!, n.std!].forEach((v, k) => t.true(Math.abs(v - ref[k]) <= 1e-3 * Math.abs(ref[k]) + 1e-3, `statistic ${k}: ${v} vs ${ref[k]}`));
  // overrides: structural first, then the sizes follow
  const forced = planFromFingerprint(fb, b, { network: 'VNet3D', spacing: [1.6, 1.6, 4] });
  t.is(forced.network, 'VNet3D');
  t.is(forced.size.length, 3);
  t.throws(() => planFromFingerprint(fb, b, { size: [30, 32] }), { message: /plan\.size must be 2 multiples of 16/ });
  // normalisation overrides: 'ct' for every channel takes each channel's own statistics (it took channel 0's)
  const c0 = fb.channels[0];
  const two = { ...fb, channels: [c0, { ...c0, name: 'CT2', mean: 2 * c0.mean, std: 2 * c0.std, p005: 2 * c0.p005, p995: 2 * c0.p995 }] };
  const both = planFromFingerprint(two, { ...b, channels: ['CT', 'CT2'] }, { normalization: 'ct' });
  t.deepEqual(
    both.normalization.map((x) => [x.lo, x.hi, x.mean, x.std]),
    two.channels.map((c) => [c.p005, c.p995, c.mean, c.std]),
  );
  // the object form: missing CT values come from the fingerprint, given ones are checked
  t.deepEqual(planFromFingerprint(fb, b, { normalization: { scheme: 'ct', lo: -50, hi: 400 } }).normalization, [{ scheme: 'ct', lo: -50, hi: 400, mean: c0.mean, std: c0.std }]);
  t.deepEqual(planFromFingerprint(fb, b, { normalization: { scheme: 'ct' } }).normalization, [{ scheme: 'ct', lo: c0.p005, hi: c0.p995, mean: c0.mean, std: c0.std }]);
  for (const [v, message] of [
    [{ scheme: 'bogus' }, /^plan\.normalization\.scheme must be 'none', 'zscore', 'minmax' or 'ct', got "bogus"$/],
    [{ scheme: 'ct', lo: 400, hi: -50 }, /^plan\.normalization must be a CT clipping range with lo < hi, got/],
    [{ scheme: 'ct', std: 0 }, /^plan\.normalization\.std must be a number > 0, got 0$/],
    [{ scheme: 'ct', lo: 'low' }, /^plan\.normalization\.lo must be a finite number, got "low"$/],
    [{ scheme: 'zscore', lo: 1 }, /^plan\.normalization must be only \{ scheme \} for 'zscore'/],
    [{ scheme: 'ct', clip: [0, 1] }, /unknown key 'clip'/],
    [['ct', 'ct'], /^plan\.normalization must be one entry per channel \(1\)/],
  ] as [unknown, RegExp][])
    t.throws(() => planFromFingerprint(fb, b, { normalization: v }), { instanceOf: RangeError, message }, JSON.stringify(v));
  // CT with no labeled foreground at all: the plan says the labels are the cause (preprocessing blamed an image)
  const empty = { ...fb, channels: [{ ...c0, mean: 0, std: 0, p005: 0, p995: 0 }], classFrequencies: [1, 0] };
  t.throws(() => planFromFingerprint(empty, b), {
    message: "plan.normalization: CT normalisation of channel 0 ('CT') needs foreground intensities, but the labeled cases' foreground (label > 0) is empty: every label map is all background; check labelsTr, or normalise this channel otherwise (--set plan.normalization=zscore)",
  });
  t.is(planFromFingerprint(empty, b, { normalization: 'zscore' }).normalization[0].scheme, 'zscore');
  // plans read back (plan.json, checkpoints): a CT entry of an earlier version without mean / std still
  // loads (preprocessing takes 0 and 1, as when it trained); a value that is there must be a number
  const old = { ...pb, normalization: [{ scheme: 'ct', lo: -100, hi: 300 }] } as Plan;
  t.deepEqual(checkPlan(JSON.parse(JSON.stringify(old)), 'plan.json').normalization, [{ scheme: 'ct', lo: -100, hi: 300 }]);
  t.throws(() => checkPlan({ ...pb, normalization: [{ scheme: 'ct', lo: 'low', hi: 300 }] }, 'plan.json'), {
    message: 'plan.json: not a valid semiseg plan: normalization[0].lo is "low", not a finite number',
  });
  t.throws(() => checkPlan({ ...pb, normalization: [{ scheme: 'bogus' }] }, 'plan.json'), { message: /plan\.json: not a valid semiseg plan: normalization\[0\] has no scheme of none, zscore, minmax, ct/ });
  t.throws(() => checkPlan({ ...pb, slices: 'squash' }, 'plan.json'), { message: `plan.json: not a valid semiseg plan: slices is "squash", not 'crop' or 'resize'` });
  rmSync(iso, { recursive: true });
  rmSync(aniso, { recursive: true });
});

test('semiseg plan prints the plan, and --json gives it whole', (t) => {
  let r = run('plan', '--data', DEMO_DATA);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /network +3-D V-Net/);
  t.regex(r.stdout, /normalisation +MRI: z-score per volume/);
  r = run('plan', '--data', DEMO_DATA, '--json', '--set', 'plan.network=UNet2D');
  t.is(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as Plan;
  t.is(plan.network, 'UNet2D');
  t.deepEqual(plan.classes, ['background', 'Anterior', 'Posterior']);
  t.is(readdirSync(DEMO_DATA).includes('plan.json'), false, 'planning writes nothing into the data folder');
});
