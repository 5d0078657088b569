// Data-parallel training over c10d + Gloo on loopback: collectives, the gradient all-reduce, SyncBatchNorm
// (float64: exact against one process), whole trainer runs on 2 ranks against one process with the group's
// batch, a rank that dies, and a cancelled `--nproc 2` run resumed on 2 ranks.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cuda, dispose, distributedInfo, ProcessGroup, networkFromCheckpoint, readSafetensors, rendezvousFromEnv, tidy, type Item, type Tensor } from '../lib/index.js';
import { freePort } from '../lib/cli/launch.js';
import { BatchSource, freeItems } from '../lib/trainers/batches.js';
import { syntheticData } from '../lib/trainers/data.js';
import { repoRoot } from './helpers/reference.js';

const worker = join(repoRoot, 'dist/test/helpers/dist-worker.js');
const cli = join(repoRoot, 'dist/lib/cli.js');
const info = distributedInfo();

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  child: ChildProcess;
  done: Promise<Run>;
}

function start(args: string[], env: Record<string, string> = {}, onLine?: (line: string, r: Run) => void): Run {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const r = { code: null, signal: null, stdout: '', stderr: '', child } as unknown as Run;
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    r.stdout += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onLine?.(l, r);
  });
  child.stderr!.on('data', (d: Buffer) => (r.stderr += d.toString()));
  r.done = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      r.code = code;
      r.signal = signal;
      resolve(r);
    }),
  );
  return r;
}

/** The same worker command on 2 ranks (RANK / WORLD_SIZE / MASTER_PORT), or as one process. */
async function ranks(n: number, args: string[], extra: (rank: number) => Record<string, string> = () => ({})): Promise<Run[]> {
  if (n === 1) return [await start([worker, ...args]).done];
  const port = String(await freePort());
  const runs = Array.from({ length: n }, (_, rank) =>
    start([worker, ...args], { RANK: String(rank), WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, ...extra(rank) }),
  );
  return Promise.all(runs.map((r) => r.done));
}

function lastJson<T>(r: Run): T {
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T;
}

async function maxDiff(a: Record<string, Tensor>, b: Record<string, Tensor>, filter = (_: string) => true): Promise<{ abs: number; rel: number; key: string }> {
  let worst = { abs: 0, rel: 0, key: '' };
  for (const k of Object.keys(a).filter(filter)) {
    const d = Number(a[k].to('float64').sub(b[k].to('float64')).abs().max().item());
    const m = Number(b[k].to('float64').abs().max().item());
    if (d > worst.abs) worst = { abs: d, rel: d / Math.max(m, 1e-30), key: k };
  }
  return worst;
}

async function weights(path: string): Promise<Record<string, Tensor>> {
  return (await networkFromCheckpoint(path)).net.stateDict();
}

const dtest = info.available ? test.serial : test.serial.skip;

// CI installs libgloo-dev and must build the engine; elsewhere a build without gloo's headers skips these tests.
(info.available || process.env.CI ? test : test.skip)('this build has the distributed engine (c10d + Gloo)', (t) => {
  t.true(info.available, `distributed training is unavailable: ${info.reason} (apt-get install libgloo-dev, then rebuild)`);
  t.is(info.reason, '');
});

test('rendezvousFromEnv reads the PyTorch variables and names a bad one', (t) => {
  t.is(rendezvousFromEnv({}), null);
  t.deepEqual(rendezvousFromEnv({ WORLD_SIZE: '4', RANK: '3', MASTER_ADDR: '10.0.0.2', MASTER_PORT: '29999', LOCAL_RANK: '1' }), {
    rank: 3,
    worldSize: 4,
    localRank: 1,
    masterAddr: '10.0.0.2',
    masterPort: 29999,
  });
  t.deepEqual(rendezvousFromEnv({ WORLD_SIZE: '2', RANK: '0' }), { rank: 0, worldSize: 2, localRank: 0, masterAddr: '127.0.0.1', masterPort: 29500 });
  t.throws(() => rendezvousFromEnv({ WORLD_SIZE: '2' }), { message: /WORLD_SIZE is 2 but RANK is not set/ });
  t.throws(() => rendezvousFromEnv({ WORLD_SIZE: '2', RANK: '2' }), { message: /RANK must be an integer in \[0, 1\], got '2'/ });
  t.throws(() => rendezvousFromEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: 'x' }), { message: /MASTER_PORT must be an integer in \[1, 65535\]/ });
});

test('each rank draws a disjoint shard of both streams, and the shards together are the one-process batch with the same augmentation', async (t) => {
  const data = syntheticData({ spatialDims: 2, labeled: 8, unlabeled: 12, size: 32, seed: 1 });
  const cache = new Map<number, Promise<Item>>();
  const source = (rank: number | undefined, worldSize: number | undefined, batchSize: number, labeledBatch: number) =>
    new BatchSource(data, { batchSize, labeledBatch, labeledOnly: false, seed: 9, stage: 1, device: 'cpu', rank, worldSize }, cache);
  const one = source(undefined, undefined, 8, 4);
  const ranks2 = [source(0, 2, 4, 2), source(1, 2, 4, 2)];
  try {
    for (let it = 1; it <= 5; it++) {
      const whole = await one.batch(it);
      const parts = await Promise.all(ranks2.map((s) => s.batch(it)));
      const [a, b] = parts.map((p) => p.indices);
      t.deepEqual([...a.slice(0, 2), ...b.slice(0, 2)], whole.indices.slice(0, 4), 'labeled shards');
      t.deepEqual([...a.slice(2), ...b.slice(2)], whole.indices.slice(4), 'unlabeled shards');
      t.true(a.slice(0, 2).every((i) => i < 8) && a.slice(2).every((i) => i >= 8), 'labeled first, then unlabeled');
      t.is(new Set([...a, ...b]).size, 8, 'disjoint');
      // the same items get the same augmentation: rank 1's first labeled item is the group batch's third
      const same = tidy(() => Number(parts[1].images.narrow(0, 0, 1).sub(whole.images.narrow(0, 2, 1)).abs().max().item()));
      t.is(same, 0);
      for (const p of [whole, ...parts]) dispose([p.images, p.labels]);
    }
  } finally {
    await freeItems(cache);
    data.dispose();
  }
  t.throws(() => source(0, 4, 4, 3), { message: /4 ranks x labeledBatch 3 need 12 labeled items per batch, the data has 8/ });
  // fewer unlabeled items than a batch's unlabeled half: each batch would hold one twice (the reference asserts)
  t.throws(() => source(0, 4, 8, 2), { message: 'train: a batch takes 24 unlabeled items (batchSize - labeledBatch, times 4 ranks), the data has 12: add unlabeled images, or lower the batch size (--batch-size)' });
});

test('every item of every batch gets its own augmentation stream: (iteration t, position p) and (t + 1, p - 1) differ', async (t) => {
  // the seeds were a linear sum of iteration and position, so the item at position p of iteration t was
  // augmented exactly as the one at p - 1 of iteration t + 1 (14 % of LA's labeled samples repeated)
  const data = syntheticData({ spatialDims: 2, labeled: 4, unlabeled: 4, size: 16, seed: 1 });
  const first = new Map<string, number>();
  let current = '';
  let k = 0;
  const augment = data.augment;
  // the first draw of each item's stream, under `${iteration}:${position}`
  data.augment = (image, label, rand) => {
    first.set(`${current}:${k++ % 8}`, rand());
    return augment(image, label, rand);
  };
  const cache = new Map<number, Promise<Item>>();
  const wide = new BatchSource(data, { batchSize: 8, labeledBatch: 4, labeledOnly: false, seed: 1337, stage: 0, device: 'cpu' }, cache);
  try {
    for (let it = 1; it <= 60; it++) {
      current = `${it}`;
      const b = await wide.batch(it);
      dispose([b.images, b.labels]);
    }
    let shifted = 0;
    for (let it = 1; it < 60; it++) for (let p = 1; p < 8; p++) if (first.get(`${it}:${p}`) === first.get(`${it + 1}:${p - 1}`)) shifted++;
    t.is(shifted, 0, 'no draw of (t, p) repeats at (t + 1, p - 1)');
    const all = [...first.values()];
    t.is(all.length, 60 * 8);
    t.is(new Set(all).size, all.length, 'every (stage, iteration, position) its own stream');
  } finally {
    await freeItems(cache);
    data.dispose();
  }
});

dtest('all-reduce, broadcast (from rank 1, non-contiguous), the mean and the all-gather of numbers agree on 2 ranks', async (t) => {
  const runs = await ranks(2, ['collectives']);
  for (const r of runs) t.is(r.code, 0, r.stderr);
  const out = runs.map((r) => lastJson<{ rank: number; sum: number[]; bcast: number[]; mean: number[]; gathered: number[][] }>(r));
  for (const o of out) {
    t.deepEqual(o.sum, [3, 30]);
    t.deepEqual(o.bcast, [1, 1]);
    t.deepEqual(o.mean, [0.5, 1.5]);
    t.deepEqual(o.gathered, [
      [0, 10],
      [1, 11],
    ]);
  }
});

dtest('the gradient all-reduce averages over ranks, counts a missing gradient as zero and leaves one nobody produced as none', async (t) => {
  const runs = await ranks(2, ['gradsync']);
  for (const r of runs) t.is(r.code, 0, r.stderr);
  for (const r of runs) {
    const { steps } = lastJson<{ steps: { p1: number[]; p2: number[]; p3: number[]; p3grad: boolean }[] }>(r);
    // p1's gradients are 1 (rank 0) and 2 (rank 1): mean 1.5 per step; p2: 0 (rank 0 does not use it) and 2 p2
    t.deepEqual(steps[0], { p1: [-0.5, 0.5, 1.5], p2: [0, 0], p3: [6], p3grad: false });
    t.deepEqual(steps[1], { p1: [-2, -1, 0], p2: [0, 0], p3: [6], p3grad: false });
  }
});

dtest('SyncBatchNorm + gradient all-reduce on 2 ranks equal one process on the whole batch (float64 V-Net, one SGD step)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-syncbn-'));
  const [one] = await ranks(1, ['syncbn', join(dir, 'one')], () => ({}));
  t.is(one.code, 0, one.stderr);
  const two = await ranks(2, ['syncbn', join(dir, 'two')]);
  for (const r of two) t.is(r.code, 0, r.stderr);
  const single = (await readSafetensors(join(dir, 'one', 'syncbn.rank0.safetensors'))).tensors;
  const r0 = (await readSafetensors(join(dir, 'two', 'syncbn.rank0.safetensors'))).tensors;
  const r1 = (await readSafetensors(join(dir, 'two', 'syncbn.rank1.safetensors'))).tensors;
  t.is((await maxDiff(r0, r1)).abs, 0, 'both ranks hold the same parameters and running statistics');
  const params = await maxDiff(r0, single, (k) => k.startsWith('param.'));
  t.true(params.abs < 1e-12, `parameters after the step: ${JSON.stringify(params)}`);
  const buffers = await maxDiff(r0, single, (k) => k.startsWith('buffer.') && !k.endsWith('num_batches_tracked'));
  t.true(buffers.abs < 1e-12, `running statistics: ${JSON.stringify(buffers)}`);
  t.true(Object.keys(single).some((k) => k.endsWith('running_var')));
});

const supervised = (batch: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    recipe: 'supervised-acdc',
    config: {
      iterations: 4,
      batchSize: batch,
      labeledBatch: batch,
      size: [32, 32],
      networkOptions: { dropout: [0, 0, 0, 0, 0], features: [8, 16, 32, 64, 128] },
      dice: { squared: true, perSample: true, smooth: 1e-5, includeBackground: true },
      validateEvery: 2,
      seed: 5,
      ...extra,
    },
    syncBatchNorm: true,
  });

dtest('a supervised run on 2 ranks (SyncBatchNorm, disjoint shards) ends equal to one process on the group batch; only rank 0 writes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-ddp-'));
  const [one] = await ranks(1, ['train', join(dir, 'one'), supervised(4)]);
  t.is(one.code, 0, one.stderr);
  // rank 1 gets its own output folder, which must stay empty
  const two = await ranks(2, ['train', join(dir, 'two'), supervised(2)], (rank): Record<string, string> => (rank === 1 ? { TEST_OUT_SUFFIX: '-rank1' } : {}));
  for (const r of two) t.is(r.code, 0, r.stderr);
  type Result = { replicaDivergence: number; firstLoss: number; validations: { iteration: number; dice: number }[] };
  const results = two.map((r) => lastJson<{ result: Result }>(r).result);
  t.deepEqual(
    results.map((r) => r.replicaDivergence),
    [0, 0],
    'the ranks end with identical weights and buffers',
  );
  // each rank's first loss is the mean over its half: their mean is the one-process loss
  const oneResult = lastJson<{ result: Result }>(one).result;
  const single = oneResult.firstLoss;
  // each rank validated one of the 2 volumes; the all-reduced Dice is the one-process Dice over both
  t.deepEqual(results[0].validations, results[1].validations);
  t.deepEqual(results[0].validations.map((v) => v.iteration), [2, 4]);
  results[0].validations.forEach((v, i) => t.true(Math.abs(v.dice - oneResult.validations[i].dice) < 1e-4, `${v.dice} vs ${oneResult.validations[i].dice}`));
  t.true(Math.abs((results[0].firstLoss + results[1].firstLoss) / 2 - single) < 1e-6, `${results.map((r) => r.firstLoss)} vs ${single}`);
  t.notDeepEqual(results[0].firstLoss, results[1].firstLoss, 'the ranks saw different shards');
  const d = await maxDiff(await weights(join(dir, 'two', 'final.ckpt')), await weights(join(dir, 'one', 'final.ckpt')));
  t.true(d.abs < 1e-4, `2 ranks vs one process: ${JSON.stringify(d)}`);
  t.true(existsSync(join(dir, 'two', 'best.ckpt')) && existsSync(join(dir, 'two', 'last.ckpt')) && existsSync(join(dir, 'two', 'log.jsonl')));
  t.false(existsSync(join(dir, 'two-rank1')), 'rank 1 wrote nothing');
  const log = readFileSync(join(dir, 'two', 'log.jsonl'), 'utf8').trim().split('\n');
  t.is(log.filter((l) => l.includes('"type":"iteration"')).length, 4, 'one log line per iteration');
});

const small = { networkOptions: { features: [8, 16, 32, 64, 128] } };
const replicaConfigs: Record<string, Record<string, unknown>> = {
  'bcp-acdc': small,
  'coda-acdc': small,
  'mt-acdc': small,
  'icl-acdc': {}, // its modules expect the paper's U-Net widths
  'action-acdc': { action: { globalIterations: 2, localIterations: 2, window: 32, pool: 8, queries: 16, negatives: 16, representation: 32, representationScale: 0.5 } },
  'versemi-la': { size: [16, 16, 16], lr: 3e-3, networkOptions: { lastBlock: false } }, // BatchNorm (its buffers are broadcast); VerSemi's network has no last block
};
for (const [recipe, extra] of Object.entries(replicaConfigs)) {
  dtest(`${recipe} on 2 ranks: every network and training-only tensor (teachers, heads, queues) stays identical across ranks`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `semiseg-ddp-${recipe}-`));
    const spec = JSON.stringify({
      recipe,
      config: { iterations: 3, pretrainIterations: 2, batchSize: 4, labeledBatch: 2, size: [32, 32], validateEvery: 2, seed: 7, ...extra },
    });
    const two = await ranks(2, ['train', dir, spec]);
    for (const r of two) t.is(r.code, 0, r.stderr);
    for (const r of two) {
      const { result } = lastJson<{ result: { replicaDivergence: number; lastLoss: number } }>(r);
      t.is(result.replicaDivergence, 0);
      t.true(Number.isFinite(result.lastLoss));
      t.is(r.stdout.split('\n').filter((l) => l.startsWith('{"iteration"') && l.includes('"stage":"train"')).length, 3);
    }
    t.true(existsSync(join(dir, 'final.ckpt')));
    if (recipe === 'bcp-acdc') t.true(existsSync(join(dir, 'best-pretrain.ckpt')));
  });
}

dtest('ranks that train different settings fail at the start, naming the rank', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-ddp-mismatch-'));
  const runs = await ranks(2, ['train', dir, supervised(2)], (rank): Record<string, string> => (rank === 1 ? { TEST_CONFIG_OVERRIDE: '{"lr":0.02}' } : {}));
  for (const r of runs) {
    t.is(r.code, 1);
    t.regex(r.stderr, /train: rank 1 trains another configuration than rank 0/);
    t.false(r.stdout.includes('"iteration"'), 'no rank trained');
  }
});

dtest('a non-finite loss stops every rank at the same iteration with one message, before any update', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-ddp-nan-'));
  const runs = await ranks(2, ['train', dir, supervised(2, { lr: 1e12, iterations: 50, validateEvery: 100 })]);
  const at = runs.map((r) => {
    t.is(r.code, 1);
    const m = /failed at iteration (\d+): the loss is not finite on (\d) of 2 rank\(s\) at iteration \d+ \(this rank: (NaN|-?Infinity)\); the weights were not updated/.exec(r.stderr);
    t.truthy(m, r.stderr);
    return Number(m?.[1]);
  });
  t.is(at[0], at[1]);
});

dtest('a rank that dies makes the other fail within seconds with an error naming the collective and the rank', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-ddp-dead-'));
  const port = String(await freePort());
  const spec = supervised(2, { iterations: 100000, validateEvery: 100000 });
  const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', MASTER_PORT: port, TEST_DIST_TIMEOUT: '600' });
  const r0 = start([worker, 'train', dir, spec], env(0));
  let killedAt = 0;
  const r1 = start([worker, 'train', dir, spec], env(1), (line, r) => {
    if (!killedAt && line.includes('"iteration":3,')) {
      killedAt = Date.now();
      r.child.kill('SIGKILL');
    }
  });
  await r1.done;
  t.is(r1.signal, 'SIGKILL');
  const watchdog = setTimeout(() => r0.child.kill('SIGKILL'), 60000);
  await r0.done;
  clearTimeout(watchdog);
  const seconds = (Date.now() - killedAt) / 1000;
  t.is(r0.code, 1, `rank 0 must fail on its own (status ${r0.code}, signal ${r0.signal})`);
  t.true(seconds < 30, `rank 0 failed ${seconds.toFixed(1)} s after rank 1 died (the timeout is 600 s)`);
  t.regex(r0.stderr, /distributed: (gradient all-reduce|allreduce|broadcast) failed on rank 0 of 2 \(another rank exited, crashed or did not answer within the timeout\)/);
});

dtest('semiseg train --nproc 2: Ctrl-C stops both ranks at the same iteration, --resume continues on 2 ranks to the same weights as an uninterrupted run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-ddp-cli-'));
  const args = (out: string) => ['train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--size', '32', '--iterations', '12', '--batch-size', '2', '--labeled-batch', '2', '--validate-every', '100', '--seed', '3', '--threads', '1', '--json', '--nproc', '2', '--out', out];
  const full = await start([cli, ...args(join(dir, 'full'))]).done;
  t.is(full.code, 0, full.stderr);
  const stopped = start([cli, ...args(join(dir, 'cut'))], {}, (line, r) => {
    if (line.includes('"iteration":3,')) r.child.kill('SIGINT');
  });
  await stopped.done;
  t.is(stopped.code, 1);
  t.regex(stopped.stderr, /cancelled after iteration \d+ of stage 'train'; resume from/);
  t.regex(stopped.stderr, /\[rank 1\] semiseg: train: cancelled after iteration \d+/);
  const at = (re: RegExp, s: string) => Number(re.exec(s)?.[1]);
  t.is(at(/^semiseg: train: cancelled after iteration (\d+)/m, stopped.stderr), at(/\[rank 1\] semiseg: train: cancelled after iteration (\d+)/, stopped.stderr), 'both ranks stopped at the same iteration');
  const resumed = await start([cli, ...args(join(dir, 'cut')), '--resume']).done;
  t.is(resumed.code, 0, resumed.stderr);
  t.regex(resumed.stdout, /"resumedAt":\{"stage":"train","iteration":\d+\}/);
  const d = await maxDiff(await weights(join(dir, 'cut', 'final.ckpt')), await weights(join(dir, 'full', 'final.ckpt')));
  t.is(d.abs, 0, `resumed vs uninterrupted: ${JSON.stringify(d)}`);
});

dtest('backend nccl is refused, naming the reason, by a build without NCCL; --device cuda without a GPU per rank is a usage error', async (t) => {
  if (info.nccl) return t.pass('skipped: this build has NCCL');
  await t.throwsAsync(ProcessGroup.connect({ rank: 0, worldSize: 1, backend: 'nccl' }), { message: /this build of semiseg has no NCCL .*use backend 'gloo'/ });
  await t.throwsAsync(ProcessGroup.connect({ rank: 0, worldSize: 1, backend: 'mpi' as 'gloo' }), { message: /argument 'backend' must be 'gloo' or 'nccl'/ });
  if (cuda.deviceCount() > 0) return;
  const r = await start([cli, 'train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--device', 'cuda', '--nproc', '2']).done;
  t.is(r.code, 2);
  t.regex(r.stderr, /--device cuda: local rank \d has no GPU of its own \(0 visible\)/);
});

dtest('--nproc errors: a bad node rank and a multi-node run without an address are one-line usage errors', async (t) => {
  const r1 = await start([cli, 'train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--nproc', '2', '--nnodes', '2', '--node-rank', '2']).done;
  t.is(r1.code, 2);
  t.regex(r1.stderr, /--node-rank 2 must be below --nnodes 2/);
  const r2 = await start([cli, 'train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--nproc', '2', '--nnodes', '2'], { MASTER_ADDR: '', MASTER_PORT: '' }).done;
  t.is(r2.code, 2);
  t.regex(r2.stderr, /--nnodes > 1 needs --master-addr and --master-port/);
  const r3 = await start([cli, 'train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--sync-bn']).done;
  t.is(r3.code, 2);
  t.regex(r3.stderr, /--sync-bn needs a data-parallel run/);
});
