// BCP's optimizer hand-over (bcp.keepOptimizer): the ACDC recipe starts self-training from the best
// pre-training checkpoint with its SGD momentum buffers (the official ACDC code's load_net_opt), the LA
// recipe from a fresh optimizer (its LA code loads the weights only). A stage whose validations all
// scored 0 hands over its latest checkpoint, not its first. (The two trainings run concurrently in one
// thread: each optimizer waits only for the calls that touch its own parameters. Neither test depends on
// the shared random generator's draws.)
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, loadCheckpoint, nets, readCheckpointInfo, SGD, setNumThreads, tidy, trainers } from '../lib/index.js';

setNumThreads(1);

test('the recipes: ACDC keeps the pre-training optimizer, LA starts a fresh one', (t) => {
  t.true(trainers.resolveConfig('bcp-acdc').bcp.keepOptimizer);
  t.false(trainers.resolveConfig('bcp-la').bcp.keepOptimizer);
  t.false(trainers.resolveConfig('bcp-acdc', { bcp: { keepOptimizer: false } }).bcp.keepOptimizer);
  t.throws(() => trainers.resolveConfig('bcp-acdc', { bcp: { keepOptimizer: 'yes' as never } }), { message: "resolveConfig(): argument 'bcp.keepOptimizer' must be true or false, got the string \"yes\"" });
});

test('self-training starts from the momentum buffers of the best pre-training checkpoint (ACDC), or none (LA setting)', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-bcp-opt-'));
  const config = trainers.resolveConfig('bcp-acdc', { pretrainIterations: 3, iterations: 1, validateEvery: 3, batchSize: 4, labeledBatch: 2, size: [32, 32], labeled: 4, valCases: 1 });
  const data = trainers.syntheticData({ labeled: 4, unlabeled: 4, size: 32, valCases: 1, seed: 2 });
  try {
    const r = await trainers.train(config, { data, out });
    t.truthy(r.bests.pretrain);
  } finally {
    data.dispose();
  }
  const best = join(out, 'best-pretrain.ckpt');
  // what the best pre-training checkpoint holds: the weights and the SGD state at that iteration
  const net = nets.UNet2D({ outChannels: 4 });
  const saved = SGD(net, { lr: config.lr, momentum: config.momentum, weightDecay: config.weightDecay });
  await loadCheckpoint(best, { network: net, optimizer: saved, restoreRng: false });
  const expected = saved.stateDict();
  const buffers = Object.keys(expected).filter((k) => /momentum/.test(k));
  t.true(buffers.length > 0, `momentum buffers in the checkpoint: ${Object.keys(expected).slice(0, 4).join(', ')}`);

  for (const keep of [true, false]) {
    const method = trainers.buildMethod({ ...config, bcp: { keepOptimizer: keep } });
    try {
      await method.stages[1].begin(false, best);
      const state = method.optimizer().stateDict();
      if (keep) {
        t.deepEqual(Object.keys(state), Object.keys(expected));
        for (const k of Object.keys(expected)) t.is(Number(state[k].sub(expected[k]).abs().max().item()), 0, k);
      } else {
        t.deepEqual(Object.keys(state).filter((k) => /momentum/.test(k)), [], 'a fresh optimizer: no momentum buffers');
      }
      // either way the student starts from the best pre-trained weights
      const w = method.networks.student.stateDict();
      const ref = net.stateDict();
      t.is(Number(w['decoder.out_conv.weight'].sub(ref['decoder.out_conv.weight']).abs().max().item()), 0);
      dispose([state, w, ref]);
    } finally {
      method.dispose();
    }
  }
  dispose(expected);
  net.dispose();
});

test('while every validation scores 0, the best checkpoint is the latest: self-training starts from the most trained weights', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-bcp-zero-'));
  const config = trainers.resolveConfig('bcp-acdc', { pretrainIterations: 4, iterations: 2, validateEvery: 2, batchSize: 4, labeledBatch: 2, size: [32, 32], labeled: 4, valCases: 1 });
  const data = trainers.syntheticData({ labeled: 4, unlabeled: 4, size: 32, valCases: 1, seed: 2 });
  // validation volumes without foreground: every Dice is 0 (the papers' protocol scores an empty reference 0)
  const validation = data.validation.bind(data);
  data.validation = async () => (await validation()).map((v) => ({ ...v, label: tidy(() => v.label.mul(0)) }));
  const events: trainers.TrainEvent[] = [];
  try {
    const r = await trainers.train(config, { data, out, onEvent: (e) => events.push(e) });
    const validations = events.filter((e) => e.type === 'validation');
    t.deepEqual(validations.map((e) => [e.stage, e.iteration, e.dice, e.improved]), [
      ['pretrain', 2, 0, true],
      ['pretrain', 4, 0, true],
      ['train', 2, 0, true],
    ]);
    t.is(r.bests.pretrain.iteration, 4, 'the latest pre-training validation');
    t.is((await readCheckpointInfo(join(out, 'best-pretrain.ckpt'))).iteration, 4);
    t.is(r.best!.iteration, 2);
  } finally {
    data.dispose();
  }
});
