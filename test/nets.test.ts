// Networks against the PyTorch reference modules (benchmarks/reference/nets.py): parameter counts,
// state-dict keys and shapes, outputs from PyTorch weights (eval and train mode), and weights exported
// by semiseg reproducing semiseg's output in PyTorch.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  dispose,
  liveTensors,
  manualSeed,
  nets,
  noGrad,
  randn,
  readTorchStateDict,
  writeTorchStateDict,
  type Network,
} from '../lib/index.js';
import { referencePython } from './helpers/reference.js';
import { maxAbs, maxAbsDiff, runPython } from './helpers/python.js';

const KINDS = ['unet2d', 'vnet3d'] as const;
const build = (kind: (typeof KINDS)[number], noDropout = false): Network =>
  kind === 'unet2d'
    ? nets.UNet2D(noDropout ? { dropout: [0, 0, 0, 0, 0] } : undefined)
    : nets.VNet3D(noDropout ? { hasDropout: false } : undefined);

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-nets-'));
  if (referencePython) runPython('nets_parity.py', 'make', dir, '1234');
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test.serial('parameter counts are the published ones', (t) => {
  const u = nets.UNet2D();
  const v = nets.VNet3D();
  t.is(u.parameterCount(), 1_813_764);
  t.is(v.parameterCount(), 9_448_866);
  // instance norm (VerSemi) has no affine parameters: the V-Net loses exactly its BatchNorm weights and biases
  const buffers = v.namedBuffers();
  const bnAffine = Object.entries(buffers)
    .filter(([k]) => k.endsWith('running_mean'))
    .reduce((n, [, b]) => n + 2 * b.numel, 0);
  t.is(nets.VNet3D({ normalization: 'instancenorm' }).parameterCount(), 9_448_866 - bnAffine);
  dispose(buffers);
  u.dispose();
  v.dispose();
});

for (const kind of KINDS) {
  test.serial(`${kind}: state-dict keys and shapes equal the PyTorch module's`, (t) => {
    if (!referencePython) return t.pass('skipped: no python with torch');
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { keys: Record<string, [string, number[]][]> };
    const net = build(kind);
    const sd = net.stateDict();
    t.deepEqual(
      Object.entries(sd).map(([k, v]) => [k, v.shape]),
      meta.keys[kind],
    );
    dispose(sd);
    net.dispose();
  });

  test.serial(`${kind}: PyTorch weights give PyTorch's output in eval and train mode`, async (t) => {
    if (!referencePython) return t.pass('skipped: no python with torch');
    const start = liveTensors();
    const sd = await readTorchStateDict(join(dir, `${kind}.pt`));
    const io = await readTorchStateDict(join(dir, `${kind}_io.pt`));
    const net = build(kind);
    t.deepEqual(net.loadStateDict(sd), { missing: [], unexpected: [] });
    const out = await noGrad(() => net.eval().forward(io.input));
    const ref = io.eval.toArray() as Float32Array;
    const diff = maxAbsDiff(out.toArray() as Float32Array, ref);
    t.true(diff <= 1e-4 * maxAbs(ref), `eval: max |diff| ${diff} vs scale ${maxAbs(ref)}`);
    // train mode: BatchNorm batch statistics, dropout off
    const plain = build(kind, true);
    plain.loadStateDict(sd);
    const tr = await noGrad(() => plain.train().forward(io.input));
    const refTr = io.train.toArray() as Float32Array;
    const diffTr = maxAbsDiff(tr.toArray() as Float32Array, refTr);
    t.true(diffTr <= 1e-4 * maxAbs(refTr), `train: max |diff| ${diffTr} vs scale ${maxAbs(refTr)}`);
    dispose([sd, io, out, tr]);
    net.dispose();
    plain.dispose();
    t.is(liveTensors(), start);
  });
}

test.serial('weights exported by semiseg load in PyTorch and reproduce semiseg output', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  manualSeed(99);
  for (const kind of KINDS) {
    const net = build(kind).eval();
    const x = randn(kind === 'unet2d' ? [2, 1, 64, 64] : [2, 1, 32, 32, 32]);
    const y = await noGrad(() => net.forward(x));
    const sd = net.stateDict();
    await writeTorchStateDict(join(dir, `${kind}_semiseg.pt`), sd);
    await writeTorchStateDict(join(dir, `${kind}_semiseg_io.pt`), { input: x, eval: y });
    dispose([sd, x, y]);
    net.dispose();
  }
  const result = JSON.parse(runPython('nets_parity.py', 'check', dir)) as Record<string, { max_abs_diff: number; scale: number }>;
  for (const kind of KINDS) {
    const r = result[kind];
    t.true(r.max_abs_diff <= 1e-4 * r.scale, `${kind}: ${JSON.stringify(r)}`);
  }
});

test.serial('forwardFeatures returns the logits and nine feature maps', async (t) => {
  const u = nets.UNet2D({ outChannels: 3 }).eval();
  const x = randn([1, 1, 32, 32]);
  const { logits, features } = await u.forwardFeatures(x);
  t.deepEqual(logits.shape, [1, 3, 32, 32]);
  t.deepEqual(
    features.map((f) => f.shape),
    [
      [1, 16, 32, 32], [1, 32, 16, 16], [1, 64, 8, 8], [1, 128, 4, 4], [1, 256, 2, 2],
      [1, 128, 4, 4], [1, 64, 8, 8], [1, 32, 16, 16], [1, 16, 32, 32],
    ],
  );
  const plain = await u.forward(x);
  t.is(maxAbsDiff(plain.toArray() as Float32Array, logits.toArray() as Float32Array), 0);
  const v = nets.VNet3D({ normalization: 'instancenorm', nFilters: 4 }).eval();
  const vx = randn([1, 1, 16, 16, 16]);
  const vf = await v.forwardFeatures(vx);
  t.deepEqual(vf.features.map((f) => f.shape[1]), [4, 8, 16, 32, 64, 32, 16, 8, 4]);
  dispose([x, logits, features, plain, vx, vf]);
  u.dispose();
  v.dispose();
});

test.serial('clone is a deep copy; channels-last gives the same output', async (t) => {
  const u = nets.UNet2D().eval();
  const x = randn([2, 1, 32, 32]);
  const teacher = u.clone();
  t.not(teacher, u);
  t.false(teacher.training);
  const a = await u.forward(x);
  const b = await teacher.forward(x);
  t.is(maxAbsDiff(a.toArray() as Float32Array, b.toArray() as Float32Array), 0);
  // changing the student leaves the teacher alone
  const sd = u.stateDict();
  const w = u.namedParameters()['decoder.out_conv.bias'];
  const shifted = w.add(1).detach();
  u.loadStateDict({ ...sd, 'decoder.out_conv.bias': shifted });
  const c = await teacher.forward(x);
  t.is(maxAbsDiff(c.toArray() as Float32Array, b.toArray() as Float32Array), 0);
  const moved = await u.forward(x);
  t.true(maxAbsDiff(moved.toArray() as Float32Array, a.toArray() as Float32Array) > 0.5, 'the student did change');
  teacher.channelsLast();
  t.true(teacher.isChannelsLast);
  const d = await teacher.forward(x);
  t.true(maxAbsDiff(d.toArray() as Float32Array, b.toArray() as Float32Array) < 1e-4);
  dispose([x, a, b, c, d, moved, sd, w, shifted]);
  u.dispose();
  teacher.dispose();
});

test.serial('autocast bfloat16 on CPU computes in bfloat16 and stays close to float32', async (t) => {
  const u = nets.UNet2D().eval();
  const x = randn([1, 1, 32, 32]);
  const full = await noGrad(() => u.forward(x));
  const half = await noGrad(() => u.forward(x, { autocast: 'bfloat16' }));
  t.is(full.dtype, 'float32');
  t.is(half.dtype, 'bfloat16');
  const a = full.toArray() as Float32Array;
  const diff = maxAbsDiff(half.toArray() as Float32Array, a);
  t.true(diff > 0, 'bfloat16 arithmetic differs from float32');
  t.true(diff < 0.05 * maxAbs(a), `bfloat16 output off by ${diff} (scale ${maxAbs(a)})`);
  dispose([x, full, half]);
  u.dispose();
});
