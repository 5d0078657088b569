/** `semiseg train`: a recipe on a dataset, with progress, checkpoints and resume. */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

import { type Command, InvalidArgumentError } from 'commander';

import { distributedInfo, ProcessGroup, rendezvousFromEnv } from '../dist.js';
import { cuda, getNumThreads, setNumThreads } from '../runtime.js';
import { canonicalJson, RUN_FILES, train, type SplitIds, type TrainEvent } from '../trainers/loop.js';
import { recipeNames, resolveConfig, RECIPES, type TrainConfig } from '../trainers/recipes.js';
import { PRECISION_HELP, warnIfEmulated } from './precision.js';
import { readImageDataset } from '../data/folders.js';
import type { TrainData } from '../trainers/data.js';
import { plannedData, plannedSplit, type PlannedDataOptions } from '../trainers/planned-data.js';
import { trainData } from './datasets.js';
import { isImageDataset, methodRecipe, planDataset, plannedConfig, readRunPlan, writeRunPlan } from './planned.js';
import { launch } from './launch.js';
import { intOption, SilentExit, UsageError } from './options.js';
import { progressReporter } from './progress.js';
import { dashboardFor, listenOption, type Listen } from './report.js';

/** `--size 256` or `--size 112x112x80` (each side >= 16). */
export function sizeOption(value: string): number[] {
  const parts = value.split(/[x,]/).map((s) => Number(s.trim()));
  if (parts.some((n) => !Number.isInteger(n) || n < 16)) throw new InvalidArgumentError(`expected sizes like 256 or 256x256 (each >= 16), got '${value}'`);
  return parts;
}

function setOption(value: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got '${value}'`);
  const key = value.slice(0, eq);
  const raw = value.slice(eq + 1);
  let parsed: unknown = raw;
  try {
    parsed = JSON.parse(raw);
  } catch {
    // a bare string such as --set teacherMode=eval
  }
  const dot = key.indexOf('.');
  if (dot > 0) {
    // a nested setting (--set action.queries=64, --set dice.smooth=1e-5): merged into the recipe's group
    const group = key.slice(0, dot);
    const inner = (previous[group] ?? {}) as Record<string, unknown>;
    return { ...previous, [group]: { ...inner, [key.slice(dot + 1)]: parsed } };
  }
  return { ...previous, [key]: parsed };
}

/** `--val n`: at least one case, as validation picks best.ckpt (0 would validate on nothing). */
function valOption(value: string): number {
  if (value.trim() === '0')
    throw new InvalidArgumentError('--val 0 would hold out no case, but every run validates (that picks best.ckpt): give --val 1 or more, or --val-list <file>');
  return intOption(1)(value);
}

/** The signals that stop a run as Ctrl-C does (last.ckpt saved, exit status 1). */
/** The signals that stop a training run, saving last.ckpt (Ctrl-C; docker stop and schedulers send SIGTERM). */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** What marks a folder as holding a run (of `train`, or `compare`'s). */

/**
 * A new run (no --resume) refuses a folder that holds a run: it would append to that run's log and leave
 * its evaluations beside the new checkpoints, and `report` would mix the two.
 */
export function checkFreshRunFolder(out: string): void {
  const found = RUN_FILES.filter((f) => existsSync(join(out, f)));
  if (found.length > 0)
    throw new UsageError(`--out: '${out}' already holds a run (${found.join(', ')}); continue it with --resume, or train into another --out (or remove the folder)`);
}

export interface TrainOpts {
  recipe?: string;
  method?: string;
  data: string;
  labeledList?: string;
  val?: number;
  valList?: string;
  labeled?: number;
  iterations?: number;
  pretrainIterations?: number;
  batchSize?: number;
  labeledBatch?: number;
  size?: number[];
  lr?: string;
  validateEvery?: number;
  valCases?: number;
  seed?: number;
  device?: string;
  precision?: string;
  out?: string;
  resume?: boolean;
  json?: boolean;
  set?: Record<string, unknown>;
  nproc?: number;
  nnodes: number;
  nodeRank: number;
  masterAddr?: string;
  masterPort?: number;
  syncBn?: boolean;
  distTimeout?: number;
  dashboard?: Listen | boolean;
  overlays?: boolean;
}

/** The recipe of `--recipe`, or of `--method` on an ACDC / LA folder or synthetic data. */
function recipeOf(opts: TrainOpts): string {
  if (opts.recipe) return opts.recipe;
  if (!opts.method) throw new UsageError('give --recipe <name> or --method <name>');
  const threeD = opts.data === 'synthetic' ? false : !existsSync(join(opts.data, 'train_slices.list')) && !existsSync(join(opts.data, 'ACDC'));
  return methodRecipe(opts.method, threeD ? 'VNet3D' : 'UNet2D');
}

/** The configuration of the command line's options; `extra` (a plan's settings) goes under them. */
export function configFrom(opts: TrainOpts, extra: Partial<TrainConfig> = {}): TrainConfig {
  if (opts.recipe === undefined) opts = { ...opts, recipe: recipeOf(opts) };
  if (!RECIPES[opts.recipe!]) throw new UsageError(`--recipe: unknown recipe '${opts.recipe}' (one of ${recipeNames().join(', ')})`);
  const base = RECIPES[opts.recipe!];
  if (opts.set && 'plan' in opts.set)
    throw new UsageError(
      `--set plan.${Object.keys((opts.set.plan ?? {}) as object)[0] ?? '<key>'}: only a Decathlon / nnU-Net NIfTI folder (dataset.json, imagesTr/, labelsTr/) is planned; '${opts.data}' has no plan to change (its checkpoints could not be evaluated)`,
    );
  const o: Partial<TrainConfig> = { ...extra, ...(opts.set as Partial<TrainConfig>) };
  if (opts.labeled !== undefined) o.labeled = opts.labeled;
  if (opts.iterations !== undefined) o.iterations = opts.iterations;
  if (opts.pretrainIterations !== undefined) o.pretrainIterations = opts.pretrainIterations;
  if (opts.batchSize !== undefined) o.batchSize = opts.batchSize;
  if (opts.labeledBatch !== undefined) o.labeledBatch = opts.labeledBatch;
  if (opts.size !== undefined) o.size = opts.size.length === 1 ? base.size.map(() => opts.size![0]) : opts.size;
  if (opts.lr !== undefined) o.lr = Number(opts.lr);
  if (opts.validateEvery !== undefined) o.validateEvery = opts.validateEvery;
  if (opts.valCases !== undefined) o.valCases = opts.valCases;
  if (opts.seed !== undefined) o.seed = opts.seed;
  if (opts.device !== undefined) o.device = opts.device;
  if (opts.precision !== undefined) o.precision = opts.precision as TrainConfig['precision'];
  try {
    return resolveConfig(opts.recipe!, o);
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^resolveConfig\(\): (argument )?/, 'option '));
  }
}

/** A single --data folder that none of the layouts fits is one line saying what each layout needs. */
function checkKnownLayout(data: string): void {
  if (data === 'synthetic' || data.includes(',') || !existsSync(data)) return;
  const markers = ['dataset.json', 'train_slices.list', 'train.list', 'ACDC', 'LA'];
  if (markers.some((m) => existsSync(join(data, m)))) {
    if (existsSync(join(data, 'dataset.json')) && !existsSync(join(data, 'imagesTr'))) throw new UsageError(`--data: '${data}' has dataset.json but no imagesTr/ folder (a Decathlon or nnU-Net folder holds dataset.json, imagesTr/ and labelsTr/)`);
    return;
  }
  throw new UsageError(
    `--data: '${data}' is not a Decathlon or nnU-Net dataset folder (dataset.json, imagesTr/, labelsTr/), nor ACDC (train_slices.list) or LA (train.list) data`,
  );
}

function runFolder(opts: TrainOpts, config: TrainConfig): string {
  return opts.out ?? join('runs', config.recipe);
}

/** Whether this process is a data-parallel rank other than 0 (it stays quiet and writes nothing). */
function quietRank(): boolean {
  const r = rendezvousFromEnv();
  return r !== null && r.worldSize > 1 && r.rank !== 0;
}

function readIdList(path: string, option: string): string[] {
  if (!existsSync(path)) throw new UsageError(`${option}: '${path}' does not exist`);
  const ids = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
  if (ids.length === 0) throw new UsageError(`${option}: '${path}' names no case`);
  return ids;
}

/** The split options of a NIfTI folder: --labeled / --labeled-list, --val / --val-list (default 20 %, at most 10). */
function splitOptions(opts: TrainOpts, pool: number): PlannedDataOptions {
  const valList = opts.valList ? readIdList(opts.valList, '--val-list') : undefined;
  const val = valList ? undefined : (opts.val ?? Math.min(10, Math.max(1, Math.floor(pool * 0.2))));
  return { labeled: opts.labeled, labeledList: opts.labeledList ? readIdList(opts.labeledList, '--labeled-list') : undefined, val, valList };
}

/**
 * A run on a Decathlon / nnU-Net folder: its plan (plan.json of the run folder when resuming, else a new
 * fingerprint, with `--set plan.<key>=...` and `--size` applied), then the recipe's configuration with the
 * plan's classes, network, sizes and batch.
 */
export async function plannedRunConfig(opts: TrainOpts): Promise<TrainConfig> {
  const set = { ...(opts.set ?? {}) };
  const planOverrides = (set.plan ?? {}) as Record<string, unknown>;
  delete set.plan;
  const ds = readImageDataset(opts.data);
  const saved = opts.resume && opts.out ? readRunPlan(opts.out) : null;
  if (saved) {
    // a resumed run keeps the plan of its folder: a different --size or --set plan.* would be ignored
    const size = opts.size?.length === 1 ? saved.size.map(() => opts.size![0]) : opts.size;
    if (size && canonicalJson(size) !== canonicalJson(saved.size))
      throw new UsageError(`--size ${opts.size!.join('x')}: '${opts.out}' was planned with size ${saved.size.join('x')} and a resume keeps its plan; drop --size, or train into another --out`);
    for (const [k, v] of Object.entries(planOverrides)) {
      if (canonicalJson(v) !== canonicalJson((saved as unknown as Record<string, unknown>)[k]))
        throw new UsageError(`--set plan.${k}=${canonicalJson(v)}: '${opts.out}' was planned with ${k} = ${canonicalJson((saved as unknown as Record<string, unknown>)[k]) ?? 'unset'} and a resume keeps its plan; drop it, or train into another --out`);
    }
  }
  const tty = process.stderr.isTTY && !opts.json && !quietRank();
  const plan =
    saved ??
    (
      await planDataset(opts.data, {
        overrides: planOverrides,
        size: opts.size,
        device: opts.device,
        onCase: tty ? (d, t) => process.stderr.write(`\rfingerprint: ${d}/${t} cases${d === t ? '\n' : ''}`) : undefined,
      })
    ).plan;
  const split = plannedSplit(ds, splitOptions(opts, ds.labeled.length));
  const recipe = opts.recipe ?? methodRecipe(opts.method ?? '', plan.network);
  if (!RECIPES[recipe]) throw new UsageError(`--recipe: unknown recipe '${recipe}' (one of ${recipeNames().join(', ')})`);
  const withSplit = { ...plan, split: { labeled: split.labeled.map((c) => c.id), validation: split.val.map((c) => c.id) } };
  return configFrom({ ...opts, recipe, set, size: undefined, labeled: undefined }, plannedConfig(recipe, withSplit, split.labeled.length, {}));
}

/** The case ids of a planned run's split (kept in last.ckpt: a resume with another split is refused). */
export function plannedSplitIds(opts: TrainOpts): SplitIds {
  const ds = readImageDataset(opts.data);
  const split = plannedSplit(ds, splitOptions(opts, ds.labeled.length));
  return { labeled: split.labeled.map((c) => c.id), unlabeled: split.unlabeled.map((c) => c.id), validation: split.val.map((c) => c.id) };
}

/** The preprocessed training data of a planned run; rank 0 writes plan.json into the run folder first. */
export async function plannedRunData(opts: TrainOpts, config: TrainConfig, quiet: boolean): Promise<TrainData> {
  const ds = readImageDataset(opts.data);
  const out = runFolder(opts, config);
  const tty = process.stderr.isTTY && !opts.json && !quiet;
  const lines = !process.stderr.isTTY && !opts.json && !quiet;
  const data = await plannedData(ds, config.plan!, {
    ...splitOptions(opts, ds.labeled.length),
    cacheDir: join(out, 'preprocessed'),
    onCase: (d, t) => {
      if (tty) process.stderr.write(`\rpreprocessing: ${d}/${t} cases${d === t ? '\n' : ''}`);
      else if (lines && (d === t || d % 50 === 0)) process.stderr.write(`preprocessing: ${d}/${t} cases\n`);
    },
  });
  // written once every case has been read and preprocessed: a bad file leaves no plan behind
  if (!quiet) {
    mkdirSync(out, { recursive: true });
    await writeRunPlan(out, config.plan!);
  }
  return data;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a published method (a recipe) on a dataset; checkpoints and log.jsonl go to --out')
    .option('--recipe <name>', `one of ${recipeNames().join(', ')}`)
    .option('--method <name>', "supervised, mt, bcp, coda, icl, action or versemi: the method's published recipe for the data's dimensionality (instead of --recipe)")
    .requiredOption('--data <dir>', "dataset folder (Decathlon or nnU-Net NIfTI layout, ACDC or LA HDF5 layout), or 'synthetic'; versemi: a comma-separated list, one task each")
    .option('--labeled <n>', 'labeled patients (ACDC), volumes (LA) or cases (NIfTI folders: the first n by name)', intOption(1))
    .option('--labeled-list <file>', 'NIfTI folders: the labeled case ids, one per line')
    .option('--val <n>', 'NIfTI folders: hold out the last n labeled cases for validation (default: 20 % of them, at most 10; at least 1)', valOption)
    .option('--val-list <file>', 'NIfTI folders: the validation case ids, one per line')
    .option('--iterations <n>', 'training iterations (BCP: self-training)', intOption(1))
    .option('--pretrain-iterations <n>', 'BCP pre-training iterations', intOption(0))
    .option('--batch-size <n>', 'batch size', intOption(1))
    .option('--labeled-batch <n>', 'labeled items per batch', intOption(1))
    .option('--size <s>', 'slice size or patch, e.g. 256 or 112x112x80', sizeOption)
    .option('--lr <x>', 'base learning rate')
    .option('--validate-every <n>', 'iterations between validations', intOption(1))
    .option('--val-cases <n>', 'validate on the first n volumes only', intOption(1))
    .option('--seed <n>', 'random seed', intOption(0))
    .option('--device <d>', 'cpu, cuda or cuda:N')
    .option('--precision <p>', PRECISION_HELP + ' (mixed precision: weights and optimizer state stay float32)')
    .option('--set <key=value>', 'override any recipe setting (repeatable), e.g. --set emaAlpha=0.999 or --set action.queries=64', setOption)
    .option('--out <dir>', 'output folder (default runs/<recipe>)')
    .option('--resume', 'continue from <out>/last.ckpt (without it, an --out holding a run is refused)')
    .option('--json', 'progress as JSON lines')
    .option('--nproc <n>', 'data-parallel: start n worker processes here (batch sizes are per process)', intOption(1, 1024))
    .option('--nnodes <n>', 'data-parallel: machines taking part (run the same command on each)', intOption(1, 100000), 1)
    .option('--node-rank <k>', "data-parallel: this machine's index, 0 .. nnodes-1", intOption(0), 0)
    .option('--master-addr <host>', 'data-parallel: the address of node 0 (default MASTER_ADDR or 127.0.0.1)')
    .option('--master-port <port>', 'data-parallel: the rendezvous port on node 0 (default MASTER_PORT or a free one)', intOption(1, 65535))
    .option('--sync-bn', 'data-parallel: BatchNorm with the statistics of the whole group batch')
    .option('--dist-timeout <s>', 'data-parallel: seconds to wait for another rank before failing (default 1800)', intOption(1))
    .option('--dashboard [port]', 'serve a live dashboard of this run while it trains (port or host:port; default any free port on 127.0.0.1)', listenOption)
    .option('--no-overlays', 'do not write the latest validation pictures to <out>/overlays/')
    .action(async (opts: TrainOpts, cmd: Command) => {
      const launching = (opts.nproc ?? 1) > 1 || opts.nnodes > 1;
      const planned = opts.data !== 'synthetic' && isImageDataset(opts.data);
      if (!planned) checkKnownLayout(opts.data);
      if (!opts.resume && opts.out !== undefined) checkFreshRunFolder(opts.out); // before planning anything
      let config = planned && launching ? (null as unknown as TrainConfig) : planned ? await plannedRunConfig(opts) : configFrom(opts);
      if (launching && process.env.RANK !== undefined && process.env.LOCAL_WORLD_SIZE !== undefined)
        throw new UsageError('--nproc inside a worker: the launcher already started this process as a rank');
      if (launching) {
        const info = distributedInfo();
        if (!info.available) throw new Error(`--nproc: distributed training is not available in this build: ${info.reason}`);
        const code = await launch({ nproc: opts.nproc ?? 1, nnodes: opts.nnodes, nodeRank: opts.nodeRank, masterAddr: opts.masterAddr, masterPort: opts.masterPort });
        if (code !== 0) throw new SilentExit(code);
        return;
      }
      const rendezvous = rendezvousFromEnv();
      const distributed = rendezvous !== null && rendezvous.worldSize > 1;
      if (!distributed && opts.syncBn) throw new UsageError('--sync-bn needs a data-parallel run (--nproc, or RANK and WORLD_SIZE)');
      const perNode = Number(process.env.LOCAL_WORLD_SIZE ?? 0);
      if (distributed && perNode > 1 && cmd.parent?.opts().threads === undefined)
        setNumThreads(Math.max(1, Math.floor(Math.min(availableParallelism(), getNumThreads() * perNode) / perNode)));
      if (!opts.resume) checkFreshRunFolder(runFolder(opts, config)); // the default folder, runs/<recipe>
      const split = planned ? plannedSplitIds(opts) : undefined;
      const data = planned ? await plannedRunData(opts, config, quietRank()) : trainData(opts.data, config);
      if (config.method === 'versemi') config = { ...config, tasks: data.tasks ?? 1 }; // one task per --data folder
      const controller = new AbortController();
      // Ctrl-C and SIGTERM (docker stop, a scheduler) stop at the next iteration, or the validation running,
      // saving last.ckpt. A worker can get the signal twice (from the terminal and from the launcher): stop
      // once, stay alive to save; a single process ends at a second one (of either kind).
      const onSignal = () => {
        if (!distributed) for (const s of STOP_SIGNALS) process.removeListener(s, onSignal);
        controller.abort();
      };
      for (const s of STOP_SIGNALS) process.on(s, onSignal);
      const mode = opts.json ? 'json' : process.stdout.isTTY ? 'tty' : 'lines';
      const quiet = distributed && rendezvous.rank !== 0;
      if (!quiet) warnIfEmulated(config.precision, config.device);
      const report: (e: TrainEvent) => void = quiet ? () => undefined : progressReporter(mode);
      let group: ProcessGroup | undefined;
      const out = runFolder(opts, config);
      const dashboard = quiet ? null : await dashboardFor(opts.dashboard, [out]);
      try {
        if (distributed) {
          // On GPUs each rank takes its own device (cuda -> cuda:<local rank>) and CUDA tensors go over NCCL when built in.
          const onGpu = config.device.startsWith('cuda');
          if (config.device === 'cuda') {
            const n = cuda.deviceCount();
            if (rendezvous.localRank >= n) throw new UsageError(`--device cuda: local rank ${rendezvous.localRank} has no GPU of its own (${n} visible); start at most ${n} processes per machine`);
            config = { ...config, device: `cuda:${rendezvous.localRank}` };
          }
          group = await ProcessGroup.connect({ ...rendezvous, timeout: opts.distTimeout, backend: onGpu && distributedInfo().nccl ? 'nccl' : 'gloo' });
        }
        await train(config, {
          data,
          out,
          resume: Boolean(opts.resume),
          signal: controller.signal,
          onEvent: report,
          group,
          syncBatchNorm: Boolean(opts.syncBn),
          overlays: opts.overlays === false ? 0 : undefined,
          split,
        });
      } finally {
        for (const s of STOP_SIGNALS) process.removeListener(s, onSignal);
        group?.shutdown();
        data.dispose();
        await dashboard?.close();
      }
    });
}
