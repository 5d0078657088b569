// `semiseg predict` and the atomic writer with inputs and outputs that go wrong or are not plain 3-D: an
// output folder that does not exist (a usage error before any inference, naming the folder), 4-D NIfTI
// images (a trailing 1, or channels last as the Decathlon stores them: a 3-D label map on the image's grid,
// the overlay from the first channel), NaN voxels and wrong channel counts (one line, exit status 2),
// --max-voxels, and the warning for bfloat16 where this CPU emulates it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cpuFeatures, manualSeed, nets, precisionWarning, readNifti, saveCheckpoint, setNumThreads, tensor, tidy } from '../lib/index.js';
import { writeFileAtomic } from '../lib/io/atomic.js';
import { overlayPng } from '../lib/cli/png.js';
import { niftiImageBytes, testPlan, testValues } from './helpers/nifti.js';
import { repoRoot } from './helpers/reference.js';

setNumThreads(1);
const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8', timeout: 120_000 });

let dir = '';
let plain = ''; // UNet2D, one channel, no plan
let twoChannel = ''; // VNet3D of two channels (T1, T2) with a plan

const values = testValues;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-predict-'));
  manualSeed(11);
  const u = nets.UNet2D({ inChannels: 1, outChannels: 3, features: [2, 4, 8, 16, 32] });
  plain = join(dir, 'plain.ckpt');
  await saveCheckpoint(plain, { network: u, iteration: 0, extra: { config: { size: [16, 16], classes: 3, method: 'supervised' } } });
  u.dispose();
  const plan = testPlan({ channels: ['T1', 'T2'], normalization: [{ scheme: 'zscore' }, { scheme: 'zscore' }], crop: false });
  manualSeed(3);
  const v = nets.VNet3D({ inChannels: 2, outChannels: 2, nFilters: 2, normalization: 'instancenorm' });
  twoChannel = join(dir, 'two.ckpt');
  await saveCheckpoint(twoChannel, { network: v, iteration: 0, extra: { config: { size: [16, 16, 16], classes: 2, method: 'supervised', plan } } });
  v.dispose();
});

test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('writeFileAtomic: a failure names the target path, keeps Node\'s code, and leaves no temporary file', async (t) => {
  const missing = join(dir, 'no-such-folder', 'x.nii.gz');
  const err = await t.throwsAsync(() => writeFileAtomic(missing, [Buffer.from('abc')]));
  t.is(err!.message, `cannot write '${missing}': ENOENT: no such file or directory`);
  t.is((err as NodeJS.ErrnoException).code, 'ENOENT');
  t.is((err as NodeJS.ErrnoException).path, missing);
  t.false(err!.message.includes('.tmp-'));
  // the rename fails: the target is a folder that holds a file
  const folder = join(dir, 'a-folder');
  mkdirSync(folder);
  writeFileSync(join(folder, 'inside'), 'x');
  const err2 = await t.throwsAsync(() => writeFileAtomic(folder, [Buffer.from('abc')]));
  t.regex(err2!.message, new RegExp(`^cannot write '${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': E[A-Z]+: [^,']+$`));
  t.false(err2!.message.includes('.tmp-'));
  t.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left');
  // and a good write still works
  const ok = join(dir, 'ok.bin');
  await writeFileAtomic(ok, [Buffer.from('ab'), Buffer.from('c')]);
  t.is(readFileSync(ok, 'utf8'), 'abc');
});

test('predict -o (or --png) into a folder that does not exist is a usage error before any inference, naming the folder', (t) => {
  const input = join(dir, 'in3.nii.gz');
  writeFileSync(input, niftiImageBytes([20, 16, 5], values(1600, 1), [1.5, 1.5, 5]));
  const out = join(dir, 'nonexistent', 'd', 'x.nii.gz');
  let r = run('predict', input, '--checkpoint', plain, '-o', out);
  t.is(r.status, 2, r.stderr);
  t.is(r.stderr, `semiseg: --output: the folder '${join(dir, 'nonexistent', 'd')}' of '${out}' does not exist\n`);
  r = run('predict', input, '--checkpoint', plain, '-o', join(dir, 'fine.nii.gz'), '--png', join(dir, 'nope', 'x.png'));
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /^semiseg: --png: the folder '.*nope' of '.*x\.png' does not exist\n$/);
  t.false(existsSync(join(dir, 'nonexistent')));
  t.false(existsSync(join(dir, 'fine.nii.gz')), 'nothing written');
});

test('predict takes a 4-D single-channel NIfTI (I, J, K, 1): the same 3-D labels and overlay as the 3-D image', async (t) => {
  const v = values(20 * 16 * 5, 2);
  const in3 = join(dir, 'p3.nii.gz');
  const in4 = join(dir, 'p4.nii.gz');
  writeFileSync(in3, niftiImageBytes([20, 16, 5], v, [1.5, 1.5, 5]));
  writeFileSync(in4, niftiImageBytes([20, 16, 5, 1], v, [1.5, 1.5, 5, 1]));
  const r3 = run('predict', in3, '--checkpoint', plain, '-o', join(dir, 'o3.nii.gz'), '--png', join(dir, 'o3.png'));
  t.is(r3.status, 0, r3.stderr);
  const r4 = run('predict', in4, '--checkpoint', plain, '-o', join(dir, 'o4.nii.gz'), '--png', join(dir, 'o4.png'));
  t.is(r4.status, 0, r4.stderr);
  t.regex(r4.stdout, /written: .*o4\.nii\.gz \(20x16x5, classes/);
  const a = await readNifti(join(dir, 'o3.nii.gz'));
  const b = await readNifti(join(dir, 'o4.nii.gz'));
  t.deepEqual(b.data.shape, [20, 16, 5]);
  t.deepEqual(b.spacing, [1.5, 1.5, 5]);
  t.deepEqual(Array.from(b.data.data() as BigInt64Array), Array.from(a.data.data() as BigInt64Array));
  t.true(new Set(Array.from(a.data.data() as BigInt64Array)).size > 1, 'labels vary');
  t.deepEqual(readFileSync(join(dir, 'o4.png')), readFileSync(join(dir, 'o3.png')));
  a.data.dispose();
  b.data.dispose();
});

test('predict takes a multi-channel NIfTI stored channels last (I, J, K, C): 3-D labels, the overlay of the first channel', async (t) => {
  const [I, J, K] = [18, 18, 12];
  const n = I * J * K;
  // channel 0 a ramp along i, channel 1 noise: the overlay must show the ramp
  const t1 = new Float32Array(n).map((_, idx) => 1 + Math.floor(idx / (J * K)));
  const t2 = values(n, 5);
  const last = new Float32Array(n * 2);
  for (let p = 0; p < n; p++) {
    last[2 * p] = t1[p];
    last[2 * p + 1] = t2[p];
  }
  const input = join(dir, 'multi.nii.gz');
  writeFileSync(input, niftiImageBytes([I, J, K, 2], last, [1, 1, 1, 1]));
  const out = join(dir, 'multi-labels.nii.gz');
  const png = join(dir, 'multi.png');
  const r = run('predict', input, '--checkpoint', twoChannel, '-o', out, '--png', png);
  t.is(r.status, 0, r.stderr);
  const labels = await readNifti(out);
  t.deepEqual(labels.data.shape, [I, J, K]);
  // the overlay predict draws: slices along k of the first channel with the labels
  const image = tidy(() => tensor(t1).reshape([I, J, K]));
  const picks = [...new Set([0.3, 0.45, 0.6, 0.75].map((f) => Math.min(K - 1, Math.floor(f * K))))];
  const slices = picks.map((k) =>
    tidy(() => ({
      image: image.narrow(2, k, 1).squeeze(2).contiguous().data() as Float32Array,
      labels: labels.data.narrow(2, k, 1).squeeze(2).contiguous().data() as BigInt64Array,
    })),
  );
  t.deepEqual(readFileSync(png), overlayPng(slices, I, J));
  image.dispose();
  labels.data.dispose();
  // a 3-D image for the two-channel model, or three channels, is one line naming the file
  const one = join(dir, 'one.nii.gz');
  writeFileSync(one, niftiImageBytes([I, J, K], t1));
  const r1 = run('predict', one, '--checkpoint', twoChannel, '-o', join(dir, 'x.nii.gz'));
  t.is(r1.status, 2);
  t.is(r1.stderr, `semiseg: predict: '${one}': the model takes 2 channels (T1, T2); the image of shape 18x18x12 has one\n`);
  const three = join(dir, 'three.nii.gz');
  writeFileSync(three, niftiImageBytes([I, J, K, 3], values(n * 3, 6)));
  const r2 = run('predict', three, '--checkpoint', twoChannel, '-o', join(dir, 'x.nii.gz'));
  t.is(r2.status, 2);
  t.regex(r2.stderr, /^semiseg: predict: '.*three\.nii\.gz': the image has shape 18x18x12x3; the model takes 2 channels \(T1, T2\): a 4-D image of shape \(2, I, J, K\) or \(I, J, K, 2\) is needed\n$/);
  t.false(existsSync(join(dir, 'x.nii.gz')), 'nothing written');
});

test('predict refuses an image with NaN voxels in one line, exit status 2, writing nothing', (t) => {
  const v = values(1600, 7);
  v[100] = Number.NaN;
  const input = join(dir, 'nan.nii.gz');
  writeFileSync(input, niftiImageBytes([20, 16, 5], v));
  const out = join(dir, 'nan-labels.nii.gz');
  const r = run('predict', input, '--checkpoint', plain, '-o', out);
  t.is(r.status, 2);
  t.is(r.stderr, `semiseg: predict: '${input}': the image holds NaN or infinite intensities\n`);
  t.false(existsSync(out));
});

test('predict --max-voxels refuses an image larger than the limit on the model\'s grid, naming the file and the limit', (t) => {
  const input = join(dir, 'big.nii.gz');
  writeFileSync(input, niftiImageBytes([20, 16, 5], values(1600, 7), [1.5, 1.5, 5]));
  const out = join(dir, 'big-labels.nii.gz');
  const r = run('predict', input, '--checkpoint', plain, '-o', out, '--max-voxels', '1000');
  t.is(r.status, 2, r.stderr);
  t.is(r.stderr, `semiseg: predict: '${input}': the image of shape 20x16x5 at spacing 1.5x1.5x5 mm is 20x16x5 (1600 voxels; the model does not resample): more than the limit of 1000 voxels (maxVoxels)\n`);
  t.false(existsSync(out), 'nothing written');
  const ok = run('predict', input, '--checkpoint', plain, '-o', out, '--max-voxels', '1600');
  t.is(ok.status, 0, ok.stderr);
  t.true(existsSync(out));
  const bad = run('predict', input, '--checkpoint', plain, '-o', out, '--max-voxels', '0');
  t.is(bad.status, 2);
  t.regex(bad.stderr, /option '--max-voxels <n>' argument '0' is invalid\. expected an integer between 1 and \d+, got '0'/);
});

test('predict --precision bfloat16 warns on a CPU that emulates bfloat16, and only there', (t) => {
  const input = join(dir, 'bf.nii.gz');
  writeFileSync(input, niftiImageBytes([20, 16, 5], values(1600, 8), [1.5, 1.5, 5]));
  const emulated = !cpuFeatures().nativeBf16;
  const warning = precisionWarning('bfloat16', 'cpu');
  t.is(warning === undefined, !emulated);
  t.is(precisionWarning('float32', 'cpu'), undefined);
  const bf = run('predict', input, '--checkpoint', plain, '-o', join(dir, 'bf-labels.nii.gz'), '--precision', 'bfloat16');
  t.is(bf.status, 0, bf.stderr);
  if (emulated) t.is(bf.stderr, `semiseg: warning: ${warning}\n`);
  else t.is(bf.stderr, '');
  if (emulated) t.regex(warning!, /^precision bfloat16 is emulated on this CPU \(no AVX-512 BF16 or AMX-BF16\): expect it to be slower than float32/);
  const auto = run('predict', input, '--checkpoint', plain, '-o', join(dir, 'auto-labels.nii.gz'), '--precision', 'auto');
  t.is(auto.status, 0, auto.stderr);
  t.is(auto.stderr, '', "'auto' never picks an emulated precision");
});
