/**
 * The work of `semiseg evaluate`, as one function that `semiseg compare` calls too (so the comparison
 * table holds the very numbers `evaluate` prints): the papers' metrics of a checkpoint on a split,
 * written as `<prefix>.json` (summary) and `<prefix>.csv` (per case), and optionally one overlay picture
 * per case (image | reference | prediction on a few slices) into a folder.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

import type { CheckpointInfo } from '../io/checkpoint.js';
import type { MetricsTable } from '../metrics.js';
import { caseFileName, caseOverlayPng, writeAtomic } from '../report/overlays.js';
import { dispose } from '../scope.js';
import { networkFromCheckpoint } from '../segmenter.js';
import type { Volume } from '../trainers/data.js';
import type { TrainConfig } from '../trainers/recipes.js';
import type { Network } from '../nets/network.js';
import { evaluateVolumes, type InferenceSettings } from '../trainers/validate.js';
import { splitVolumes, trainData } from './datasets.js';
import { UsageError } from './options.js';
import { isImageDataset } from '../data/folders.js';
import { evaluatePlanned } from './planned-eval.js';

/** Options of {@link evaluateCheckpoint}. */
export interface EvaluateOptions {
  checkpoint: string;
  /** A dataset folder, or 'synthetic' (the generated validation volumes the checkpoint's run validated on). */
  data: string;
  split: 'val' | 'test';
  /** Write `<prefix>.json` and `<prefix>.csv` (default `<checkpoint>.<split>`). */
  out?: string;
  /** Write `<dir>/<case>.png` for every case. */
  overlays?: string;
  /** VerSemi checkpoints: the task (dataset) to segment (default 0). */
  task?: number;
  onVolume?: (id: string, done: number, total: number) => void;
  /**
   * Called with the loaded network and its inference settings before any volume (to change the
   * settings); what it returns is added to the summary.
   */
  prepare?: (net: Network, settings: InferenceSettings) => Record<string, unknown>;
}

/** What {@link evaluateCheckpoint} computed and wrote. */
export interface EvaluationResult {
  table: MetricsTable;
  summary: { checkpoint: string; split: string; [key: string]: unknown } & ReturnType<MetricsTable['summary']>;
  info: CheckpointInfo;
  prefix: string;
}

/** The classes (background first) of the HDF5 layouts `splitVolumes` reads: ACDC for 2-D networks, LA else. */
export function layoutClasses(kind: CheckpointInfo['kind']): string[] {
  return kind === 'UNet2D' ? ['background', 'RV', 'Myo', 'LV'] : ['background', 'LA'];
}

/**
 * The checkpoint's class count must be the data's: a 3-class (hippocampus) network scored on 4-class
 * ACDC would score classes 1-2 only and drop LV without a word. The message names both counts.
 */
export function checkClassCount(data: string, dataClasses: number, checkpoint: string, checkpointClasses: number, what = ''): void {
  if (dataClasses !== checkpointClasses)
    throw new UsageError(`--data: '${data}'${what} has ${dataClasses} classes (background included); the checkpoint '${checkpoint}' was trained on ${checkpointClasses}`);
}

async function volumesFor(data: string, info: CheckpointInfo, split: 'val' | 'test', checkpoint: string, classes: number): Promise<{ volumes: Volume[]; free: () => void }> {
  if (data !== 'synthetic') {
    const names = layoutClasses(info.kind);
    checkClassCount(data, names.length, checkpoint, classes, ` (the ${info.kind === 'UNet2D' ? 'ACDC' : 'LA'} HDF5 layout: ${names.join(', ')})`);
    const volumes = await splitVolumes(data, info.kind, split);
    return { volumes, free: () => volumes.forEach((v) => dispose([v.image, v.label])) };
  }
  const config = info.extra?.config as TrainConfig | undefined;
  if (!config) throw new UsageError("--data synthetic: the checkpoint holds no training configuration (it was not written by semiseg's training loop)");
  if (split !== 'val') throw new UsageError('--data synthetic: generated data has a validation split only (use --split val)');
  const d = trainData('synthetic', config);
  try {
    return { volumes: await d.validation(), free: () => d.dispose() };
  } catch (err) {
    d.dispose();
    throw err;
  }
}

/**
 * Creates the folder of `<prefix>.json` (and the overlay folder) before anything is evaluated, so a bad
 * --out fails in a second, naming the path, instead of after the whole evaluation.
 */
function prepareOutputs(prefix: string, overlays: string | undefined): void {
  for (const [dir, what] of [[dirname(prefix), '--out'], [overlays, '--overlays']] as const) {
    if (!dir) continue;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new UsageError(`${what}: cannot create the folder '${dir}' (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
}

/** The JSON's class names, keyed as its classes (1..C-1). */
function namesByClass(names: string[]): Record<number, string> {
  return Object.fromEntries(names.slice(1).map((n, i) => [i + 1, n]));
}

function writeResults(prefix: string, summary: EvaluationResult['summary'], table: MetricsTable): void {
  writeAtomic(`${prefix}.json`, JSON.stringify(summary, null, 2));
  writeAtomic(`${prefix}.csv`, table.toCSV());
}

/** Evaluates a checkpoint and writes its JSON, CSV (and overlay pictures). */
export async function evaluateCheckpoint(o: EvaluateOptions): Promise<EvaluationResult> {
  const prefix = o.out ?? `${o.checkpoint}.${o.split}`;
  prepareOutputs(prefix, o.overlays);
  if (o.data !== 'synthetic' && isImageDataset(o.data)) {
    // a Decathlon / nnU-Net folder: every case in its own geometry, distances in mm
    const { table, info, extra, classes } = await evaluatePlanned(o);
    const summary = { checkpoint: o.checkpoint, split: o.split, units: 'mm', ...extra, classNames: namesByClass(classes), ...table.summary() };
    writeResults(prefix, summary, table);
    return { table, summary, info, prefix };
  }
  let loaded: Awaited<ReturnType<typeof networkFromCheckpoint>>;
  try {
    loaded = await networkFromCheckpoint(o.checkpoint, { task: o.task });
  } catch (err) {
    throw err instanceof RangeError ? new UsageError(`--task: ${(err as Error).message}`) : err;
  }
  const { net, info, settings } = loaded;
  try {
    const extra = o.prepare?.(net, settings) ?? {};
    const { volumes, free } = await volumesFor(o.data, info, o.split, o.checkpoint, settings.classes);
    try {
      const twoD = info.kind === 'UNet2D';
      const table = await evaluateVolumes(net, volumes, settings, o.onVolume, undefined, o.overlays ? (v, pred) => writeAtomic(join(o.overlays!, caseFileName(v.id)), caseOverlayPng(v.image, v.label, pred, twoD)) : undefined);
      const names = o.data === 'synthetic' ? {} : { classNames: namesByClass(layoutClasses(info.kind)) };
      const summary = { checkpoint: o.checkpoint, split: o.split, ...extra, ...names, ...table.summary() };
      writeResults(prefix, summary, table);
      return { table, summary, info, prefix };
    } finally {
      free();
    }
  } finally {
    net.dispose();
  }
}
