/**
 * The training loop every method shares: stages of fixed iteration counts, the learning-rate schedule,
 * validation every `validateEvery` iterations with the best checkpoint kept (atomic writes), a resumable
 * `last.ckpt` at each validation and on cancellation, `final.ckpt` at the end, JSON-lines logs in
 * `<out>/log.jsonl` and progress events. A non-finite loss stops the run naming the iteration; the
 * checkpoints written before it are kept.
 */
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { loadCheckpoint, readCheckpointInfo, saveCheckpoint } from '../io/checkpoint.js';
import { manualSeed } from '../runtime.js';
import { dispose } from '../scope.js';
import { constant, lrAt, poly, step as stepSchedule, type Schedule } from '../train/schedule.js';
import type { Batch, Item } from '../data/loader.js';
import { BatchSource, freeItems } from './batches.js';
import type { TrainData } from './data.js';
import { bcp } from './methods/bcp.js';
import { coda } from './methods/coda.js';
import { action } from './methods/action.js';
import { icl } from './methods/icl.js';
import { versemi } from './methods/versemi.js';
import type { MethodRuntime, Stage } from './methods/common.js';
import { meanTeacher } from './methods/mean-teacher.js';
import { supervised } from './methods/supervised.js';
import type { TrainConfig } from './recipes.js';
import { validateDice, type InferenceSettings } from './validate.js';

export type TrainEvent =
  | { type: 'start'; recipe: string; method: string; stages: { name: string; iterations: number }[]; resumedAt?: { stage: string; iteration: number } }
  | { type: 'stage'; stage: string; iterations: number }
  | { type: 'iteration'; stage: string; iteration: number; iterations: number; loss: number; parts: Record<string, number>; lr: number; elapsedSeconds: number; etaSeconds: number }
  | { type: 'validation'; stage: string; iteration: number; dice: number; perClass: number[]; bestDice: number; improved: boolean }
  | { type: 'checkpoint'; kind: 'best' | 'last' | 'final'; path: string; stage: string; iteration: number }
  | { type: 'done'; seconds: number; best: BestRecord | null; final: string };

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
}

interface ResumeState {
  config: TrainConfig;
  stage: number;
  iteration: number;
  bests: Record<string, BestRecord>;
  validations: TrainResult['validations'];
  methodState: Record<string, unknown>;
  firstLoss: number;
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

export function inferenceSettings(c: TrainConfig): InferenceSettings {
  return { size: c.size, classes: c.classes, largestComponent: c.network === 'VNet3D' && c.method === 'bcp' };
}

/** Settings that must agree between a checkpoint and the run resuming from it. */
const RESUME_KEYS = ['recipe', 'method', 'network', 'classes', 'labeled', 'batchSize', 'labeledBatch', 'seed', 'pretrainIterations', 'iterations', 'tasks', 'action'] as const;

export async function train(config: TrainConfig, o: TrainOptions): Promise<TrainResult> {
  const started = Date.now();
  const { data, out } = o;
  mkdirSync(out, { recursive: true });
  const logPath = join(out, 'log.jsonl');
  const emit = (e: TrainEvent) => {
    appendFileSync(logPath, `${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
    o.onEvent?.(e);
  };
  if (data.classes !== config.classes)
    throw new Error(`train: the data has ${data.classes} classes but recipe '${config.recipe}' trains ${config.classes}`);
  if ((data.spatialDims === 2) !== (config.network === 'UNet2D'))
    throw new Error(`train: ${data.spatialDims}-D data cannot train the ${config.network} of recipe '${config.recipe}'`);
  manualSeed(config.seed);
  const method = buildMethod(config);
  try {
    method.attach?.(data);
  } catch (err) {
    method.dispose();
    throw err;
  }
  const stages = method.stages.filter((s) => s.iterations > 0);
  const main = method.networks[method.main];
  const others = Object.fromEntries(Object.entries(method.networks).filter(([k]) => k !== method.main));
  const lastPath = join(out, 'last.ckpt');
  const bestPath = (s: Stage) => join(out, s.name === 'train' ? 'best.ckpt' : `best-${s.name}.ckpt`);
  const settings = inferenceSettings(config);
  let state: ResumeState = { config, stage: 0, iteration: 0, bests: {}, validations: [], methodState: {}, firstLoss: NaN };
  let lastLoss = NaN;
  const cache = new Map<number, Promise<Item>>();
  let pending: Promise<Batch> | null = null;

  const saveLast = async (stage: number, iteration: number) => {
    state = { ...state, stage, iteration, methodState: method.state() };
    await saveCheckpoint(lastPath, { network: main, networks: others, tensors: method.tensors?.(), optimizer: method.optimizer(), iteration, extra: { ...state } });
    emit({ type: 'checkpoint', kind: 'last', path: lastPath, stage: stages[stage].name, iteration });
  };

  try {
    if (o.resume) {
      if (!existsSync(lastPath)) throw new Error(`train: cannot resume: there is no checkpoint '${lastPath}'`);
      const saved = (await readCheckpointInfo(lastPath)).extra as unknown as ResumeState | undefined;
      if (!saved?.config) throw new Error(`train: cannot resume: '${lastPath}' was not written by the training loop`);
      for (const k of RESUME_KEYS) {
        if (JSON.stringify(saved.config[k]) !== JSON.stringify(config[k]))
          throw new Error(`train: cannot resume: '${lastPath}' has ${k} = ${JSON.stringify(saved.config[k])}, this run ${JSON.stringify(config[k])}`);
      }
      state = { ...saved, config };
      await stages[state.stage].begin(true, null);
      await loadCheckpoint(lastPath, { network: main, networks: others, tensors: method.tensors?.(), optimizer: method.optimizer() });
      method.restore(state.methodState);
    }
    emit({
      type: 'start',
      recipe: config.recipe,
      method: config.method,
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
      }
      emit({ type: 'stage', stage: stage.name, iterations: stage.iterations });
      const schedule = scheduleOf(config, stage);
      const source = new BatchSource(
        data,
        { batchSize: config.batchSize, labeledBatch: config.labeledBatch, labeledOnly: stage.labeledOnly, seed: config.seed, stage: si, device: config.device },
        cache,
      );
      source.skip(first);
      pending = first < stage.iterations ? source.batch(first + 1) : null;
      for (let it = first + 1; it <= stage.iterations; it++) {
        if (o.signal?.aborted) {
          await saveLast(si, it - 1);
          throw new Error(`train: cancelled after iteration ${it - 1} of stage '${stage.name}'; resume from '${lastPath}'`);
        }
        const lr = lrAt(schedule, it - 1);
        method.optimizer().setLr(lr);
        const batch = await (pending as Promise<Batch>);
        pending = null;
        let result;
        try {
          const running = stage.step(batch, it);
          if (it < stage.iterations) {
            pending = source.batch(it + 1); // prepared while the step runs natively
            pending.catch(() => undefined);
          }
          result = await running;
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
        if (it % config.validateEvery === 0 || it === stage.iterations) {
          const volumes = await data.validation();
          const v = method.validate ? await method.validate(volumes, settings, o.signal) : await validateDice(main, volumes, settings, o.signal);
          const prev = state.bests[stage.name];
          const improved = !prev || v.dice > prev.dice;
          state.validations.push({ stage: stage.name, iteration: it, dice: v.dice });
          if (improved) {
            const path = bestPath(stage);
            await saveCheckpoint(path, { network: main, tensors: method.inferenceTensors?.(), iteration: it, extra: { config, stage: stage.name, dice: v.dice, perClass: v.perClass } });
            state.bests[stage.name] = { stage: stage.name, iteration: it, dice: v.dice, path };
            emit({ type: 'checkpoint', kind: 'best', path, stage: stage.name, iteration: it });
          }
          emit({ type: 'validation', stage: stage.name, iteration: it, dice: v.dice, perClass: v.perClass, bestDice: state.bests[stage.name].dice, improved });
          await saveLast(si, it);
        }
      }
    }
    const finalPath = join(out, 'final.ckpt');
    const lastStage = stages[stages.length - 1];
    await saveCheckpoint(finalPath, { network: main, tensors: method.inferenceTensors?.(), iteration: lastStage.iterations, extra: { config, stage: lastStage.name } });
    emit({ type: 'checkpoint', kind: 'final', path: finalPath, stage: lastStage.name, iteration: lastStage.iterations });
    const best = state.bests.train ?? state.bests[lastStage.name] ?? null;
    const seconds = (Date.now() - started) / 1000;
    emit({ type: 'done', seconds, best, final: finalPath });
    return { best, bests: state.bests, final: finalPath, validations: state.validations, firstLoss: state.firstLoss, lastLoss, seconds };
  } finally {
    const ahead = await pending?.catch(() => null);
    if (ahead) dispose([ahead.images, ahead.labels]);
    await freeItems(cache);
    method.dispose();
  }
}
