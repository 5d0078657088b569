// Optimizers and the native train step against torch.optim: from identical weights and inputs, K steps
// give identical weights (1e-5), for SGD (momentum, weight decay, Nesterov) and Adam. Schedules and EMA.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  Adam,
  SGD,
  constant,
  dispose,
  emaDecay,
  emaUpdate,
  lrAt,
  manualSeed,
  nets,
  poly,
  randint,
  randn,
  readTorchStateDict,
  step,
  tensor,
  tidy,
  trainStep,
  writeTorchStateDict,
  type Network,
  type Optimizer,
  type Tensor,
} from '../lib/index.js';
import { referencePython } from './helpers/reference.js';
import { maxAbs, maxAbsDiff, runPython, runPythonCode } from './helpers/python.js';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'semiseg-optim-'));
});
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

interface StepSpec {
  optimizer: 'sgd' | 'adam';
  options: Record<string, unknown>;
  loss: 'ce' | 'ceDice';
  steps: number;
}

// Adam divides by sqrt(v): where a gradient is near zero, float32 noise in it (another summation order in
// a convolution's backward) can flip the sign of m / sqrt(v) and move that weight by up to 2 lr per step.
// So the network-level Adam case holds all but 1 element in 1e4 to lr / 10 and every element to
// 2 lr per step (measured on an AVX-512 machine: 19 of 1.8 million weights beyond 1e-4, the largest 6e-4,
// with equal losses); a wrong beta, epsilon or weight decay moves every weight and fails. Adam's
// arithmetic itself is checked exactly on a problem with well-defined gradients below.
// [label, spec, tolerance, bound for the few elements outside the tolerance (none when absent)]
const specs: [string, StepSpec, number, number?][] = [
  ['SGD momentum 0.9, weight decay 1e-4 (the spec), CE', { optimizer: 'sgd', options: { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 }, loss: 'ce', steps: 3 }, 1e-5],
  ['SGD Nesterov, 0.5 (CE + Dice)', { optimizer: 'sgd', options: { lr: 0.05, momentum: 0.9, nesterov: true }, loss: 'ceDice', steps: 2 }, 1e-5],
  ['Adam betas (0.5, 0.999), weight decay', { optimizer: 'adam', options: { lr: 1e-3, betas: [0.5, 0.999], weightDecay: 1e-4 }, loss: 'ceDice', steps: 3 }, 1e-4, 2 * 1e-3 * 3],
];

for (const [label, spec, tolerance, outlierBound] of specs) {
  test.serial(`${label}: ${spec.steps} steps equal torch.optim's`, async (t) => {
    if (!referencePython) return t.pass('skipped: no python with torch');
    manualSeed(5);
    const net = nets.UNet2D({ dropout: [0, 0, 0, 0, 0] });
    const x = randn([2, 1, 32, 32]);
    const y = randint([2, 32, 32], 0, 4);
    const init = net.stateDict();
    await writeTorchStateDict(join(dir, 'unet2d_step_init.pt'), init);
    const outBefore = Array.from(init['decoder.out_conv.weight'].toArray() as Float32Array); // a copy: init shares memory
    await writeTorchStateDict(join(dir, 'unet2d_step_io.pt'), { input: x, target: y });
    const ref = JSON.parse(runPython('nets_parity.py', 'step', dir, 'unet2d', JSON.stringify(spec))) as { losses: number[] };
    const opt: Optimizer = spec.optimizer === 'sgd' ? SGD(net, spec.options as never) : Adam(net, spec.options as never);
    net.train();
    const losses: number[] = [];
    for (let i = 0; i < spec.steps; i++) losses.push(await trainStep(net, opt, x, y, { loss: spec.loss }));
    losses.forEach((l, i) => t.true(Math.abs(l - ref.losses[i]) <= 1e-5 * Math.max(1, Math.abs(ref.losses[i])), `loss ${i}: ${l} vs ${ref.losses[i]}`));
    const after = await readTorchStateDict(join(dir, 'unet2d_step_ref.pt'));
    const mine = net.stateDict();
    t.deepEqual(Object.keys(mine), Object.keys(after));
    let worst = 0;
    let worstKey = '';
    let outside = 0;
    let total = 0;
    for (const k of Object.keys(after)) {
      const a = Array.from(mine[k].toArray() as ArrayLike<number | bigint>, Number);
      const b = Array.from(after[k].toArray() as ArrayLike<number | bigint>, Number);
      const d = maxAbsDiff(a, b);
      if (d > worst) [worst, worstKey] = [d, k];
      for (let i = 0; i < a.length; i++) if (Math.abs(a[i] - b[i]) > tolerance) outside++;
      total += a.length;
    }
    if (outlierBound === undefined) {
      t.true(worst <= tolerance, `largest weight difference ${worst} at ${worstKey}`);
    } else {
      t.true(outside <= 1e-4 * total, `${outside} of ${total} weights differ by more than ${tolerance}`);
      t.true(worst <= outlierBound, `largest weight difference ${worst} at ${worstKey}`);
    }
    // and the weights did move
    t.true(maxAbsDiff(mine['decoder.out_conv.weight'].toArray() as Float32Array, outBefore) > 1e-4, 'the weights did not move');
    dispose([x, y, init, after, mine]);
    net.dispose();
  });
}

test('Adam and SGD arithmetic equal torch.optim on a quadratic with known gradients', (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  const script = `
import json, torch
torch.set_default_dtype(torch.float64)
out = {}
for name, make in [("adam", lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.5, 0.99), eps=1e-8, weight_decay=0.01)),
                   ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01))]:
    w = torch.tensor([1.0, -2.0, 3.0, 1e-4], requires_grad=True)
    opt = make([w])
    for i in range(5):
        opt.zero_grad()
        ((w - torch.tensor([0.5, 0.5, 0.5, 0.5])) ** 2 * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
        opt.step()
    out[name] = w.tolist()
print(json.dumps(out))`;
  const ref = JSON.parse(runPythonCode(script)) as Record<string, number[]>;
  for (const [name, make] of [
    ['adam', (p: Tensor[]) => Adam(p, { lr: 0.1, betas: [0.5, 0.99], eps: 1e-8, weightDecay: 0.01 })],
    ['sgd', (p: Tensor[]) => SGD(p, { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 })],
  ] as const) {
    const w = tensor([1, -2, 3, 1e-4], { dtype: 'float64', requiresGrad: true });
    const opt = make([w]);
    for (let i = 0; i < 5; i++) {
      opt.zeroGrad();
      tidy(() => w.sub(0.5).square().mul(tensor([1, 2, 3, 4], { dtype: 'float64' })).sum().backward());
      opt.step();
    }
    t.true(maxAbsDiff(w.toArray() as Float64Array, ref[name]) < 1e-12, `${name}: ${w.toArray()} vs ${ref[name]}`);
    w.dispose();
  }
});

test('optimizer state round-trips and param groups take their own learning rate', async (t) => {
  const w1 = tensor([1, 2, 3], { requiresGrad: true });
  const w2 = tensor([4, 5], { requiresGrad: true });
  const opt = SGD([{ params: [w1] }, { params: [w2], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
  t.is(opt.groupCount, 2);
  t.is(opt.lr(0), 0.1);
  t.is(opt.lr(1), 0.5);
  w1.mul(w1).sum().add(w2.sum()).backward();
  opt.step();
  t.deepEqual(Array.from(w1.toArray() as Float32Array).map((v) => +v.toFixed(5)), [0.8, 1.6, 2.4]);
  t.deepEqual(Array.from(w2.toArray() as Float32Array), [3.5, 4.5]);
  const state = opt.stateDict();
  t.deepEqual(Object.keys(state).sort(), ['0.0.momentum_buffer', '1.0.momentum_buffer']);
  const fresh = SGD([{ params: [w1] }, { params: [w2], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
  fresh.loadStateDict(state);
  const back = fresh.stateDict();
  t.deepEqual(back['0.0.momentum_buffer'].toArray(), state['0.0.momentum_buffer'].toArray());
  opt.setLr(0.02);
  t.is(opt.lr(1), 0.02);
  opt.setLr(0.3, 1);
  t.is(opt.lr(1), 0.3);
  t.throws(() => SGD([w1], { lr: -1 }), { instanceOf: RangeError, message: /SGD\(\): argument 'lr' must be a number >= 0, got -1/ });
  t.throws(() => SGD([w1], { lr: 0.1, nesterov: true }), { instanceOf: RangeError, message: /nesterov/ });
  t.throws(() => Adam([w1], { betas: [1.2, 0.9] as [number, number] }), { instanceOf: RangeError, message: /Adam\(\): argument 'betas\[0\]' must be a number in \[0, 1\), got 1.2/ });
  t.throws(() => SGD([tensor([1, 2])], { lr: 0.1 }), { message: /every parameter must be a leaf tensor that requires grad/ });
  t.throws(() => opt.loadStateDict({ '7.0.momentum_buffer': tensor([1]) }), { message: /names a parameter this optimizer does not have/ });
  dispose([w1, w2, state, back]);
});

test('schedules follow the spec', (t) => {
  t.is(lrAt(constant(0.01), 12345), 0.01);
  t.is(lrAt(poly(0.01, 30000), 0), 0.01);
  t.is(lrAt(poly(0.01, 30000), 15000), 0.01 * Math.pow(0.5, 0.9));
  t.is(lrAt(poly(0.01, 100), 100), 0);
  t.is(lrAt(step(0.01, 2500), 2499), 0.01);
  t.is(lrAt(step(0.01, 2500), 2500), 0.01 * 0.1);
  t.is(lrAt(step(0.01, 2500), 7600), 0.01 * 0.1 ** 3);
  t.throws(() => poly(0.01, 0), { instanceOf: RangeError, message: /argument 'maxIterations' must be an integer >= 1, got 0/ });
});

test('EMA: warm-up rule, parameters-only and all-buffers scopes', async (t) => {
  t.is(emaDecay(0.99, 0), 0);
  t.is(emaDecay(0.99, 9), 0.9);
  t.is(emaDecay(0.99, 1000), 0.99);
  const student: Network = nets.UNet2D({ features: [2, 2, 2, 2, 2] }).train();
  const teacher = student.clone();
  // move the student: one SGD step and a forward in train mode (updates BatchNorm statistics)
  const x = randn([2, 1, 16, 16]);
  const y = randint([2, 16, 16], 0, 4);
  await trainStep(student, SGD(student, { lr: 0.5 }), x, y);
  const s = student.stateDict();
  const t0 = teacher.stateDict();
  const expected = (k: string, a: number) =>
    Array.from(t0[k].toArray() as Float32Array, (v, i) => a * v + (1 - a) * (s[k].toArray() as Float32Array)[i]);
  const t0w = Array.from(t0['decoder.out_conv.weight'].toArray() as Float32Array);
  const wantW = expected('decoder.out_conv.weight', 0.9);
  const wantRm = expected('encoder.in_conv.conv_conv.1.running_mean', 0.9);
  const rmBefore = Array.from(t0['encoder.in_conv.conv_conv.1.running_mean'].toArray() as Float32Array);
  t.is(emaUpdate(teacher, student, { alpha: 0.99, iteration: 9 }), 0.9);
  const t1 = teacher.stateDict();
  t.true(maxAbsDiff(t1['decoder.out_conv.weight'].toArray() as Float32Array, wantW) < 1e-6);
  t.true(maxAbsDiff(t1['decoder.out_conv.weight'].toArray() as Float32Array, t0w) > 0);
  // parameters only: the running statistics stay
  t.deepEqual(Array.from(t1['encoder.in_conv.conv_conv.1.running_mean'].toArray() as Float32Array), rmBefore);
  const teacher2 = nets.UNet2D({ features: [2, 2, 2, 2, 2] });
  teacher2.loadStateDict(t0);
  emaUpdate(teacher2, student, { alpha: 0.9, scope: 'all' });
  const t2 = teacher2.stateDict();
  t.true(maxAbsDiff(t2['encoder.in_conv.conv_conv.1.running_mean'].toArray() as Float32Array, wantRm) < 1e-6);
  // num_batches_tracked (int64) is averaged and truncated, as load_state_dict of the averaged dict does
  t.deepEqual(t2['encoder.in_conv.conv_conv.1.num_batches_tracked'].toArray(), new BigInt64Array([0n]));
  t.true(maxAbs(wantRm) > 0);
  dispose([x, y, s, t0, t1, t2]);
  for (const n of [student, teacher, teacher2]) n.dispose();
});

// The refusal is scoped to what the pending calls touch: another network's inference (a service that
// also trains) or another training's backward leave this optimizer free; this network's forward, a
// backward through it, or a pending read of one of its parameters do not.
test.serial('optimizers refuse only while a pending call touches their own parameters', async (t) => {
  manualSeed(4);
  const net = nets.UNet2D({ features: [2, 2, 2, 2, 2] });
  const other = nets.UNet2D({ features: [2, 2, 2, 2, 2] }).eval();
  const sgd = SGD(net, { lr: 0.1, momentum: 0.9 });
  const otherSgd = SGD(other, { lr: 0.1 });
  const x = randn([2, 1, 16, 16]);
  const y = randint([2, 16, 16], 0, 4);
  // another network's forward in flight: this optimizer steps
  let pending = other.forward(x);
  t.notThrows(() => sgd.zeroGrad());
  t.throws(() => otherSgd.zeroGrad(), { message: /optimizer\.zeroGrad\(\): its parameters are in use by 1 pending async native call\(s\); await them first$/ });
  (await pending).dispose();
  // a backward through this network in flight: its optimizer waits, the other's does not
  const logits = await net.forward(x);
  const loss = logits.logSoftmax(1).mul(-1).mean();
  const backward = loss.backwardAsync();
  t.throws(() => sgd.step(), { message: /optimizer\.step\(\): its parameters are in use by 1 pending async native call\(s\)/ });
  t.notThrows(() => otherSgd.zeroGrad());
  await backward;
  t.notThrows(() => sgd.step());
  // a pending read of one of its parameters (toArray on the compute threads) stops the optimizer, a
  // whole train step, and the network's own writers
  const weight = net.stateDict()['decoder.out_conv.weight'];
  const read = weight.dataAsync();
  t.throws(() => sgd.zeroGrad(), { message: /optimizer\.zeroGrad\(\): its parameters are in use by 1 pending async native call\(s\)/ });
  await t.throwsAsync(trainStep(net, sgd, x, y, { loss: 'ceDice' }), { message: /trainStep\(\): its parameters are in use by 1 pending async native call\(s\)/ });
  const sd = net.stateDict();
  t.throws(() => net.loadStateDict(sd), { message: /UNet2D\.loadStateDict\(\): its weights are in use by 1 pending async native call\(s\)/ });
  t.throws(() => net.to({ dtype: 'float64' }), { message: /UNet2D\.to\(\): its weights are in use by 1 pending async native call\(s\)/ });
  await read;
  t.notThrows(() => net.loadStateDict(sd));
  dispose(Object.values(sd));
  // the optimizer state that step() changes in place (stateDict hands out the live buffers)
  const state = sgd.stateDict();
  const buffer = Object.entries(state).find(([k]) => /momentum_buffer$/.test(k))![1];
  const readState = buffer.dataAsync();
  t.throws(() => sgd.step(), { message: /optimizer\.step\(\): its parameters are in use by 1 pending async native call\(s\)/ });
  await readState;
  dispose(Object.values(state));
  // a whole training step of this network beside another network's inference
  pending = other.forward(x);
  const value = await trainStep(net, sgd, x, y, { loss: 'ceDice' });
  t.true(Number.isFinite(value));
  (await pending).dispose();
  dispose([x, y, logits, loss, weight]);
  net.dispose();
  other.dispose();
});

test.serial('optimizers refuse unsafe or inconsistent use instead of corrupting weights', async (t) => {
  const net = nets.UNet2D({ features: [2, 2, 2, 2, 2] }).eval();
  const sgd = SGD(net, { lr: 0.1, momentum: 0.9 });
  const x = randn([1, 1, 16, 16]);
  const pending = net.forward(x);
  t.throws(() => sgd.step(), { message: /optimizer\.step\(\): its parameters are in use by 1 pending async native call\(s\); await them first$/ });
  t.throws(() => sgd.zeroGrad(), { message: /optimizer\.zeroGrad\(\)/ });
  (await pending).dispose();
  t.notThrows(() => sgd.step());
  const w = tensor([1, 2], { requiresGrad: true });
  t.throws(() => SGD([{ params: [w] }, { params: [w] }], { lr: 0.1 }), { message: /a parameter appears twice \(in groups 0 and 1\)/ });
  const adam = Adam([w]);
  t.throws(() => adam.loadStateDict({ '0.0.momentum_buffer': tensor([0, 0]) }), { message: /'0\.0\.momentum_buffer' is not Adam state \(state of the other optimizer\?\)/ });
  t.throws(() => adam.loadStateDict({ '0.0.exp_avg': tensor([0, 0]) }), { message: /partial Adam state/ });
  const raw = (await import('../lib/native.js')).native as unknown as { OptimizerHandle: new () => { step(): void } };
  t.throws(() => new raw.OptimizerHandle().step(), { message: /this handle holds no optimizer/ });
  dispose([x, w]);
  net.dispose();
});
