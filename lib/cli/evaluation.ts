/**
 * The work of `semiseg evaluate`, as one function that `semiseg compare` calls too (so the comparison
 * table holds the very numbers `evaluate` prints): the papers' metrics of a checkpoint on a split,
 * written as `<prefix>.json` (summary) and `<prefix>.csv` (per case), and optionally one overlay picture
 * per case (image | reference | prediction on a few slices) into a folder.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

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

async function volumesFor(data: string, info: CheckpointInfo, split: 'val' | 'test'): Promise<{ volumes: Volume[]; free: () => void }> {
  if (data !== 'synthetic') {
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

/** Evaluates a checkpoint and writes its JSON, CSV (and overlay pictures). */
export async function evaluateCheckpoint(o: EvaluateOptions): Promise<EvaluationResult> {
  if (o.data !== 'synthetic' && isImageDataset(o.data)) {
    // a Decathlon / nnU-Net folder: every case in its own geometry, distances in mm
    const { table, info, extra } = await evaluatePlanned(o);
    const prefix = o.out ?? `${o.checkpoint}.${o.split}`;
    const summary = { checkpoint: o.checkpoint, split: o.split, units: 'mm', ...extra, ...table.summary() };
    writeAtomic(`${prefix}.json`, JSON.stringify(summary, null, 2));
    writeAtomic(`${prefix}.csv`, table.toCSV());
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
    const { volumes, free } = await volumesFor(o.data, info, o.split);
    try {
      if (o.overlays) mkdirSync(o.overlays, { recursive: true });
      const twoD = info.kind === 'UNet2D';
      const table = await evaluateVolumes(net, volumes, settings, o.onVolume, undefined, o.overlays ? (v, pred) => writeAtomic(join(o.overlays!, caseFileName(v.id)), caseOverlayPng(v.image, v.label, pred, twoD)) : undefined);
      const prefix = o.out ?? `${o.checkpoint}.${o.split}`;
      const summary = { checkpoint: o.checkpoint, split: o.split, ...extra, ...table.summary() };
      writeAtomic(`${prefix}.json`, JSON.stringify(summary, null, 2));
      writeAtomic(`${prefix}.csv`, table.toCSV());
      return { table, summary, info, prefix };
    } finally {
      free();
    }
  } finally {
    net.dispose();
  }
}
