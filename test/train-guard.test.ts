// Guards of `semiseg train` and the training loop: Ctrl-C during a validation saves the finished
// iteration (a resumed run validates it first and ends as an uninterrupted one), SIGTERM stops like
// Ctrl-C, a resume with another split or other settings is refused naming them (--validate-every may
// change), a folder holding a run is refused without --resume, --val 0 and --set plan.* on data without a
// plan are usage errors, and a semi-supervised method with no unlabeled item fails before training.
// Library misuse (a rejecting async onEvent, a labeled item without its label, no validation volumes) fails
// cleanly. Serial: the runs share the process's random generator.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { liveTensors, loadCheckpoint, nets, readCheckpointInfo, setNumThreads, trainers, type Network } from '../lib/index.js';
import { syntheticFolder } from './helpers/folders.js';
import { maxAbsDiff } from './helpers/grad.js';
import { repoRoot } from './helpers/reference.js';

setNumThreads(1);
const tmp = () => mkdtempSync(join(tmpdir(), 'semiseg-guard-'));
const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });

function tiny(recipe: string, extra: Partial<trainers.TrainConfig> = {}): trainers.TrainConfig {
  return trainers.resolveConfig(recipe, { iterations: 6, batchSize: recipe.startsWith('supervised') ? 2 : 4, labeledBatch: 2, size: [32, 32], validateEvery: 3, lr: 0.03, networkOptions: { features: [2, 4, 8, 16, 32] }, ...extra });
}

async function runLoop(config: trainers.TrainConfig, out: string, options: Partial<trainers.TrainOptions> = {}, unlabeled = 4) {
  const data = trainers.syntheticData({ spatialDims: 2, size: 32, labeled: 4, unlabeled, valCases: 1 });
  try {
    return await trainers.train(config, { data, out, ...options });
  } finally {
    data.dispose();
  }
}

async function weights(path: string): Promise<Network> {
  const info = await readCheckpointInfo(path);
  const net = nets.fromOptions('UNet2D', info.options);
  await loadCheckpoint(path, { network: net, restoreRng: false });
  return net;
}

test.serial('Ctrl-C during a validation saves the finished iteration; the resumed run validates it first and ends as an uninterrupted one', async (t) => {
  const config = tiny('supervised-acdc');
  const whole = tmp();
  const uninterrupted = await runLoop(config, whole);
  const parts = tmp();
  const controller = new AbortController();
  // the abort comes with the iteration event of iteration 3, so it lands in the validation that follows
  const err = await t.throwsAsync(
    runLoop(config, parts, {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'iteration' && e.iteration === 3) controller.abort();
      },
    }),
  );
  t.regex(err!.message, /^train: cancelled after iteration 3 of stage 'train'; resume from '.*last\.ckpt'$/);
  t.is((await readCheckpointInfo(join(parts, 'last.ckpt'))).iteration, 3, 'last.ckpt holds the finished iteration');
  const lastLine = JSON.parse(readFileSync(join(parts, 'log.jsonl'), 'utf8').trim().split('\n').pop()!) as { type: string; message: string };
  t.deepEqual([lastLine.type, lastLine.message], ['failed', err!.message], 'the log ends with why the run stopped');
  const events: trainers.TrainEvent[] = [];
  const resumed = await runLoop(config, parts, { resume: true, onEvent: (e) => events.push(e) });
  const steps = events.flatMap((e) => (e.type === 'validation' || e.type === 'iteration' ? [`${e.type} ${e.iteration}`] : []));
  t.deepEqual(steps.slice(0, 3), ['validation 3', 'iteration 4', 'iteration 5'], 'the interrupted validation comes first');
  t.deepEqual(resumed.validations, uninterrupted.validations);
  t.deepEqual(resumed.best && { iteration: resumed.best.iteration, dice: resumed.best.dice }, uninterrupted.best && { iteration: uninterrupted.best.iteration, dice: uninterrupted.best.dice });
  const a = await weights(join(whole, 'final.ckpt'));
  const b = await weights(join(parts, 'final.ckpt'));
  const pa = a.namedParameters();
  const pb = b.namedParameters();
  let worst = 0;
  for (const k of Object.keys(pa)) worst = Math.max(worst, maxAbsDiff(pa[k], pb[k]));
  t.is(worst, 0, `largest weight difference ${worst}`);
  for (const d of [pa, pb]) for (const v of Object.values(d)) v.dispose();
  a.dispose();
  b.dispose();
});

test.serial('a resume with another split or other settings is refused, naming them; --validate-every may change', async (t) => {
  const out = tmp();
  const split = { labeled: ['a', 'b'], unlabeled: ['c', 'd'], validation: ['e'] };
  await runLoop(tiny('supervised-acdc', { iterations: 3 }), out, { split });
  let err = await t.throwsAsync(runLoop(tiny('supervised-acdc', { iterations: 3 }), out, { resume: true, split: { ...split, labeled: ['a', 'e'], validation: ['b'] } }));
  t.regex(
    err!.message,
    /^train: cannot resume: '.*last\.ckpt' was trained on another split than this run: labeled cases \(only in the checkpoint: b; only in this run: e\); validation cases \(only in the checkpoint: e; only in this run: b\); resume with the split of the run \(the same --labeled \/ --labeled-list, --val \/ --val-list\)$/,
  );
  err = await t.throwsAsync(runLoop(tiny('supervised-acdc', { iterations: 3 }), out, { resume: true, split: { ...split, unlabeled: ['c'] } }));
  t.regex(err!.message, /other split than this run: unlabeled cases \(only in the checkpoint: d; only in this run: none\)/);
  err = await t.throwsAsync(runLoop(tiny('supervised-acdc', { iterations: 3, lr: 0.05 }), out, { resume: true, split }));
  t.regex(err!.message, /^train: cannot resume: '.*last\.ckpt' has lr = 0\.03, this run 0\.05 \(a resume may change only device, precision, channelsLast, validateEvery\)$/);
  err = await t.throwsAsync(runLoop(tiny('supervised-acdc', { iterations: 3, size: [48, 48] }), out, { resume: true, split }));
  t.regex(err!.message, /has size = \[32,32\], this run \[48,48\]/);
  err = await t.throwsAsync(runLoop(tiny('supervised-acdc', { iterations: 3, dice: { ...tiny('supervised-acdc').dice, smooth: 1 } }), out, { resume: true, split }));
  t.regex(err!.message, /has dice\.smooth = [\d.e-]+, this run 1 \(/);
  const result = await runLoop(tiny('supervised-acdc', { iterations: 3, validateEvery: 2 }), out, { resume: true, split });
  t.is(result.final, join(out, 'final.ckpt'));
});

test.serial('a semi-supervised method with no unlabeled item fails before training, saying what to pass', async (t) => {
  const out = tmp();
  const events: string[] = [];
  const err = await t.throwsAsync(runLoop(tiny('bcp-acdc', { pretrainIterations: 3 }), out, { onEvent: (e) => events.push(e.type) }, 0));
  t.regex(
    err!.message,
    /^train: bcp trains its 'train' stage on unlabeled items \(2 of each batch of 4\), but all \d+ training items of '.*' are labeled: pass --labeled N with fewer labeled cases than are available \(the others then train unlabeled\), or add unlabeled images \(imagesUnlabeled\/ of a NIfTI folder\)$/,
  );
  t.deepEqual(events, [], 'nothing trained');
  t.false(existsSync(join(out, 'last.ckpt')));
});

const synthArgs = ['train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--size', '32', '--batch-size', '2', '--labeled-batch', '1', '--set', 'networkOptions.features=[2,4,8,16,32]', '--seed', '3'];

test.serial('SIGTERM stops a run as Ctrl-C does: last.ckpt saved, the resume line, exit status 1', async (t) => {
  const out = tmp();
  const child = spawn(process.execPath, [cli, '--threads', '1', ...synthArgs, '--iterations', '100000', '--validate-every', '100000', '--json', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let sent = false;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (!sent && stdout.includes('"iteration":3,')) {
      sent = true;
      child.kill('SIGTERM');
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  t.is(signal, null, 'not killed by the signal');
  t.is(code, 1, stderr);
  const m = /^semiseg: train: cancelled after iteration (\d+) of stage 'train'; resume from '.*last\.ckpt'$/m.exec(stderr);
  t.truthy(m, stderr);
  t.is((await readCheckpointInfo(join(out, 'last.ckpt'))).iteration, Number(m![1]));
  rmSync(out, { recursive: true });
});

test.serial('train refuses an --out holding a run unless --resume; --val 0 and --set plan.* without a plan are usage errors', (t) => {
  const out = join(tmp(), 'run');
  let r = run(...synthArgs, '--iterations', '2', '--validate-every', '2', '--out', out);
  t.is(r.status, 0, r.stderr);
  const log = readFileSync(join(out, 'log.jsonl'), 'utf8');
  r = run(...synthArgs, '--iterations', '4', '--validate-every', '2', '--out', out);
  t.is(r.status, 2);
  t.is(r.stderr.trim(), `semiseg: --out: '${out}' already holds a run (last.ckpt, final.ckpt, best.ckpt, log.jsonl); continue it with --resume, or train into another --out (or remove the folder)`);
  t.is(readFileSync(join(out, 'log.jsonl'), 'utf8'), log, 'the run is untouched');
  r = run(...synthArgs, '--iterations', '2', '--validate-every', '2', '--out', out, '--resume');
  t.is(r.status, 0, r.stderr);
  r = run(...synthArgs, '--iterations', '2', '--val', '0');
  t.is(r.status, 2);
  t.regex(r.stderr, /--val 0 would hold out no case, but every run validates \(that picks best\.ckpt\): give --val 1 or more, or --val-list <file>/);
  const fresh = join(tmp(), 'plan');
  r = run(...synthArgs, '--iterations', '2', '--set', 'plan.network=UNet2D', '--out', fresh);
  t.is(r.status, 2);
  t.is(r.stderr.trim(), "semiseg: --set plan.network: only a Decathlon / nnU-Net NIfTI folder (dataset.json, imagesTr/, labelsTr/) is planned; 'synthetic' has no plan to change (its checkpoints could not be evaluated)");
  t.false(existsSync(fresh), 'nothing written');
});

test.serial('NIfTI folder: a resume with another split, --size or --lr is refused naming it; BCP with every case labeled fails before training', (t) => {
  const root = syntheticFolder({ n: 6, shape: [20, 20, 18] });
  const out = join(root, 'run');
  const args = ['train', '--method', 'supervised', '--data', root, '--val', '1', '--iterations', '2', '--validate-every', '2', '--batch-size', '2', '--labeled-batch', '1', '--size', '32', '--set', 'plan.network=UNet2D', '--set', 'networkOptions.features=[2,4,8,16,32]', '--out', out];
  let r = run(...args);
  t.is(r.status, 0, r.stderr);
  const list = join(root, 'val.txt');
  writeFileSync(list, 'case_000\n');
  r = run(...args, '--resume', '--val', '1', '--val-list', list);
  t.is(r.status, 1);
  t.regex(r.stderr, /cannot resume: '.*last\.ckpt' was trained on another split than this run: labeled cases \(only in the checkpoint: case_000; only in this run: case_005\); validation cases \(only in the checkpoint: case_005; only in this run: case_000\)/);
  r = run(...args, '--resume', '--size', '48');
  t.is(r.status, 2);
  t.regex(r.stderr, /--size 48: '.*run' was planned with size 32x32 and a resume keeps its plan; drop --size, or train into another --out/);
  r = run(...args, '--resume', '--set', 'plan.network=VNet3D');
  t.is(r.status, 2);
  t.regex(r.stderr, /--set plan\.network="VNet3D": '.*run' was planned with network = "UNet2D" and a resume keeps its plan/);
  r = run(...args, '--resume', '--lr', '0.5');
  t.is(r.status, 1);
  t.regex(r.stderr, /cannot resume: '.*last\.ckpt' has lr = [\d.e-]+, this run 0\.5 \(a resume may change only device, precision, channelsLast, validateEvery\)/);
  r = run(...args, '--resume', '--validate-every', '1');
  t.is(r.status, 0, r.stderr);
  const bcpOut = join(root, 'bcp');
  r = run('train', '--method', 'bcp', '--data', root, '--val', '1', '--iterations', '2', '--pretrain-iterations', '2', '--batch-size', '4', '--labeled-batch', '2', '--size', '32', '--set', 'plan.network=UNet2D', '--out', bcpOut);
  t.is(r.status, 1);
  t.regex(r.stderr, /^semiseg: train: bcp trains its 'train' stage on unlabeled items \(2 of each batch of 4\), but all \d+ training items of '.*' are labeled: pass --labeled N/m);
  t.false(existsSync(join(bcpOut, 'last.ckpt')), 'nothing trained');
  rmSync(root, { recursive: true });
});

// The loop as a library: what a program embedding it does wrong fails the run cleanly (one error, the
// process alive, nothing leaked) instead of ending the process or training on something else.
test.serial('library misuse: a rejecting async onEvent stops the run with its error; a labeled item without its label, and no validation volumes, are handled', async (t) => {
  const before = liveTensors();
  const out = tmp();
  const err = await t.throwsAsync(
    runLoop(tiny('bcp-acdc', { pretrainIterations: 2, iterations: 4 }), out, {
      onEvent: async (e) => {
        if (e.type === 'iteration' && e.stage === 'train') throw new Error('dashboard POST failed');
      },
    }),
  );
  t.is(err!.message, "train: the onEvent callback failed on a 'iteration' event: dashboard POST failed");
  t.true(existsSync(join(out, 'last.ckpt')), 'the finished iterations are saved');
  // a labeled item whose load() returns no label
  const data = trainers.syntheticData({ spatialDims: 2, size: 32, labeled: 4, unlabeled: 4, valCases: 1 });
  const load = data.load.bind(data);
  data.load = async (i) => {
    const item = await load(i);
    if (i === 1) {
      item.label?.dispose();
      return { ...item, label: undefined };
    }
    return item;
  };
  try {
    const e2 = await t.throwsAsync(trainers.train(tiny('supervised-acdc', { iterations: 2 }), { data, out: tmp() }));
    t.regex(e2!.message, /^train: stage 'train' failed preparing iteration \d: item 1 of 'synthetic-2d' is labeled \(below data\.labeled = 4\) but load\(\) returned no label/);
  } finally {
    data.dispose();
  }
  // no validation volumes: a run without a best checkpoint
  const empty = trainers.syntheticData({ spatialDims: 2, size: 32, labeled: 4, unlabeled: 4, valCases: 1 });
  empty.validation = async () => [];
  const noVal = tmp();
  try {
    const r = await trainers.train(tiny('supervised-acdc', { iterations: 3 }), { data: empty, out: noVal });
    t.is(r.best, null);
    t.false(existsSync(join(noVal, 'best.ckpt')));
    t.true(existsSync(join(noVal, 'final.ckpt')));
  } finally {
    empty.dispose();
  }
  t.is(liveTensors(), before);
});

test('configs: nested unknown keys, enums and ranges are refused by resolveConfig, and train() checks an edited config before creating anything', async (t) => {
  t.throws(() => trainers.resolveConfig('bcp-acdc', { bcp: { keepOptimiser: false } as never }), { message: /resolveConfig\(\): unknown key 'keepOptimiser' in argument 'bcp' \(expected one of keepOptimizer\)/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { schedule: 'cosine' as never }), { message: /argument 'schedule' must be one of 'constant', 'poly', 'step', got the string "cosine"/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { classes: 1 }), { message: /argument 'classes' must be an integer >= 2/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { emaAlpha: 7 }), { message: /argument 'emaAlpha' must be a number in \[0, 1\], got 7/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { device: 'gpu' }), { message: /argument 'device' must be 'cpu', 'cuda' or 'cuda:N', got the string "gpu"/ });
  t.throws(() => trainers.resolveConfig('bcp-acdc', { dice: { squared: 'no' } as never }), { message: /argument 'dice\.squared' must be true or false/ });
  const edited = { ...tiny('supervised-acdc'), iterations: -1 };
  const out = join(tmp(), 'never-created');
  const data = trainers.syntheticData({ spatialDims: 2, size: 32, labeled: 4, unlabeled: 4, valCases: 1 });
  try {
    await t.throwsAsync(trainers.train(edited, { data, out }), { message: /^train\(\): argument 'iterations' must be an integer >= 1, got -1/ });
    await t.throwsAsync(trainers.train(tiny('supervised-acdc'), { data: undefined as never, out }), { message: "train(): option 'data' must be a TrainData (load, validation, augment, ...)" });
    t.false(existsSync(out));
  } finally {
    data.dispose();
  }
});

test('configs: the optimizer, its settings, the patch size and networkOptions are checked by resolveConfig, and every method trains with the optimizer the config names', (t) => {
  const bad: [Partial<trainers.TrainConfig>, RegExp][] = [
    [{ size: [40, 40] }, /^resolveConfig\(\): argument 'size' must be 2 multiples of 16 \(the UNet2D halves each side four times\), got an array \[40, 40\]$/],
    [{ networkOptions: { feature: [2, 4, 8, 16, 32] } }, /^resolveConfig\(\): unknown key 'feature' in argument 'networkOptions' \(expected one of inChannels, outChannels, features, dropout\)$/],
    [{ networkOptions: { features: [2, 4] } }, /^resolveConfig\(\): argument 'networkOptions\.features' must be an array of 5 channel counts, got an array \[2, 4\]$/],
    [{ optimizer: 'adamw' as never }, /^resolveConfig\(\): argument 'optimizer' must be one of 'sgd', 'adam', got the string "adamw"$/],
    [{ betas: [2, 0.9] }, /^resolveConfig\(\): argument 'betas' must be a pair \[beta1, beta2\] of numbers in \[0, 1\), got an array \[2, 0\.9\]$/],
    [{ momentum: -1 }, /^resolveConfig\(\): argument 'momentum' must be a finite number >= 0, got -1$/],
    [{ weightDecay: Number.NaN }, /^resolveConfig\(\): argument 'weightDecay' must be a finite number >= 0, got NaN$/],
    [{ nesterov: 1 as never }, /^resolveConfig\(\): argument 'nesterov' must be true or false, got 1$/],
  ];
  for (const [override, message] of bad) t.throws(() => trainers.resolveConfig('mt-acdc', override), { instanceOf: RangeError, message });
  t.throws(() => trainers.resolveConfig('bcp-la', { networkOptions: { normalization: 'groupnorm', nFilters: 4 } }), {
    message: "resolveConfig(): argument 'networkOptions.nFilters' must be a multiple of 16 with 'groupnorm' (16 groups), got 4",
  });
  // BCP on LA: tested with the largest component kept (its test script's nms=1), validated without it (var_all_case_LA)
  const bcpLa = trainers.resolveConfig('bcp-la');
  t.true(trainers.inferenceSettings(bcpLa).largestComponent);
  t.false(trainers.validationSettings(bcpLa).largestComponent);
  t.false(trainers.inferenceSettings(trainers.resolveConfig('mt-la')).largestComponent);
  // optimizer: 'adam' was ignored by every method but VerSemi (they always built SGD)
  const small = { size: [32, 32], networkOptions: { features: [2, 4, 8, 16, 32] }, action: { ...trainers.RECIPES['action-acdc'].action, window: 16, pool: 8 } };
  for (const recipe of ['supervised-acdc', 'mt-acdc', 'bcp-acdc', 'coda-acdc', 'icl-acdc', 'action-acdc']) {
    for (const optimizer of ['adam', 'sgd'] as const) {
      const method = trainers.buildMethod(trainers.resolveConfig(recipe, { ...small, optimizer, lr: 1e-3 }));
      try {
        t.is(method.optimizer().kind, optimizer, `${recipe} with optimizer '${optimizer}'`);
      } finally {
        method.dispose();
      }
    }
  }
});

test.serial('a resume refused before it starts (other settings) leaves the finished run\'s log as it was', async (t) => {
  const out = tmp();
  await runLoop(tiny('supervised-acdc', { iterations: 2 }), out);
  const log = readFileSync(join(out, 'log.jsonl'), 'utf8');
  await t.throwsAsync(runLoop(tiny('supervised-acdc', { iterations: 2, lr: 0.5 }), out, { resume: true }), { message: /^train: cannot resume: .* lr/ });
  t.is(readFileSync(join(out, 'log.jsonl'), 'utf8'), log, 'no failed line after its done line');
});

test.serial('two runs never write one folder at once: the second is refused while the first holds its lock; a stale lock is taken', async (t) => {
  const out = tmp();
  const config = tiny('supervised-acdc', { iterations: 3 });
  const first = runLoop(config, out);
  await t.throwsAsync(runLoop(config, out), { message: `train: another run of this process is training into '${out}' (${join(out, '.lock')}); use another folder` });
  await first;
  t.false(existsSync(join(out, '.lock')), 'released at the end');
  // a lock left by a process that is gone (killed mid-run)
  writeFileSync(join(out, '.lock'), '999999999');
  const again = await runLoop(config, tmp());
  t.truthy(again.final);
  const stale = await runLoop(config, out, { resume: true });
  t.truthy(stale.final);
  t.false(existsSync(join(out, '.lock')));
});
