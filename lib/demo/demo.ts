/**
 * The demo job (`semiseg demo`, README's quick start): trains supervised-only and BCP with the same
 * budget on real data, then reports each one's validation Dice per class and the difference. By default
 * on the 40 Decathlon hippocampus MRI volumes bundled with the package (examples/data/Hippocampus,
 * CC BY-SA 4.0): planned as any NIfTI folder (with the 2-D U-Net on axial slices, for CPU minutes),
 * few labeled cases, the others' images unlabeled, held-out validation cases. `data` may also be another Decathlon / nnU-Net folder, an ACDC folder, or
 * 'synthetic' (generated cardiac-like slices). Minutes on a CPU.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { isImageDataset, readImageDataset } from '../data/folders.js';
import { readCheckpointInfo } from '../io/checkpoint.js';
import { packageRoot } from '../native.js';
import { fingerprintDataset } from '../plan/fingerprint.js';
import { planFromFingerprint, type Plan } from '../plan/plan.js';
import { acdcData, syntheticData, type TrainData } from '../trainers/data.js';
import { RUN_FILES, train, type TrainEvent } from '../trainers/loop.js';
import { plannedData, plannedSplit } from '../trainers/planned-data.js';
import { resolveConfig, type TrainConfig } from '../trainers/recipes.js';

/** The bundled demo data: 40 Decathlon hippocampus volumes (CC BY-SA 4.0, see its LICENSE.md). */
export const DEMO_DATA = join(packageRoot, 'examples', 'data', 'Hippocampus');

export interface DemoOptions {
  /** Iterations of each run (BCP: a third pre-training, the rest self-training). Default 600 (NIfTI), 300 (slices). */
  iterations?: number;
  /** NIfTI folders: slice side or patch side (default: the plan's); slice side otherwise (default 64 synthetic, 128 ACDC). */
  size?: number;
  /**
   * NIfTI folders: the network. Default 'UNet2D' (the 2-D U-Net on axial slices: minutes on a CPU);
   * 'VNet3D' is the plan's own choice for isotropic data such as the hippocampus (slower on a CPU).
   */
  network?: 'UNet2D' | 'VNet3D';
  seed?: number;
  /** A Decathlon / nnU-Net folder (default: the bundled hippocampus data), an ACDC folder, or 'synthetic'. */
  data?: string;
  /** Labeled cases (NIfTI, default 6), patients (ACDC, default 7) or synthetic slices (default 8). */
  labeled?: number;
  /** NIfTI folders: validation cases held out of the labeled pool (default 8). */
  val?: number;
  out?: string;
  onEvent?: (method: string, e: TrainEvent) => void;
  /** NIfTI folders: preprocessing progress (a case done). */
  onCase?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface DemoRun {
  method: 'supervised' | 'bcp';
  /** Best validation Dice per class (1 .. C-1) and their mean. */
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
  /** names of the scored classes (1 .. C-1) */
  classes: string[];
  /** what each run trained on: volumes (NIfTI folders), slices (ACDC, synthetic) */
  labeled: number;
  unlabeled: number;
  validation: number;
  /** NIfTI folders: the plan both runs used */
  plan?: Plan;
}

async function plannedDemo(root: string, o: DemoOptions): Promise<DemoResult> {
  const iterations = o.iterations ?? 600;
  const seed = o.seed ?? 1337;
  const labeled = o.labeled ?? 6;
  const out = o.out ?? join('runs', 'demo');
  const ds = readImageDataset(root);
  const fp = await fingerprintDataset(ds);
  const network = o.network ?? 'UNet2D';
  const base = planFromFingerprint(fp, ds, { network });
  const plan = o.size === undefined ? base : planFromFingerprint(fp, ds, { network, size: base.size.map(() => o.size!) });
  const pre = Math.round(iterations / 3);
  const common: Partial<TrainConfig> = {
    dataset: 'nifti',
    plan,
    network: plan.network,
    channelsLast: false,
    classes: plan.classes.length,
    size: plan.size,
    labeled,
    seed,
    validateEvery: Math.max(20, Math.round(iterations / 6)),
  };
  const twoD = plan.network === 'UNet2D';
  const configs: TrainConfig[] = [
    resolveConfig(twoD ? 'supervised-acdc' : 'supervised-la', { ...common, iterations, batchSize: plan.labeledBatch, labeledBatch: plan.labeledBatch }),
    resolveConfig(twoD ? 'bcp-acdc' : 'bcp-la', { ...common, pretrainIterations: pre, iterations: iterations - pre, batchSize: plan.batchSize, labeledBatch: plan.labeledBatch }),
  ];
  const data = await plannedData(ds, plan, { labeled, val: o.val ?? 8, onCase: o.onCase });
  const runs: DemoRun[] = [];
  try {
    for (const config of configs) runs.push(await demoRun(config, data, out, o));
  } finally {
    data.dispose();
  }
  const split = plannedSplit(ds, { labeled, val: o.val ?? 8 });
  return { runs, data: root, classes: plan.classes.slice(1), labeled: split.labeled.length, unlabeled: split.unlabeled.length, validation: split.val.length, plan };
}

async function demoRun(config: TrainConfig, data: TrainData, out: string, o: DemoOptions): Promise<DemoRun> {
  const dir = join(out, config.method);
  // the demo's own folder: a run of an earlier demo there is replaced (its log would be appended to)
  if (RUN_FILES.some((f) => existsSync(join(dir, f)))) rmSync(dir, { recursive: true, force: true });
  const r = await train(config, { data, out: dir, signal: o.signal, onEvent: (e) => o.onEvent?.(config.method, e) });
  const best = r.best;
  const perClass = best ? ((await readCheckpointInfo(best.path)).extra?.perClass as number[]) : [];
  return { method: config.method as 'supervised' | 'bcp', perClass, dice: best?.dice ?? 0, iteration: best?.iteration ?? 0, seconds: r.seconds, firstLoss: r.firstLoss, lastLoss: r.lastLoss };
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const source = options.data ?? DEMO_DATA;
  if (source !== 'synthetic' && isImageDataset(source)) return plannedDemo(source, options);
  if (source === DEMO_DATA) throw new Error(`demo: the bundled data is missing ('${DEMO_DATA}' has no dataset.json); reinstall semiseg or pass --data`);
  const synthetic = source === 'synthetic';
  const iterations = options.iterations ?? 300;
  const size = options.size ?? (synthetic ? 64 : 128);
  const seed = options.seed ?? 1337;
  const labeled = options.labeled ?? (synthetic ? 8 : 7);
  const out = options.out ?? join('runs', 'demo');
  const pre = Math.round(iterations / 3);
  const common = { labeled, size: [size, size], seed, validateEvery: Math.max(25, Math.round(iterations / 6)) };
  const configs: TrainConfig[] = [
    resolveConfig('supervised-acdc', { ...common, iterations, batchSize: 4, labeledBatch: 4 }),
    resolveConfig('bcp-acdc', { ...common, pretrainIterations: pre, iterations: iterations - pre, batchSize: 8, labeledBatch: 4 }),
  ];
  const runs: DemoRun[] = [];
  // `data` may be the ACDC folder or a folder holding it (../shared/data)
  const root = synthetic ? undefined : existsSync(join(source, 'train_slices.list')) ? source : join(source, 'ACDC');
  if (root && !existsSync(join(root, 'train_slices.list'))) throw new Error(`demo: '${source}' is neither a Decathlon / nnU-Net folder (dataset.json, imagesTr/) nor ACDC data (train_slices.list)`);
  let counts = { labeled: 0, unlabeled: 0, validation: 0 };
  for (const config of configs) {
    const data: TrainData = root ? acdcData(root, { patients: labeled, size: [size, size], valCases: 6 }) : syntheticData({ labeled, unlabeled: 40, size, seed, valCases: 3 });
    try {
      runs.push(await demoRun(config, data, out, options));
      counts = { labeled: data.labeled, unlabeled: data.unlabeled, validation: (await data.validation()).length };
    } finally {
      data.dispose();
    }
  }
  return { runs, data: source, classes: ['RV', 'Myo', 'LV'], ...counts };
}
