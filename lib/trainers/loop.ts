/**
 * The training loop every method shares: stages of fixed iteration counts, the learning-rate schedule,
 * validation every `validateEvery` iterations with the best checkpoint kept (atomic writes; the first of
 * the highest Dice, or the latest while every validation scored 0), a resumable
 * `last.ckpt` at each validation and on cancellation (also during a validation: the finished iteration is
 * saved and a resumed run validates it first), `final.ckpt` at the end, JSON-lines logs in
 * `<out>/log.jsonl` and progress events. A non-finite loss stops the run naming the iteration; the
 * checkpoints written before it are kept.
 *
 * Data-parallel (`group`): every rank runs this loop on its shard of both streams (batchSize and
 * labeledBatch are per rank); rank 0's weights, buffers and training-only tensors are broadcast at the
 * start, the optimizer's gradients are averaged over the group (bucketed, during the backward pass), and
 * BatchNorm buffers are either synchronised in every forward (`syncBatchNorm`) or broadcast from rank 0
 * after each step, so every network (teachers and EMAs included) stays identical on every rank. Each
 * rank validates its share of the volumes (Dice sums all-reduced); only rank 0 writes checkpoints and the
 * log; cancellation is agreed at each iteration, so every rank stops at the same one.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { ProcessGroup } from '../dist.js';
import { loadCheckpoint, readCheckpointInfo, saveCheckpoint } from '../io/checkpoint.js';
import { manualSeed, maxConcurrentJobs } from '../runtime.js';
import { dispose, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import { constant, lrAt, poly, step as stepSchedule, type Schedule } from '../train/schedule.js';
import type { Batch, Item } from '../data/loader.js';
import { BatchSource, freeItems } from './batches.js';
import type { TrainData, Volume } from './data.js';
import { writeValidationOverlays } from '../report/overlays.js';
import { bcp } from './methods/bcp.js';
import { coda } from './methods/coda.js';
import { action } from './methods/action.js';
import { icl } from './methods/icl.js';
import { versemi } from './methods/versemi.js';
import type { MethodRuntime, Stage } from './methods/common.js';
import { meanTeacher } from './methods/mean-teacher.js';
import { supervised } from './methods/supervised.js';
import { checkSettings, type TrainConfig } from './recipes.js';
import type { Network } from '../nets/network.js';
import type { NativeTensorHandle } from '../native.js';
import type { Optimizer } from '../train/optimizer.js';
import type { GradScalerState } from '../train/grad-scaler.js';
import { planInference, validateDice, type InferenceSettings, type ValidationResult } from './validate.js';

/**
 * What the loop reports to `onEvent` and appends to `<out>/log.jsonl` (with its `time`). A run that ends
 * with an error appends one more line to the log, `{ type: 'failed', message }`, and rejects with that error.
 */
export type TrainEvent =
  | { type: 'start'; recipe: string; method: string; data: string; stages: { name: string; iterations: number }[]; resumedAt?: { stage: string; iteration: number } }
  | { type: 'stage'; stage: string; iterations: number }
  | { type: 'iteration'; stage: string; iteration: number; iterations: number; loss: number; parts: Record<string, number>; lr: number; elapsedSeconds: number; etaSeconds: number }
  | { type: 'validation'; stage: string; iteration: number; dice: number; perClass: number[]; bestDice: number; improved: boolean }
  | { type: 'checkpoint'; kind: 'best' | 'last' | 'final'; path: string; stage: string; iteration: number }
  | { type: 'done'; seconds: number; best: BestRecord | null; final: string; replicaDivergence?: number };

export interface BestRecord {
  stage: string;
  iteration: number;
  dice: number;
  path: string;
}

export interface TrainOptions {
  data: TrainData;
  /** Output directory: checkpoints and log.jsonl. */
  out: string;
  /** Continue from `<out>/last.ckpt`. */
  resume?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
  /** Data-parallel training over this group (see above); every rank calls train() with the same config. */
  group?: ProcessGroup;
  /** With `group`: BatchNorm with the statistics of the whole group's batch (default false). */
  syncBatchNorm?: boolean;
  /** With `group`: gradient bucket size in MiB (default 25). */
  bucketMB?: number;
  /**
   * Pictures of the latest validation: this many slices of the first validation volume (image,
   * reference, prediction) written to `<out>/overlays/` at each validation, for the dashboard (default 3;
   * 0 writes none). Methods with their own validation (VerSemi) write none.
   */
  overlays?: number;
  /**
   * The case ids of the training split (labeled, unlabeled, validation), where the data has ids (NIfTI
   * folders): kept in last.ckpt, and a resume whose split differs is refused, naming the cases.
   */
  split?: SplitIds;
}

export interface SplitIds {
  labeled: string[];
  unlabeled: string[];
  validation: string[];
}

export interface TrainResult {
  best: BestRecord | null;
  /** Best of each stage that validated. */
  bests: Record<string, BestRecord>;
  final: string;
  validations: { stage: string; iteration: number; dice: number }[];
  firstLoss: number;
  lastLoss: number;
  seconds: number;
  /**
   * Data-parallel runs: the largest difference between any rank's weights, buffers and training-only
   * tensors and rank 0's at the end of each stage (0 when the replicas stayed identical, as they should).
   */
  replicaDivergence?: number;
}

interface ResumeState {
  config: TrainConfig;
  stage: number;
  iteration: number;
  bests: Record<string, BestRecord>;
  validations: TrainResult['validations'];
  methodState: Record<string, unknown>;
  firstLoss: number;
  /** float16 training: the loss scaler's scale and counters. */
  scaler?: GradScalerState;
  /** Cancelled during the validation of `iteration`: a resumed run validates it first. */
  pendingValidation?: boolean;
  /** The split's case ids (TrainOptions.split). */
  split?: SplitIds;
}

export function buildMethod(c: TrainConfig, inChannels = 1): MethodRuntime {
  switch (c.method) {
    case 'supervised':
      return supervised(c, inChannels);
    case 'meanTeacher':
      return meanTeacher(c, inChannels);
    case 'bcp':
      return bcp(c, inChannels);
    case 'coda':
      return coda(c, inChannels);
    case 'icl':
      return icl(c, inChannels);
    case 'versemi':
      return versemi(c, inChannels);
    case 'action':
      return action(c, inChannels);
  }
}

function scheduleOf(c: TrainConfig, stage: Stage): Schedule {
  if (stage.name === 'pretrain' || c.schedule === 'constant') return constant(c.lr);
  return c.schedule === 'poly' ? poly(c.lr, stage.iterations) : stepSchedule(c.lr, c.stepEvery);
}

/**
 * How the loop validates: as the published codes validate during training, without BCP's largest-component
 * step on LA, which their test script applies (nms=1) but their validation (var_all_case_LA) does not.
 */
export function validationSettings(c: TrainConfig): InferenceSettings {
  return { ...inferenceSettings(c), largestComponent: false };
}

/** How a checkpoint of `c` is tested (evaluate, predict, Segmenter): BCP's LA protocol keeps the largest component. */
export function inferenceSettings(c: TrainConfig): InferenceSettings {
  return {
    size: c.size,
    classes: c.classes,
    largestComponent: c.network === 'VNet3D' && c.method === 'bcp',
    precision: c.precision,
    ...planInference(c.plan, c.network),
  };
}

/**
 * The settings a resumed run may change (the resumed run honours them from its first iteration on; none
 * changes what the weights become): where it runs and how fast, and how often it validates. Every other
 * setting must agree between last.ckpt and the run resuming from it (a changed one is refused, named).
 */
/** The files a run leaves in its folder that mark it as one (a new run there would mix with it). */
export const RUN_FILES = ['last.ckpt', 'final.ckpt', 'best.ckpt', 'log.jsonl'];

export const RESUME_MAY_CHANGE = ['device', 'precision', 'channelsLast', 'validateEvery'] as const;

/** JSON with sorted keys, so two configs compare by content (undefined: unset). */
export function canonicalJson(v: unknown): string | undefined {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) as string | undefined;
}

/** The first setting (`key` or `group.key`) that differs between a checkpoint's config and this run's, or null. */
function configDifference(saved: Record<string, unknown>, now: Record<string, unknown>): { key: string; saved: unknown; now: unknown } | null {
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])];
  for (const k of keys) {
    if ((RESUME_MAY_CHANGE as readonly string[]).includes(k)) continue;
    let a = saved[k];
    let b = now[k];
    if (k === 'plan' && a && b) {
      // the split is compared by checkSameSplit, with the cases named
      a = { ...(a as Record<string, unknown>), split: undefined };
      b = { ...(b as Record<string, unknown>), split: undefined };
    }
    if (canonicalJson(a) === canonicalJson(b)) continue;
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const inner = configDifference(a as Record<string, unknown>, b as Record<string, unknown>);
      if (inner) return { ...inner, key: `${k}.${inner.key}` };
    }
    return { key: k, saved: a, now: b };
  }
  return null;
}

/** Refuses a resume whose split (case ids) differs from the checkpoint's, naming the cases. */
function checkSameSplit(lastPath: string, saved: ResumeState, config: TrainConfig, split: SplitIds | undefined): void {
  const savedPlan = saved.config.plan?.split as { labeled?: string[]; validation?: string[] } | undefined;
  const nowPlan = config.plan?.split as { labeled?: string[]; validation?: string[] } | undefined;
  const before: Partial<SplitIds> = { labeled: saved.split?.labeled ?? savedPlan?.labeled, unlabeled: saved.split?.unlabeled, validation: saved.split?.validation ?? savedPlan?.validation };
  const after: Partial<SplitIds> = { labeled: split?.labeled ?? nowPlan?.labeled, unlabeled: split?.unlabeled, validation: split?.validation ?? nowPlan?.validation };
  const options = { labeled: '--labeled / --labeled-list', unlabeled: 'the unlabeled images (imagesUnlabeled/)', validation: '--val / --val-list' };
  const list = (ids: string[]) => (ids.length === 0 ? 'none' : ids.length > 4 ? `${ids.slice(0, 4).join(', ')}, ... (${ids.length})` : ids.join(', '));
  const differs: string[] = [];
  const how: string[] = [];
  for (const part of ['labeled', 'validation', 'unlabeled'] as const) {
    const a = before[part];
    const b = after[part];
    if (!a || !b || JSON.stringify([...a].sort()) === JSON.stringify([...b].sort())) continue;
    differs.push(`${part} cases (only in the checkpoint: ${list(a.filter((id) => !b.includes(id)))}; only in this run: ${list(b.filter((id) => !a.includes(id)))})`);
    how.push(options[part]);
  }
  if (differs.length > 0)
    throw new Error(`train: cannot resume: '${lastPath}' was trained on another split than this run: ${differs.join('; ')}; resume with the split of the run (the same ${how.join(', ')})`);
}

export async function train(config: TrainConfig, o: TrainOptions): Promise<TrainResult> {
  const started = Date.now();
  // checked before anything is created (a config edited after resolveConfig, a missing option)
  checkSettings('train', config);
  if (!o || typeof o !== 'object') throw new TypeError("train(): argument 'options' must be an object with data and out");
  const { data, out, group } = o;
  if (!data || typeof data.load !== 'function' || typeof data.validation !== 'function')
    throw new TypeError("train(): option 'data' must be a TrainData (load, validation, augment, ...)");
  if (typeof out !== 'string' || out === '') throw new TypeError("train(): option 'out' must be a folder path");
  const isMain = !group || group.rank === 0;
  if (isMain) mkdirSync(out, { recursive: true });
  const releaseLock = isMain ? lockRunFolder(out) : () => undefined;
  const run = { started: false };
  try {
    return await trainLocked(config, o, started, isMain, run);
  } catch (err) {
    // the log says why the run ended (a cancellation with its resume line, a non-finite loss, a data error):
    // otherwise it stopped at its last iteration or stage line with no word of the failure. Not for a run
    // refused before it started (a resume with other settings): the folder's finished run did not fail.
    const logPath = join(out, 'log.jsonl');
    if (isMain && run.started && existsSync(logPath))
      appendFileSync(logPath, `${JSON.stringify({ time: new Date().toISOString(), type: 'failed', message: (err as Error)?.message ?? String(err) })}\n`);
    throw err;
  } finally {
    releaseLock();
  }
}

/**
 * Takes `<out>/.lock` (this process's pid) so that two runs never write one folder at once: a second
 * run (in this process or another) is refused; a lock left by a process that no longer exists is taken.
 */
function lockRunFolder(out: string): () => void {
  const path = join(out, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8'));
      let alive = Number.isInteger(pid) && pid > 0;
      if (alive && pid !== process.pid) {
        try {
          process.kill(pid, 0);
        } catch (e) {
          alive = (e as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (alive) throw new Error(`train: another run${pid === process.pid ? ' of this process' : ` (process ${pid})`} is training into '${out}' (${path}); use another folder`);
      rmSync(path, { force: true }); // stale: its process is gone
    }
  }
  throw new Error(`train: cannot lock '${out}'`);
}

async function trainLocked(config: TrainConfig, o: TrainOptions, started: number, isMain: boolean, run: { started: boolean }): Promise<TrainResult> {
  const { data, out, group } = o;
  const logPath = join(out, 'log.jsonl');
  // An async onEvent that rejects stops the run at the next iteration with its error (a dropped
  // rejection would otherwise end the process).
  let eventError: Error | null = null;
  const emit = (e: TrainEvent) => {
    if (e.type === 'start') run.started = true;
    if (isMain) appendFileSync(logPath, `${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
    const r: unknown = o.onEvent?.(e);
    if (r && typeof (r as PromiseLike<unknown>).then === 'function')
      (r as PromiseLike<unknown>).then(undefined, (err: unknown) => {
        eventError ??= new Error(`train: the onEvent callback failed on a '${e.type}' event: ${(err as Error)?.message ?? String(err)}`);
      });
  };
  if (data.classes !== config.classes)
    throw new Error(`train: the data has ${data.classes} classes but recipe '${config.recipe}' trains ${config.classes}`);
  if ((data.spatialDims === 2) !== (config.network === 'UNet2D'))
    throw new Error(`train: ${data.spatialDims}-D data cannot train the ${config.network} of recipe '${config.recipe}'`);
  if (group && maxConcurrentJobs() > 1)
    throw new Error(`train: data-parallel training needs one native job at a time (setMaxConcurrentJobs(1)), so every rank issues its collectives in the same order; it is ${maxConcurrentJobs()}`);
  manualSeed(config.seed);
  const method = buildMethod(config);
  try {
    method.attach?.(data);
    method.useGroup?.(group);
  } catch (err) {
    method.dispose();
    throw err;
  }
  const stages = method.stages.filter((s) => s.iterations > 0);
  const main = method.networks[method.main];
  const others = Object.fromEntries(Object.entries(method.networks).filter(([k]) => k !== method.main));
  const lastPath = join(out, 'last.ckpt');
  const bestPath = (s: Stage) => join(out, s.name === 'train' ? 'best.ckpt' : `best-${s.name}.ckpt`);
  // Co-DA's coda.inference = 'mean': validation averages the probabilities of both networks
  const ensemble = Object.values(method.inferenceNetworks?.() ?? {});
  const settings: InferenceSettings = { ...validationSettings(config), ...(ensemble.length > 0 ? { ensemble } : {}) };
  let state: ResumeState = { config, stage: 0, iteration: 0, bests: {}, validations: [], methodState: {}, firstLoss: NaN };
  let lastLoss = NaN;
  const cache = new Map<number, Promise<Item>>();
  let pending: Promise<Batch> | null = null;
  let synced: Optimizer | null = null;
  let replicaDivergence: number | undefined;

  const allNetworks = Object.values(method.networks);
  const saveLast = async (stage: number, iteration: number, pendingValidation = false) => {
    if (!isMain) return;
    state = { ...state, stage, iteration, methodState: method.state(), scaler: method.optimizer().scaler?.state(), split: o.split, pendingValidation: pendingValidation || undefined };
    await saveCheckpoint(lastPath, { network: main, networks: others, tensors: method.tensors?.(), optimizer: method.optimizer(), iteration, extra: { ...state } });
    emit({ type: 'checkpoint', kind: 'last', path: lastPath, stage: stages[stage].name, iteration });
  };

  const sharded = group !== undefined && !method.validate;
  const validates = isMain || sharded;
  /** Validation after iteration `it` of stage `si`: best checkpoint, events, last.ckpt. */
  const validateAt = async (si: number, it: number) => {
    const stage = stages[si];
    const volumes = await data.validation();
    if (volumes.length === 0) {
      // nothing to validate on: no best checkpoint (a Dice of 0 would be reported as the best), last.ckpt only
      await saveLast(si, it);
      return;
    }
    const mine = group && sharded ? volumes.filter((_, i) => i % group.worldSize === group.rank) : volumes;
    // (no signal on several ranks: a rank must not stop alone mid-validation; stops are agreed per iteration)
    const signal = group ? undefined : o.signal;
    // the first volume's prediction, kept for the overlay pictures (rank 0 validates volume 0)
    const shown: { volume?: Volume; prediction?: Tensor } = {};
    const keepFirst = isMain && (o.overlays ?? 3) > 0 ? (volume: Volume, prediction: Tensor, i: number) => {
      if (i === 0) Object.assign(shown, { volume, prediction: prediction.clone() });
    } : undefined;
    let v: ValidationResult;
    try {
      try {
        v = method.validate ? await method.validate(volumes, settings, signal, keepFirst) : await validateDice(main, mine, settings, signal, keepFirst);
      } catch (err) {
        if (!signal?.aborted) throw err;
        // Cancelled while validating: iteration `it` has finished; save it, and a resumed run validates it first.
        await saveLast(si, it, true);
        throw new Error(`train: cancelled after iteration ${it} of stage '${stage.name}'; resume from '${lastPath}'`);
      }
      if (shown.volume && shown.prediction)
        writeValidationOverlays(join(out, 'overlays'), shown.volume, shown.prediction, config.network === 'UNet2D', o.overlays ?? 3, { stage: stage.name, iteration: it, dice: v.dice });
    } finally {
      shown.prediction?.dispose();
    }
    if (group && sharded) v = await groupMean(group, v, mine.length);
    const prev = state.bests[stage.name];
    // The first validation of the highest Dice; while every validation has scored 0 (nothing segmented
    // yet: no ranking at all), the latest, the most trained (BCP's self-training starts from it).
    const improved = !prev || v.dice > prev.dice || (v.dice === 0 && prev.dice === 0);
    state.validations.push({ stage: stage.name, iteration: it, dice: v.dice });
    if (improved) {
      const path = bestPath(stage);
      if (isMain)
        await saveCheckpoint(path, {
          network: main,
          networks: method.inferenceNetworks?.(),
          tensors: method.inferenceTensors?.(),
          optimizer: stage.bestKeepsOptimizer ? method.optimizer() : undefined,
          iteration: it,
          extra: { config, stage: stage.name, dice: v.dice, perClass: v.perClass },
        });
      state.bests[stage.name] = { stage: stage.name, iteration: it, dice: v.dice, path };
      emit({ type: 'checkpoint', kind: 'best', path, stage: stage.name, iteration: it });
    }
    emit({ type: 'validation', stage: stage.name, iteration: it, dice: v.dice, perClass: v.perClass, bestDice: state.bests[stage.name].dice, improved });
    await saveLast(si, it);
  };

  try {
    // a semi-supervised stage draws unlabeled items: none at all would fail only when that stage starts
    const needsUnlabeled = stages.find((s) => !s.labeledOnly && config.batchSize > config.labeledBatch);
    if (needsUnlabeled && data.unlabeled === 0)
      throw new Error(
        `train: ${config.method} trains ${stages.length > 1 ? `its '${needsUnlabeled.name}' stage ` : ''}on unlabeled items (${config.batchSize - config.labeledBatch} of each batch of ${config.batchSize}), but all ${data.labeled} training items of '${data.name}' are labeled: pass --labeled N with fewer labeled cases than are available (the others then train unlabeled), or add unlabeled images (imagesUnlabeled/ of a NIfTI folder)`,
      );
    if (group) await checkSameRun(group, config, data);
    if (o.resume) {
      if (!existsSync(lastPath)) throw new Error(`train: cannot resume: there is no checkpoint '${lastPath}'`);
      const saved = (await readCheckpointInfo(lastPath)).extra as unknown as ResumeState | undefined;
      if (!saved?.config) throw new Error(`train: cannot resume: '${lastPath}' was not written by the training loop`);
      checkSameSplit(lastPath, saved, config, o.split);
      const differs = configDifference(JSON.parse(JSON.stringify(saved.config)) as Record<string, unknown>, JSON.parse(JSON.stringify(config)) as Record<string, unknown>);
      if (differs)
        throw new Error(
          `train: cannot resume: '${lastPath}' has ${differs.key} = ${canonicalJson(differs.saved) ?? 'unset'}, this run ${canonicalJson(differs.now) ?? 'unset'} (a resume may change only ${RESUME_MAY_CHANGE.join(', ')})`,
        );
      state = { ...saved, config, firstLoss: saved.firstLoss ?? NaN }; // NaN was written as JSON null
      await stages[state.stage].begin(true, null);
      try {
        await loadCheckpoint(lastPath, { network: main, networks: others, tensors: method.tensors?.(), optimizer: method.optimizer() });
      } catch (err) {
        // before 2026-12-07 every method but VerSemi built SGD whatever `optimizer` said
        if (/is not (Adam|SGD) state/.test((err as Error).message))
          throw new Error(
            `train: cannot resume from '${lastPath}': it holds the state of another optimizer than this run's '${config.optimizer}' (runs of semiseg before 2026-12-07 trained every method but VerSemi with SGD whatever 'optimizer' said); start a new run`,
          );
        throw err;
      }
      method.restore(state.methodState);
      if (state.scaler) method.optimizer().scaler?.restore(state.scaler);
      if (group) synced = await joinStage(group, method, allNetworks, synced, o);
    }
    if (group && o.syncBatchNorm) group.syncBatchNorm(true);
    emit({
      type: 'start',
      recipe: config.recipe,
      method: config.method,
      data: data.name,
      stages: stages.map((s) => ({ name: s.name, iterations: s.iterations })),
      resumedAt: o.resume ? { stage: stages[state.stage].name, iteration: state.iteration } : undefined,
    });
    const total = stages.reduce((a, s) => a + s.iterations, 0);
    let done = stages.slice(0, state.stage).reduce((a, s) => a + s.iterations, 0) + state.iteration;
    const doneAtStart = done;
    for (let si = state.stage; si < stages.length; si++) {
      const stage = stages[si];
      const resumingHere = o.resume === true && si === state.stage;
      const first = resumingHere ? state.iteration : 0;
      if (!resumingHere) {
        const previous = si > 0 ? state.bests[stages[si - 1].name]?.path ?? null : null;
        await stage.begin(false, previous && existsSync(previous) ? previous : null);
        // Only rank 0 has the previous stage's best on its disk for sure: every rank starts from its weights.
        if (group) synced = await joinStage(group, method, allNetworks, synced, o);
      }
      emit({ type: 'stage', stage: stage.name, iterations: stage.iterations });
      const schedule = scheduleOf(config, stage);
      const source = new BatchSource(
        data,
        {
          batchSize: config.batchSize,
          labeledBatch: config.labeledBatch,
          labeledOnly: stage.labeledOnly,
          seed: config.seed,
          stage: si,
          device: config.device,
          rank: group?.rank,
          worldSize: group?.worldSize,
        },
        cache,
      );
      source.skip(first);
      pending = first < stage.iterations ? source.batch(first + 1) : null;
      pending?.catch(() => undefined); // awaited below; a failure before that must not go unhandled
      // cancelled during a validation: it comes first (before the next stage starts from the stage's best)
      if (resumingHere && state.pendingValidation && validates) await validateAt(si, first);
      for (let it = first + 1; it <= stage.iterations; it++) {
        if (group ? await agreeToStop(group, o.signal) : o.signal?.aborted) {
          await saveLast(si, it - 1);
          throw new Error(`train: cancelled after iteration ${it - 1} of stage '${stage.name}'; resume from '${lastPath}'`);
        }
        if (eventError) {
          await saveLast(si, it - 1);
          throw eventError;
        }
        const lr = lrAt(schedule, it - 1);
        method.optimizer().setLr(lr);
        let batch: Batch;
        try {
          batch = await (pending as Promise<Batch>);
        } catch (err) {
          const kept = existsSync(lastPath) ? `the last good checkpoint '${lastPath}' is kept` : 'no checkpoint had been written yet';
          throw new Error(`train: stage '${stage.name}' failed preparing iteration ${it}: ${(err as Error).message}; ${kept}`);
        } finally {
          pending = null;
        }
        let result;
        try {
          // Data-parallel: LibTorch's generator (dropout, Mean Teacher's noise) is seeded per rank and
          // iteration, so ranks draw different masks and a resumed run draws what it would have drawn.
          if (group) manualSeed(rankSeed(config.seed, si, it, group.rank));
          const running = stage.step(batch, it);
          if (it < stage.iterations) {
            pending = source.batch(it + 1); // prepared while the step runs natively
            pending.catch(() => undefined);
          }
          result = await running;
          if (group) {
            // running statistics: the networks' (unless SyncBatchNorm keeps them equal) and the method's own
            const own = Object.values(method.buffers?.() ?? {}).map((t) => t.handle('train'));
            await broadcastOwned(group, [...own, ...(o.syncBatchNorm ? [] : networkHandles(allNetworks, 'namedBuffers'))], own.length);
          }
        } catch (err) {
          const kept = existsSync(lastPath) ? `the last good checkpoint '${lastPath}' is kept` : 'no checkpoint had been written yet';
          throw new Error(`train: stage '${stage.name}' failed at iteration ${it}: ${(err as Error).message}; ${kept}`);
        } finally {
          dispose([batch.images, batch.labels]);
        }
        lastLoss = result.loss;
        if (Number.isNaN(state.firstLoss)) state.firstLoss = result.loss;
        done++;
        const elapsed = (Date.now() - started) / 1000;
        emit({
          type: 'iteration',
          stage: stage.name,
          iteration: it,
          iterations: stage.iterations,
          loss: result.loss,
          parts: result.parts,
          lr,
          elapsedSeconds: elapsed,
          etaSeconds: ((total - done) * elapsed) / Math.max(1, done - doneAtStart),
        });
        // Data-parallel: each rank validates its share of the volumes and the Dice sums are all-reduced
        // (a method with its own validation: rank 0 alone).
        if (validates && (it % config.validateEvery === 0 || it === stage.iterations)) await validateAt(si, it);
      }
      // checked at the end of every stage (the next one starts from rank 0's state anyway)
      if (group) replicaDivergence = Math.max(replicaDivergence ?? 0, await divergence(group, allNetworks, method));
    }
    const finalPath = join(out, 'final.ckpt');
    const lastStage = stages[stages.length - 1];
    if (isMain)
      await saveCheckpoint(finalPath, { network: main, networks: method.inferenceNetworks?.(), tensors: method.inferenceTensors?.(), iteration: lastStage.iterations, extra: { config, stage: lastStage.name } });
    emit({ type: 'checkpoint', kind: 'final', path: finalPath, stage: lastStage.name, iteration: lastStage.iterations });
    const best = state.bests.train ?? state.bests[lastStage.name] ?? null;
    const seconds = (Date.now() - started) / 1000;
    if (eventError) throw eventError;
    emit({ type: 'done', seconds, best, final: finalPath, replicaDivergence });
    return { best, bests: state.bests, final: finalPath, validations: state.validations, firstLoss: state.firstLoss, lastLoss, seconds, replicaDivergence };
  } finally {
    const ahead = await pending?.catch(() => null);
    if (ahead) dispose([ahead.images, ahead.labels]);
    await freeItems(cache);
    if (group && !group.closed) {
      group.syncBatchNorm(false);
      if (synced) group.detach(synced);
    }
    method.dispose();
  }
}

/** Broadcasts rank 0's values of the handles, then frees all but the first `keep` (fresh views of network tensors). */
async function broadcastOwned(group: ProcessGroup, handles: NativeTensorHandle[], keep = 0): Promise<void> {
  try {
    if (handles.length > 0) await group.native.broadcast(handles, 0);
  } finally {
    for (const h of handles.slice(keep)) h.dispose();
  }
}

/** Every network's buffers (or whole state: parameters and buffers), as fresh handles for one collective. */
function networkHandles(networks: Network[], what: 'namedBuffers' | 'stateDict'): NativeTensorHandle[] {
  return networks.flatMap((net) => net.handle('train')[what]()[1]);
}

/**
 * The start of a stage of a data-parallel run: rank 0's parameters, buffers and training-only tensors
 * everywhere, and the gradient all-reduce on the stage's optimizer (moved from the previous one's).
 */
async function joinStage(group: ProcessGroup, method: MethodRuntime, networks: Network[], synced: Optimizer | null, o: TrainOptions): Promise<Optimizer> {
  const own = Object.values(method.tensors?.() ?? {}).map((t) => t.handle('train'));
  await broadcastOwned(group, [...own, ...networkHandles(networks, 'stateDict')], own.length);
  const optimizer = method.optimizer();
  if (optimizer !== synced) {
    if (synced) group.detach(synced);
    group.attach(optimizer, { bucketMB: o.bucketMB });
  }
  return optimizer;
}

/** The mean of per-rank validation results over `n` volumes each: the result over all volumes. */
async function groupMean(group: ProcessGroup, v: ValidationResult, n: number): Promise<ValidationResult> {
  const sums = await group.allreduceNumbers([...v.perClass.map((d) => d * n), n]);
  const total = Math.max(1, sums.pop() as number);
  const perClass = sums.map((x) => x / total);
  return { dice: perClass.reduce((a, b) => a + b, 0) / perClass.length, perClass };
}

/**
 * Every rank must train the same recipe on data of the same sizes, or their collectives would not match
 * (a hang or garbage): fingerprints of the config and the data's sizes are compared first, naming the
 * first rank that differs from rank 0.
 */
async function checkSameRun(group: ProcessGroup, config: TrainConfig, data: TrainData): Promise<void> {
  const fingerprint = (text: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
    return h;
  };
  const mine = [
    fingerprint(JSON.stringify({ ...config, device: config.device.replace(/:\d+$/, '') })), // ranks may use different GPUs
    fingerprint(JSON.stringify([data.labeled, data.unlabeled, data.classes, data.spatialDims, data.tasks ?? 1])),
  ];
  const every = await group.allGatherNumbers(mine);
  for (let r = 1; r < group.worldSize; r++) {
    if (every[r][0] !== every[0][0]) throw new Error(`train: rank ${r} trains another configuration than rank 0 (every rank must run the same recipe and settings)`);
    if (every[r][1] !== every[0][1]) throw new Error(`train: rank ${r} has data of other sizes than rank 0 (labeled / unlabeled items, classes, tasks)`);
  }
}

/** A generator seed for (seed, stage, iteration, rank): a 31-bit mix. */
function rankSeed(seed: number, stage: number, it: number, rank: number): number {
  let h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(stage + 1, 0x85ebca6b) ^ Math.imul(it, 0xc2b2ae35) ^ Math.imul(rank + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return (h ^ (h >>> 15)) >>> 1;
}

/** Whether any rank's signal asked to stop (one small all-reduce per iteration: every rank stops together). */
async function agreeToStop(group: ProcessGroup, signal: AbortSignal | undefined): Promise<boolean> {
  const [n] = await group.allreduceNumbers([signal?.aborted ? 1 : 0]);
  return n > 0;
}

/** The largest absolute difference of any rank's state from rank 0's (every rank gets the same number). */
async function divergence(group: ProcessGroup, networks: Network[], method: MethodRuntime): Promise<number> {
  const mine: Tensor[] = [...networks.flatMap((n) => Object.values(n.stateDict())), ...Object.values(method.tensors?.() ?? {}).map((t) => t.detach())];
  const theirs = mine.map((t) => t.clone());
  try {
    await group.broadcast(theirs, 0);
    let worst = 0;
    for (let i = 0; i < mine.length; i++) {
      const d = tidy(() => mine[i].to('float64').sub(theirs[i].to('float64')).abs().max());
      worst = Math.max(worst, Number(d.item()));
      d.dispose();
    }
    return Math.max(...(await group.allGatherNumbers([worst])).map(([w]) => w));
  } finally {
    dispose(mine);
    dispose(theirs);
  }
}
