// Trainers: each method trains on small synthetic data (its loss falls; its checkpoints load and
// evaluate), a cancelled run resumed from its checkpoint ends with the weights of an uninterrupted run,
// a loss that turns NaN stops the run naming the iteration and keeps the last good checkpoint, and a
// short BCP run on the real ACDC data when it is present. Serial: an optimizer refuses to step while
// any async native call of the process is pending, and parallel runs would trip that guard.
import test from 'ava';
import { decode } from 'fast-png';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Segmenter, binaryMetrics, dispose, liveTensors, loadCheckpoint, nets, readCheckpointInfo, setNumThreads, trainers, type Network } from '../lib/index.js';
import { volumeOverlayPng, type OverlayIndex } from '../lib/report/overlays.js';
import { dataDir } from './helpers/data.js';
import { maxAbsDiff } from './helpers/grad.js';

setNumThreads(1);
const tmp = () => mkdtempSync(join(tmpdir(), 'semiseg-train-'));

// ACTION at test size: 32-wide windows, few anco draws, a small representation head at half size
const tinyAction = { globalIterations: 6, localIterations: 6, window: 32, pool: 8, queries: 16, negatives: 16, representation: 32, representationScale: 0.5 };

function tiny(recipe: string, extra: Partial<trainers.TrainConfig> = {}): trainers.TrainConfig {
  const threeD = recipe.endsWith('-la');
  const supervisedOnly = recipe.startsWith('supervised');
  return trainers.resolveConfig(recipe, {
    ...(recipe.startsWith('action') ? { action: { ...trainers.RECIPES[recipe].action, ...tinyAction, window: threeD ? 16 : 32 } } : {}),
    iterations: 24,
    pretrainIterations: recipe.startsWith('bcp') ? 12 : 0,
    batchSize: supervisedOnly ? 2 : 4,
    labeledBatch: 2,
    size: threeD ? [32, 32, 16] : [32, 32],
    validateEvery: 12,
    lr: 0.03,
    ...extra,
  });
}

function synthetic(config: trainers.TrainConfig) {
  const threeD = config.network === 'VNet3D';
  return trainers.syntheticData({ spatialDims: threeD ? 3 : 2, size: threeD ? 40 : 32, patch: threeD ? [32, 32, 16] : undefined, labeled: 6, unlabeled: 10, valCases: 1 });
}

async function run(config: trainers.TrainConfig, out: string, options: Partial<trainers.TrainOptions> = {}) {
  const data = synthetic(config);
  const losses: number[] = [];
  try {
    const result = await trainers.train(config, {
      data,
      out,
      ...options,
      onEvent: (e) => {
        if (e.type === 'iteration') losses.push(e.loss);
        options.onEvent?.(e);
      },
    });
    return { result, losses };
  } finally {
    data.dispose();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

for (const recipe of ['supervised-acdc', 'mt-acdc', 'bcp-acdc', 'coda-acdc', 'icl-acdc', 'action-acdc', 'supervised-la', 'bcp-la', 'action-la']) {
  test.serial(`${recipe}: a short run lowers the loss and its checkpoints load and evaluate`, async (t) => {
    const before = liveTensors();
    const out = tmp();
    const config = tiny(recipe);
    const { result, losses } = await run(config, out);
    const stages = recipe.startsWith('bcp') ? 2 : recipe.startsWith('action') ? 3 : 1;
    const extraStages = recipe.startsWith('action') ? config.action.globalIterations + config.action.localIterations : 0;
    t.is(losses.length, config.iterations + config.pretrainIterations + extraStages);
    // BCP's self-training loss restarts on harder (mixed, pseudo-labelled) inputs: compare within the last stage
    const last = losses.slice(-config.iterations);
    t.true(mean(last.slice(-4)) < mean(last.slice(0, 4)), `${recipe} loss ${last.map((l) => l.toFixed(3)).join(' ')}`);
    t.truthy(result.best);
    t.is(Object.keys(result.bests).length, stages);
    for (const f of ['best.ckpt', 'last.ckpt', 'final.ckpt', 'log.jsonl']) t.true(existsSync(join(out, f)), f);
    const info = await readCheckpointInfo(result.best!.path);
    t.is(info.kind, config.network);
    const net = nets.fromOptions(info.kind, info.options);
    await loadCheckpoint(result.best!.path, { network: net });
    const data = synthetic(config);
    const v = await trainers.validateDice(net, await data.validation(), trainers.inferenceSettings(config));
    t.true(Math.abs(v.dice - result.best!.dice) < 1e-9, `re-evaluated ${v.dice} vs ${result.best!.dice}`);
    data.dispose();
    net.dispose();
    t.is(liveTensors(), before, 'no tensor left behind');
  });
}

async function finalWeights(path: string, kind: 'UNet2D' | 'VNet3D'): Promise<Network> {
  const info = await readCheckpointInfo(path);
  const net = nets.fromOptions(kind, info.options);
  await loadCheckpoint(path, { network: net, restoreRng: false });
  return net;
}

for (const recipe of ['mt-acdc', 'bcp-acdc', 'coda-acdc', 'icl-acdc', 'versemi-la', 'action-acdc']) {
  test.serial(`${recipe}: cancelled and resumed gives the weights of an uninterrupted run`, async (t) => {
    const twoStages = recipe.startsWith('bcp') || recipe.startsWith('versemi');
    const config = tiny(recipe, {
      iterations: 10,
      pretrainIterations: twoStages ? 4 : 0,
      validateEvery: 100,
      ...(recipe.startsWith('versemi') ? { lr: 3e-3 } : {}),
      ...(recipe.startsWith('action') ? { action: { ...trainers.RECIPES[recipe].action, ...tinyAction, globalIterations: 3, localIterations: 3 } } : {}),
    });
    const whole = tmp();
    await run(config, whole);
    const parts = tmp();
    const controller = new AbortController();
    const stopAt = twoStages ? { stage: 'train', iteration: 4 } : { stage: 'train', iteration: 6 };
    const err = await t.throwsAsync(
      run(config, parts, {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'iteration' && e.stage === stopAt.stage && e.iteration === stopAt.iteration) controller.abort();
        },
      }),
    );
    t.regex(err!.message, new RegExp(`train: cancelled after iteration ${stopAt.iteration} of stage '${stopAt.stage}'; resume from '.*last.ckpt'`));
    t.false(existsSync(join(parts, 'final.ckpt')));
    const resumedEvents: trainers.TrainEvent[] = [];
    await run(config, parts, { resume: true, onEvent: (e) => resumedEvents.push(e) });
    const start = resumedEvents.find((e) => e.type === 'start') as Extract<trainers.TrainEvent, { type: 'start' }>;
    t.deepEqual(start.resumedAt, stopAt);
    t.is(resumedEvents.filter((e) => e.type === 'iteration').length, config.iterations - stopAt.iteration);
    const a = await finalWeights(join(whole, 'final.ckpt'), config.network);
    const b = await finalWeights(join(parts, 'final.ckpt'), config.network);
    const pa = a.namedParameters();
    const pb = b.namedParameters();
    let worst = 0;
    for (const k of Object.keys(pa)) worst = Math.max(worst, maxAbsDiff(pa[k], pb[k]));
    t.is(worst, 0, `largest weight difference ${worst}`);
    for (const d of [pa, pb]) for (const v of Object.values(d)) v.dispose();
    a.dispose();
    b.dispose();
  });
}

for (const tasks of [1, 2]) {
  test.serial(`versemi with ${tasks} task(s): both stages run, the loss falls, and the saved backbone + head re-evaluate`, async (t) => {
    const before = liveTensors();
    const config = trainers.resolveConfig(tasks === 1 ? 'versemi-la' : 'versemi-multi', {
      iterations: 24,
      pretrainIterations: 8,
      batchSize: 4,
      labeledBatch: 2,
      size: [32, 32, 16],
      validateEvery: 8,
      lr: 3e-3,
    });
    const one = (seed: number) => trainers.syntheticData({ spatialDims: 3, size: 40, patch: [32, 32, 16], labeled: 6, unlabeled: 10, valCases: 1, seed });
    const data = tasks === 1 ? one(0) : trainers.multiTaskData([one(0), one(5)]);
    const out = tmp();
    const losses: Record<string, number[]> = { pretrain: [], train: [] };
    const parts = new Set<string>();
    try {
      const result = await trainers.train(config, {
        data,
        out,
        onEvent: (e) => {
          if (e.type !== 'iteration') return;
          losses[e.stage].push(e.loss);
          Object.keys(e.parts).forEach((k) => parts.add(k));
        },
      });
      t.is(losses.pretrain.length, 8);
      t.is(losses.train.length, 24);
      t.deepEqual([...parts].sort(), ['consistency', 'cube', 'sup', 'synth']);
      t.true(mean(losses.train.slice(-6)) < mean(losses.train.slice(0, 6)), `loss ${losses.train.map((l) => l.toFixed(3)).join(' ')}`);
      t.truthy(result.best);
      const volumes = await data.validation();
      t.deepEqual(volumes.map((v) => v.task ?? 0), tasks === 1 ? [0] : [0, 1]);
      const model = await trainers.loadVerSemi(result.best!.path);
      t.is(model.tasks, tasks);
      const v = await trainers.validateVerSemi(model.net, model.head, volumes, trainers.inferenceSettings(config));
      t.true(Math.abs(v.dice - result.best!.dice) < 1e-9, `re-evaluated ${v.dice} vs ${result.best!.dice}`);
      model.dispose();
      // Segmenter serves the checkpoint as the native VerSemi network, each volume under its task
      let sum = 0;
      for (const vol of volumes) {
        const seg = await Segmenter.load(result.best!.path, { task: vol.task ?? 0 });
        const pred = await seg.segment(vol.image);
        const [p, g] = [pred.eq(1), vol.label.eq(1)];
        sum += binaryMetrics(p, g, {}, false).dice;
        dispose([pred, p, g]);
        seg.dispose();
      }
      t.true(Math.abs(sum / volumes.length - result.best!.dice) < 1e-9, `Segmenter ${sum / volumes.length} vs ${result.best!.dice}`);
      // the last validation's overlay pictures (3-D: slices along z) show the final weights' prediction
      const index = JSON.parse(readFileSync(join(out, 'overlays', 'index.json'), 'utf8')) as OverlayIndex;
      t.like(index, { stage: 'train', iteration: 24, volume: volumes[0].id });
      t.is(index.files.length, 3);
      const seg = await Segmenter.load(result.final, { task: volumes[0].task ?? 0 });
      const pred = await seg.segment(volumes[0].image);
      const expected = volumeOverlayPng(volumes[0].image, volumes[0].label, pred, volumes[0].label.rank - 1, index.slices);
      index.files.forEach((f, k) => t.true(readFileSync(join(out, 'overlays', f)).equals(expected[k]), `overlay ${f}`));
      t.is(decode(expected[0]).width, 3 * volumes[0].label.shape[1] + 2 * 2);
      dispose([pred]);
      seg.dispose();
    } finally {
      data.dispose();
    }
    t.is(liveTensors(), before, 'no tensor left behind');
  });
}

test.serial('versemi refuses data whose task count differs from the config', async (t) => {
  const config = trainers.resolveConfig('versemi-multi', { iterations: 2, batchSize: 4, labeledBatch: 2, size: [32, 32, 16] });
  const data = trainers.syntheticData({ spatialDims: 3, size: 40, patch: [32, 32, 16], labeled: 4, unlabeled: 4, valCases: 1 });
  await t.throwsAsync(trainers.train(config, { data, out: tmp() }), { message: "versemi: the data has 1 task(s) but the config trains 2 (set 'tasks')" });
  data.dispose();
  t.throws(() => trainers.multiTaskData([trainers.syntheticData({ spatialDims: 2 })]), { message: /dataset 0 \('synthetic-2d'\) has 4 classes; every task must be binary/ });
});

test.serial('a loss that turns NaN stops the run naming the iteration and keeps the last good checkpoint', async (t) => {
  const config = tiny('mt-acdc', { iterations: 12, validateEvery: 3 });
  const out = tmp();
  const data = synthetic(config);
  let poison = false;
  const augment = data.augment;
  data.augment = (image, label, rand) => {
    const [im, lb] = augment(image, label, rand);
    if (!poison) return [im, lb];
    const bad = im.mul(Number.NaN);
    im.dispose();
    return [bad, lb];
  };
  const err = await t.throwsAsync(
    trainers.train(config, {
      data,
      out,
      onEvent: (e) => {
        if (e.type === 'iteration' && e.iteration === 6) poison = true; // batch 8 on is NaN (7 was prepared already)
      },
    }),
  );
  data.dispose();
  t.regex(err!.message, /train: stage 'train' failed at iteration 8: the loss is NaN at iteration 8; the weights were not updated; the last good checkpoint '.*last.ckpt' is kept/);
  const info = await readCheckpointInfo(join(out, 'last.ckpt'));
  t.is(info.iteration, 6);
});

test.serial('resume refuses a checkpoint of another recipe, naming the setting', async (t) => {
  const out = tmp();
  await run(tiny('supervised-acdc', { iterations: 3, validateEvery: 3 }), out);
  const err = await t.throwsAsync(run(tiny('supervised-acdc', { iterations: 3, validateEvery: 3, seed: 5 }), out, { resume: true }));
  t.regex(err!.message, /train: cannot resume: '.*last.ckpt' has seed = 1337, this run 5/);
  const missing = await t.throwsAsync(run(tiny('supervised-acdc'), tmp(), { resume: true }));
  t.regex(missing!.message, /train: cannot resume: there is no checkpoint '.*last.ckpt'/);
});

test('recipes carry the spec defaults and reject bad overrides', (t) => {
  const bcp = trainers.resolveConfig('bcp-acdc');
  t.like(bcp, { batchSize: 24, labeledBatch: 12, pretrainIterations: 10000, iterations: 30000, lr: 0.01, schedule: 'constant', alpha: 0.5, emaAlpha: 0.99, emaScope: 'all', seed: 1337 });
  t.like(bcp.dice, { squared: true, smooth: 1e-10, includeBackground: true });
  const la = trainers.resolveConfig('bcp-la');
  t.like(la, { batchSize: 8, labeledBatch: 4, pretrainIterations: 2000, iterations: 15000, schedule: 'step', stepEvery: 2500, pairing: 'outFirst', emaScope: 'parameters' });
  t.like(la.dice, { squared: false, perSample: true, smooth: 1e-5 });
  t.deepEqual(la.size, [112, 112, 80]);
  t.is(trainers.resolveConfig('mt-acdc').consistencyStart, 1000);
  t.throws(() => trainers.resolveConfig('bcp-acdc', { alpha: 2 }), { message: /argument 'alpha' must be a number in \[0, 1\], got 2/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { size: [256] }), { message: /argument 'size' must be 2 multiples of 16 \(the UNet2D halves each side four times\), got an array \[256\]/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { batchSize: 20 }), { message: /argument 'labeledBatch' must be an even number, half of batchSize, for bcp/ });
  t.throws(() => trainers.resolveConfig('nope'), { message: /argument 'recipe' must be one of supervised-acdc/ });
  t.is(trainers.rampup(0, 0.1, 200), 0.1 * Math.exp(-5));
  t.is(trainers.rampup(200 * 150, 0.1, 200), 0.1);
  const box = trainers.randomBox([256, 256], 2 / 3, () => 0.999);
  t.deepEqual(box.size, [170, 170]);
  t.deepEqual(box.start, [85, 85]);
  t.deepEqual(trainers.randomBox([112, 112, 80], 2 / 3, () => 0).size, [74, 74, 53]);
});

test.serial('BCP trains on the real ACDC data (a short run)', async (t) => {
  if (!dataDir) return t.pass('no ../shared/data');
  const config = trainers.resolveConfig('bcp-acdc', { iterations: 6, pretrainIterations: 4, batchSize: 4, labeledBatch: 2, size: [64, 64], validateEvery: 6, valCases: 2, labeled: 3 });
  const data = trainers.acdcData(join(dataDir, 'ACDC'), { patients: 3, size: [64, 64], valCases: 2 });
  t.is(data.labeled, 68);
  t.is(data.unlabeled, 1312 - 68);
  const out = tmp();
  try {
    const r = await trainers.train(config, { data, out });
    t.true(r.best !== null && r.best.dice >= 0 && r.best.dice <= 1);
    t.true(existsSync(join(out, 'best-pretrain.ckpt')) && existsSync(join(out, 'best.ckpt')));
  } finally {
    data.dispose();
  }
});
