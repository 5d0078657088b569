// The native VerSemi network (backbone + controller + dynamic head as one network, kind 'VerSemi') against
// today's TypeScript model (the V-Net's forwardFeatures + trainers.DynamicHead): the same state-dict keys as
// the trainer's checkpoints, the same logits (eval and train mode, running statistics) to 1e-5, and a
// VerSemi checkpoint served by Segmenter, the native sliding window and `semiseg predict --task`.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import h5wasm from 'h5wasm/node';

import {
  dispose,
  manualSeed,
  networkTask,
  nets,
  randn,
  parseNifti,
  readNifti,
  saveCheckpoint,
  Segmenter,
  setNetworkTask,
  setNumThreads,
  slidingWindowInference,
  slidingWindowWith,
  tensor,
  tidy,
  trainers,
  type Network,
  type Tensor,
} from '../lib/index.js';
import { startInferenceServer } from '../examples/inference-server.js';
import { niftiImageBytes } from './helpers/nifti.js';
import { repoRoot } from './helpers/reference.js';

setNumThreads(1);
const cli = join(repoRoot, 'dist/lib/cli.js');
const maxDiff = (a: Tensor, b: Tensor) => Number(tidy(() => a.sub(b).abs().max()).item());

/** A VerSemi checkpoint as the trainer writes it (backbone as the model, head as named tensors), with non-trivial head statistics. */
async function verSemiCheckpoint(dir: string): Promise<{ path: string; net: Network; head: InstanceType<typeof trainers.DynamicHead> }> {
  manualSeed(11);
  const net = nets.VNet3D({ normalization: 'instancenorm', lastBlock: false });
  const head = new trainers.DynamicHead(2);
  const perturb = (t: Tensor, scale: number, shift: number) => {
    const r = randn(t.shape).mul(scale).add(shift);
    t.copyFrom(r);
    r.dispose();
  };
  perturb(head.buffers['controller.bn.running_mean'], 0.3, 0.2);
  perturb(head.buffers['controller.bn.running_var'], 0.1, 1.2);
  perturb(head.buffers['pre.bn.running_mean'], 0.3, 0.1);
  perturb(head.buffers['pre.bn.running_var'], 0.1, 0.9);
  perturb(head.params['controller.bn.weight'], 0.2, 1);
  perturb(head.params['pre.bn.bias'], 0.2, 0);
  // the foreground bias of the last dynamic layer (entry 161) moved by the median foreground margin of
  // task 1 on a random volume, so both labels occur
  net.eval();
  const probe = randn([1, 1, 32, 32, 32]);
  const lg = await tsLogits(net, head, probe, 1, false);
  const margins = Float32Array.from(tidy(() => lg.narrow(1, 1, 1).sub(lg.narrow(1, 0, 1)).flatten()).data() as Float32Array).sort();
  dispose([probe, lg]);
  const bias = head.params['controller.conv.bias'].data() as Float32Array;
  bias[161] -= margins[margins.length >> 1];
  const shifted = tensor(bias);
  head.params['controller.conv.bias'].copyFrom(shifted);
  shifted.dispose();
  const tensors = Object.fromEntries(Object.entries({ ...head.params, ...head.buffers }).map(([k, t]) => [`head.${k}`, t]));
  const path = join(dir, 'versemi.ckpt');
  const config = trainers.resolveConfig('versemi-multi', { size: [32, 32, 32] });
  await saveCheckpoint(path, { network: net, tensors, iteration: 1, extra: { config } });
  return { path, net, head };
}

/** Today's TypeScript model: backbone features, then the head under `task` for every sample. */
async function tsLogits(net: Network, head: InstanceType<typeof trainers.DynamicHead>, x: Tensor, task: number, training: boolean): Promise<Tensor> {
  const f = await net.forwardFeatures(x);
  try {
    return head.forward(f.features[4], f.features[8], new Array<number>(x.shape[0]).fill(task), training);
  } finally {
    dispose([f.logits, ...f.features]);
  }
}

test.serial('the native VerSemi network equals the TypeScript backbone + head to 1e-5 and loads its checkpoints', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-versemi-native-'));
  const { path, net, head } = await verSemiCheckpoint(dir);
  const model = await trainers.loadVerSemiNetwork(path);
  t.is(model.kind, 'VerSemi');
  t.deepEqual(networkTask(model), { task: 0, tasks: 2 });
  t.deepEqual(model.options, { ...net.options, tasks: 2 });
  // the state dict: the backbone's keys, then the head's under the names the checkpoints give them
  const keys = Object.keys(model.stateDict());
  const expected = [...Object.keys(net.stateDict()), ...Object.keys({ ...head.params, ...head.buffers }).map((k) => `head.${k}`)];
  t.deepEqual([...keys].sort(), [...expected].sort());
  t.is(model.parameterCount(), net.parameterCount() + head.parameters().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0));

  const x = randn([2, 1, 32, 32, 32]);
  net.eval();
  model.eval();
  for (const task of [0, 1, 2]) {
    setNetworkTask(model, task);
    const a = await model.forward(x);
    const b = await tsLogits(net, head, x, task, false);
    t.deepEqual(a.shape, [2, 2, 32, 32, 32]);
    t.true(maxDiff(a, b) < 1e-5, `eval, task ${task}: ${maxDiff(a, b)}`);
    dispose([a, b]);
  }
  // train mode: the same dropout draws, the same logits and the same running statistics afterwards
  setNetworkTask(model, 1);
  model.train();
  net.train();
  manualSeed(5);
  const a = await model.forward(x);
  manualSeed(5);
  const b = await tsLogits(net, head, x, 1, true);
  t.true(maxDiff(a, b) < 1e-5, `train: ${maxDiff(a, b)}`);
  const buffers = model.namedBuffers();
  for (const [k, v] of Object.entries(head.buffers)) t.true(maxDiff(buffers[`head.${k}`], v) < 1e-6, k);
  dispose([a, b, x, buffers]);

  t.throws(() => setNetworkTask(model, 3), { message: "setNetworkTask(): argument 'task' must be a task id in [0, 2] (2 = the synthetic task), got 3" });
  t.throws(() => setNetworkTask(net, 0), { message: 'setNetworkTask(): a VNet3D has no task (only a VerSemi network has)' });
  t.throws(() => nets.VerSemi({ tasks: 0 }), { message: /VerSemi\(\): argument 'tasks' must be an integer >= 1, got 0/ });
  model.dispose();
  net.dispose();
  head.dispose();
});

test.serial('a VerSemi checkpoint served by Segmenter, the native sliding window and semiseg predict --task', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-versemi-serve-'));
  const { path, net, head } = await verSemiCheckpoint(dir);
  const volume = randn([40, 36, 32]);
  const task = 1;
  const seg = await Segmenter.load(path, { task });
  t.is(seg.network.kind, 'VerSemi');
  t.is(seg.settings.task, task);
  const patch = seg.settings.size;
  t.deepEqual(patch, [32, 32, 32]);
  const strides = [18, 18, 4]; // the LA protocol's, as predictVolume uses (windowStrides)
  // probabilities: the native sliding window on the native network vs the JS window on the TypeScript model
  net.eval();
  const reference = await slidingWindowWith(
    async (w) => {
      const logits = await tsLogits(net, head, w, task, false);
      const p = logits.softmax(1);
      logits.dispose();
      return p;
    },
    volume,
    { patch, strides },
  );
  const probs = await slidingWindowInference(seg.network, volume, { patch, strides });
  t.true(maxDiff(probs, reference) < 1e-5, `probabilities: ${maxDiff(probs, reference)}`);
  const want = tidy(() => reference.argmax(0));
  const foreground = Number(tidy(() => want.sum()).item()) / want.shape.reduce((a, b) => a * b, 1);
  t.true(foreground > 0.01 && foreground < 0.99, `both labels occur (foreground ${foreground})`);
  const labels = await seg.segment(volume);
  t.is(Number(tidy(() => labels.ne(want).sum()).item()), 0, 'Segmenter labels = the TypeScript model');
  // another task gives other probabilities (the task code reaches the head)
  const other = await Segmenter.load(path, { task: 0 });
  const probs0 = await slidingWindowInference(other.network, volume, { patch, strides });
  t.true(maxDiff(probs0, probs) > 1e-3, `task 0 vs 1: ${maxDiff(probs0, probs)}`);

  // semiseg predict --task on an .h5 volume of the dataset layout (no preprocessing): the same labels
  await h5wasm.ready;
  const input = join(dir, 'volume.h5');
  const file = new h5wasm.File(input, 'w');
  file.create_dataset({ name: 'image', data: volume.data() as Float32Array, shape: volume.shape, dtype: '<f4' });
  file.close();
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });
  const pr = run('predict', input, '--checkpoint', path, '--task', String(task), '-o', join(dir, 'p.nii.gz'));
  t.is(pr.status, 0, pr.stderr);
  const written = await readNifti(join(dir, 'p.nii.gz'));
  t.is(Number(tidy(() => written.data.to('int64').ne(want).sum()).item()), 0, 'predict --task labels = the TypeScript model');
  const bad = run('predict', input, '--checkpoint', path, '--task', '3', '-o', join(dir, 'q.nii.gz'));
  t.is(bad.status, 2);
  t.regex(bad.stderr, /task id in \[0, 2\] \(2 = the synthetic task\), got 3/);
  await t.throwsAsync(() => Segmenter.load(path, { task: -1 }), { message: /Segmenter.load\(\): argument 'task' must be an integer >= 0, got -1/ });

  // the example inference service with --task: its replies are the library's labels for that task
  const body = niftiImageBytes(volume.shape, volume.data() as Float32Array, [1.25, 1.25, 2]);
  const nifti = parseNifti(body, 'input');
  const served: Record<number, number[]> = {};
  for (const k of [task, 0]) {
    const svc = await startInferenceServer({ checkpoint: path, task: k, concurrency: 1 });
    try {
      const base = `http://127.0.0.1:${(svc.server.address() as AddressInfo).port}`;
      const health = (await (await fetch(`${base}/health`)).json()) as Record<string, unknown>;
      t.like(health, { model: 'VerSemi', task: k, classes: 2 });
      const r = await fetch(`${base}/segment`, { method: 'POST', body });
      t.is(r.status, 200);
      const reply = parseNifti(Buffer.from(await r.arrayBuffer()), 'reply');
      served[k] = Array.from(reply.data.data() as BigInt64Array, Number);
      reply.data.dispose();
    } finally {
      await svc.close();
    }
    const lib = await Segmenter.load(path, { task: k });
    const expected = await lib.segmentNifti(nifti);
    t.deepEqual(served[k], Array.from(expected.data() as BigInt64Array, Number), `service task ${k} = Segmenter`);
    expected.dispose();
    lib.dispose();
  }
  t.notDeepEqual(served[task], served[0], 'the task reaches the service');
  await t.throwsAsync(() => startInferenceServer({ checkpoint: path, task: 3 }), { message: /task id in \[0, 2\] \(2 = the synthetic task\), got 3/ });
  nifti.data.dispose();

  dispose([volume, reference, probs, probs0, want, labels, written.data]);
  seg.dispose();
  other.dispose();
  net.dispose();
  head.dispose();
});

test('networkFromCheckpoint refuses a task for checkpoints that are not VerSemi models', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-versemi-notask-'));
  const path = join(dir, 'unet.ckpt');
  const net = nets.UNet2D();
  await saveCheckpoint(path, { network: net, iteration: 0 });
  net.dispose();
  await t.throwsAsync(() => Segmenter.load(path, { task: 1 }), { message: /is not a VerSemi model, so it takes no task id \(got task 1\)/ });
});
