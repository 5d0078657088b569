/**
 * The demo job (`semiseg demo`, README's quick start): trains supervised-only and BCP with the same
 * budget on synthetic cardiac-like slices (or, with `data`, on an ACDC folder), then reports each one's
 * validation Dice per class. Minutes on a CPU.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { readCheckpointInfo } from '../io/checkpoint.js';
import { acdcData, syntheticData, type TrainData } from '../trainers/data.js';
import { train, type TrainEvent } from '../trainers/loop.js';
import { resolveConfig, type TrainConfig } from '../trainers/recipes.js';

export interface DemoOptions {
  /** Iterations of each run (BCP: a third pre-training, the rest self-training). Default 300. */
  iterations?: number;
  /** Slice side. Default 64 (synthetic) or 128 (ACDC). */
  size?: number;
  seed?: number;
  /** An ACDC folder (train_slices.list ...) or a folder holding `ACDC/`; default: synthetic slices. */
  data?: string;
  /** Labeled patients with `data` (default 7); labeled synthetic slices otherwise (default 8). */
  labeled?: number;
  out?: string;
  onEvent?: (method: string, e: TrainEvent) => void;
  signal?: AbortSignal;
}

export interface DemoRun {
  method: 'supervised' | 'bcp';
  /** Best validation Dice per class (RV, Myo, LV) and their mean. */
  perClass: number[];
  dice: number;
  iteration: number;
  seconds: number;
  firstLoss: number;
  lastLoss: number;
}

export interface DemoResult {
  runs: DemoRun[];
  data: string;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const iterations = options.iterations ?? 300;
  const size = options.size ?? (options.data ? 128 : 64);
  const seed = options.seed ?? 1337;
  const labeled = options.labeled ?? (options.data ? 7 : 8);
  const out = options.out ?? join('runs', 'demo');
  const pre = Math.round(iterations / 3);
  const common = { labeled, size: [size, size], seed, validateEvery: Math.max(25, Math.round(iterations / 6)) };
  const configs: TrainConfig[] = [
    resolveConfig('supervised-acdc', { ...common, iterations, batchSize: 4, labeledBatch: 4 }),
    resolveConfig('bcp-acdc', { ...common, pretrainIterations: pre, iterations: iterations - pre, batchSize: 8, labeledBatch: 4 }),
  ];
  const runs: DemoRun[] = [];
  // `data` may be the ACDC folder or a folder holding it (../shared/data)
  const root = options.data && !existsSync(join(options.data, 'train_slices.list')) ? join(options.data, 'ACDC') : options.data;
  if (root && !existsSync(join(root, 'train_slices.list'))) throw new Error(`demo: '${options.data}' holds no ACDC data (train_slices.list)`);
  for (const config of configs) {
    const data: TrainData = root
      ? acdcData(root, { patients: labeled, size: [size, size], valCases: 6 })
      : syntheticData({ labeled, unlabeled: 40, size, seed, valCases: 3 });
    try {
      const r = await train(config, { data, out: join(out, config.method), signal: options.signal, onEvent: (e) => options.onEvent?.(config.method, e) });
      const best = r.best;
      const perClass = best ? ((await readCheckpointInfo(best.path)).extra?.perClass as number[]) : [];
      runs.push({ method: config.method as 'supervised' | 'bcp', perClass, dice: best?.dice ?? 0, iteration: best?.iteration ?? 0, seconds: r.seconds, firstLoss: r.firstLoss, lastLoss: r.lastLoss });
    } finally {
      data.dispose();
    }
  }
  return { runs, data: options.data ?? 'synthetic' };
}
