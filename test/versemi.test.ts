// VerSemi's task-prompted dynamic head against a torch.nn / DoDNet-style reference
// (benchmarks/reference/versemi_reference.py): train-mode logits of several task lists on one forward,
// every gradient, the BatchNorm running statistics after that one step, eval-mode logits; a trainer
// step runs each head BatchNorm once; and its errors.
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, manualSeed, randn, readTorchStateDict, setNumThreads, trainers, writeTorchStateDict, type Tensor } from '../lib/index.js';
import { runPython } from './helpers/python.js';
import { assertClose, referencePython } from './helpers/reference.js';

setNumThreads(1);

test('the dynamic head equals the reference: per-sample weights from the task code, grouped over the batch', async (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  manualSeed(21);
  const tasks = 2;
  // one training step asks several heads of the same batch (own task, the synthetic task 2, another)
  const lists = [
    [0, 2, 1],
    [2, 2, 2],
    [1, 0, 1],
  ];
  const head = new trainers.DynamicHead(tasks);
  // BatchNorm affine parameters away from (1, 0), so they matter in the comparison
  const w1 = randn([256]).mul(0.2).add(1);
  head.params['controller.bn.weight'].copyFrom(w1);
  const bottleneck = randn([3, 256, 2, 2, 2]).mul(2).add(0.5).setRequiresGrad();
  const feature = randn([3, 16, 6, 6, 4]).mul(1.5).add(0.3).setRequiresGrad();
  const probes = lists.map(() => randn([3, 2, 6, 6, 4]));
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-versemi-'));
  await writeTorchStateDict(join(dir, 'versemi_in.pt'), { ...head.params, bottleneck, feature, ...Object.fromEntries(probes.map((p, k) => [`probe${k}`, p])) });
  runPython('versemi_reference.py', dir, String(tasks), JSON.stringify(lists));
  const ref = await readTorchStateDict(join(dir, 'versemi_out.pt'));

  // one step: the task-independent part once, then each list of task ids
  const enc = head.encode(bottleneck, feature, true);
  const logits = lists.map((ids) => head.decode(enc, ids));
  logits.forEach((lg, k) => assertClose(t, `train-mode logits of list ${k}`, lg, ref[`logits${k}`], 1e-5, 1e-4));
  const loss = logits.map((lg, k) => lg.mul(probes[k]).sum()).reduce((a, b) => a.add(b));
  loss.backward();
  assertClose(t, 'd/d bottleneck', bottleneck.grad, ref.grad_bottleneck, 1e-6, 1e-3);
  assertClose(t, 'd/d feature', feature.grad, ref.grad_feature, 1e-6, 1e-3);
  for (const [k, p] of Object.entries(head.params)) assertClose(t, `d/d ${k}`, p.grad, ref[`grad_${k}`], 1e-6, 1e-3);
  // the running statistics after one step: each BatchNorm advanced once (momentum 0.1), not once per list
  for (const [k, b] of Object.entries(head.buffers)) assertClose(t, `${k} after one step`, b, ref[k], 1e-6, 1e-5);
  const evalLogits = head.forward(bottleneck, feature, lists[0], false);
  assertClose(t, 'eval-mode logits', evalLogits, ref.eval_logits, 1e-5, 1e-4);
  // the task code matters: the same input under another task gives other logits
  const other = head.forward(bottleneck, feature, [1, 0, 2], false);
  t.true(Math.abs(Number(other.sub(evalLogits).abs().max().item())) > 1e-4);
  dispose([w1, bottleneck, feature, ...probes, enc.pooled, enc.pre, ...logits, loss, evalLogits, other, ...Object.values(ref)]);
  head.dispose();
});

test.serial('a VerSemi training step runs each head BatchNorm once in training mode, whatever the tasks it asks', async (t) => {
  // stage 1 asks the own-task, synthetic, a and b heads; stage 2 adds the synthetic and T task heads
  const config = trainers.resolveConfig('versemi-multi', { size: [32, 32, 32], batchSize: 4, labeledBatch: 2, pretrainIterations: 1, iterations: 1 });
  const method = trainers.buildMethod(config);
  const forward = trainers.BatchNorm.prototype.forward;
  let updates = 0;
  trainers.BatchNorm.prototype.forward = function (x: Tensor, training: boolean) {
    if (training) updates++;
    return forward.call(this, x, training);
  };
  try {
    for (const [stage, B] of [[0, 2], [1, 4]] as const) {
      manualSeed(3);
      const images = randn([B, 1, 32, 32, 32]);
      const labels = randn([B, 32, 32, 32]).gt(0).to('int64');
      updates = 0;
      await method.stages[stage].step({ images, labels, indices: Array.from({ length: B }, (_, i) => i) } as never, 1);
      t.is(updates, 2, `stage ${method.stages[stage].name}: controller and pre-head BatchNorm once each`);
      dispose([images, labels]);
    }
  } finally {
    trainers.BatchNorm.prototype.forward = forward;
    method.dispose();
  }
});

test('the dynamic head names bad task ids and batch mismatches', (t) => {
  const head = new trainers.DynamicHead(1);
  const b = randn([2, 256, 1, 1, 1]);
  t.throws(() => head.controller(b, [0], true), { message: 'DynamicHead: 1 task ids for a batch of 2' });
  t.throws(() => head.controller(b, [0, 2], true), { message: 'DynamicHead: task id 2 is outside [0, 1] (1 = the synthetic task)' });
  t.throws(() => new trainers.DynamicHead(0), { message: "DynamicHead: 'tasks' must be an integer >= 1, got 0" });
  b.dispose();
  head.dispose();
});

test("VerSemi's backbone: the V-Net without block_nine and the final skip, recorded in its options", async (t) => {
  const { nets } = await import('../lib/index.js');
  const plain = nets.VNet3D({ nFilters: 4 });
  const bare = nets.VNet3D({ nFilters: 4, normalization: 'instancenorm', lastBlock: false });
  t.is(bare.options.lastBlock, false);
  t.false('lastBlock' in plain.options, 'older checkpoints of the plain V-Net still match their options');
  const keys = Object.keys(bare.namedParameters());
  t.false(keys.some((k) => k.startsWith('block_nine')));
  t.true(Object.keys(plain.namedParameters()).some((k) => k.startsWith('block_nine')));
  // the last decoder feature is block_eight_up's output (16 -> nFilters channels at full size)
  const x = randn([1, 1, 32, 32, 16]);
  const out = await bare.forwardFeatures(x);
  t.deepEqual(out.features[8].shape, [1, 4, 32, 32, 16]);
  t.throws(() => nets.VNet3D({ lastBlock: 'no' as never }), { message: /VNet3D\(\): argument 'lastBlock' must be a boolean/ });
  dispose([x, out.logits, ...out.features]);
  plain.dispose();
  bare.dispose();
});
