/**
 * The published recipes (spec 1.3, 2, 3, 7) as complete option sets: every hyper-parameter of a method
 * is a field here, each recipe sets the spec's values, and `resolveConfig` lets any one be overridden.
 */
import type { Plan } from '../plan/plan.js';
import { checkKnownKeys, checkObject, checkOneOf, rangeError } from '../validate.js';
import { checkNetworkOptions } from '../nets/index.js';
import { checkPrecision, resolvePrecision, type Precision } from '../precision.js';

export const METHODS = ['supervised', 'meanTeacher', 'bcp', 'coda', 'icl', 'versemi', 'action'] as const;
export type Method = (typeof METHODS)[number];

export interface TrainConfig {
  recipe: string;
  method: Method;
  /** 'acdc' | 'la' | 'synthetic-2d' | 'synthetic-3d' | 'nifti' (a planned Decathlon / nnU-Net folder): which reader and validation protocol. */
  dataset: 'acdc' | 'la' | 'synthetic-2d' | 'synthetic-3d' | 'nifti';
  /** The dataset's plan (spacing, normalisation, sizes) for 'nifti' data; null for the papers' HDF5 layouts. */
  plan: Plan | null;
  network: 'UNet2D' | 'VNet3D';
  classes: number;
  /** ACDC: labeled patients; LA: labeled volumes; synthetic: labeled items. */
  labeled: number;
  /** Training iterations (BCP: of self-training; pre-training has its own count). */
  iterations: number;
  batchSize: number;
  labeledBatch: number;
  /** 2-D slice size or 3-D patch. */
  size: number[];
  lr: number;
  schedule: 'constant' | 'poly' | 'step';
  /** Step schedule: multiply by 0.1 every this many iterations. */
  stepEvery: number;
  /** 'sgd' (momentum, weightDecay) or 'adam' (betas, weightDecay). */
  optimizer: 'sgd' | 'adam';
  momentum: number;
  /** SGD with Nesterov momentum. */
  nesterov: boolean;
  betas: [number, number];
  weightDecay: number;
  /** Further options of the network (VerSemi: InstanceNorm, no last block). */
  networkOptions: Record<string, unknown>;
  validateEvery: number;
  /** First N validation volumes only (undefined: all). */
  valCases?: number;
  seed: number;
  device: string;
  /** Networks in channels-last memory layout (a speed setting: the 2-D U-Net is ~14 % faster on CPU). */
  channelsLast: boolean;
  /**
   * Precision of the forwards (mixed precision; weights, optimizer state and loss sums stay float32):
   * 'float32' (default), 'bfloat16', 'float16' (CUDA, with loss scaling) or 'auto' (bfloat16 where the
   * device runs it natively). resolveConfig replaces 'auto' by what it chose.
   */
  precision: Precision;
  /** Dice variant of the supervised loss and of BCP's region-weighted loss. */
  dice: { squared: boolean; perSample: boolean; smooth: number; includeBackground: boolean };
  // ---- Mean Teacher ----
  emaAlpha: number;
  /** EMA over parameters only, or parameters and BatchNorm buffers. */
  emaScope: 'parameters' | 'all';
  /** Teacher forward in train mode (official code) or eval mode. */
  teacherMode: 'train' | 'eval';
  consistency: number;
  /** Ramp-up length in units of iteration // 150. */
  rampup: number;
  /** Mean Teacher: consistency weight is 0 before this iteration. */
  consistencyStart: number;
  // ---- BCP ----
  pretrainIterations: number;
  /** BCP: region weight of pseudo-labels. */
  alpha: number;
  /** BCP: which halves each mix pairs ('inFirst' ACDC, 'outFirst' LA). */
  pairing: 'inFirst' | 'outFirst';
  /** BCP: keep the largest connected component of each pseudo-label class. */
  largestComponent: boolean;
  /** BCP: box side as a fraction of each spatial side. */
  boxRatio: number;
  /** BCP 3-D: foreground pseudo-label threshold on p1. */
  threshold: number;
  bcp: {
    /**
     * Self-training starts from the best pre-training checkpoint with its SGD state (momentum buffers), as
     * the official ACDC code's load_net_opt; false: a fresh optimizer, as its LA code (weights only).
     */
    keepOptimizer: boolean;
  };
  // ---- Co-DA ----
  /** Co-DA: momentum of the marginal and expectation EMAs. */
  marginalMomentum: number;
  alignEps: number;
  coda: {
    /** Inference (validation, evaluate, predict, Segmenter): network 1 alone, or the mean of both networks' probabilities (spec 3.7). */
    inference: 'net1' | 'mean';
  };
  // ---- VerSemi ----
  /** VerSemi: the number of real tasks (datasets); the synthetic CutMix task is one more. */
  tasks: number;
  // ---- ACTION ----
  action: {
    /** Iterations of stage 1 (global contrastive distillation) and stage 2 (local); stage 3 runs `iterations`. */
    globalIterations: number;
    localIterations: number;
    /** Teacher keys in each queue. */
    queue: number;
    studentTemperature: number;
    teacherTemperature: number;
    /** Stage 2: window side (stride: half of it) and the pooled size per axis. */
    window: number;
    pool: number;
    /** Stage 3: confidence of a counted pseudo-label pixel, and the hardness threshold of anco. */
    confidence: number;
    /** Stage 3: unlabeled pixels with at least this confidence are valid for anco. */
    valid: number;
    queries: number;
    negatives: number;
    temperature: number;
    /** Weight of L_anco. */
    weight: number;
    /** Channels of the representation head, and the scale of its output against the input (1: full size). */
    representation: number;
    representationScale: number;
  };
  // ---- ICL ----
  /** ICL: weight of the consistency between USCL's and SSPA's unlabeled maps. */
  iclConsistency: number;
}

const base = {
  iterations: 30000,
  lr: 0.01,
  optimizer: 'sgd' as const,
  momentum: 0.9,
  nesterov: false,
  betas: [0.9, 0.999] as [number, number],
  networkOptions: {} as Record<string, unknown>,
  tasks: 1,
  weightDecay: 1e-4,
  validateEvery: 200,
  seed: 1337,
  device: 'cpu',
  precision: 'float32' as Precision,
  emaAlpha: 0.99,
  emaScope: 'parameters' as const,
  teacherMode: 'train' as const,
  consistency: 0.1,
  rampup: 200,
  consistencyStart: 0,
  pretrainIterations: 0,
  alpha: 0.5,
  pairing: 'inFirst' as const,
  largestComponent: true,
  boxRatio: 2 / 3,
  threshold: 0.5,
  bcp: { keepOptimizer: false },
  marginalMomentum: 0.99,
  alignEps: 1e-6,
  coda: { inference: 'net1' as 'net1' | 'mean' },
  iclConsistency: 50,
  action: {
    globalIterations: 30000,
    localIterations: 30000,
    queue: 36,
    studentTemperature: 0.1,
    teacherTemperature: 0.01,
    window: 64,
    pool: 8,
    confidence: 0.97,
    valid: 0.7,
    queries: 256,
    negatives: 512,
    temperature: 0.5,
    weight: 0.01,
    representation: 512,
    representationScale: 1,
  },
  valCases: undefined as number | undefined,
  plan: null as Plan | null,
};

const acdc = {
  ...base,
  dataset: 'acdc' as const,
  network: 'UNet2D' as const,
  channelsLast: true,
  classes: 4,
  labeled: 7,
  batchSize: 24,
  labeledBatch: 12,
  size: [256, 256],
  schedule: 'poly' as const,
  stepEvery: 2500,
  dice: { squared: true, perSample: false, smooth: 1e-5, includeBackground: true },
};

const la = {
  ...base,
  dataset: 'la' as const,
  network: 'VNet3D' as const,
  channelsLast: false,
  classes: 2,
  labeled: 8,
  batchSize: 4,
  labeledBatch: 2,
  size: [112, 112, 80],
  schedule: 'step' as const,
  stepEvery: 2500,
  iterations: 6000,
  dice: { squared: true, perSample: false, smooth: 1e-5, includeBackground: true },
};

export const RECIPES: Record<string, Omit<TrainConfig, 'recipe'>> = {
  'supervised-acdc': { ...acdc, method: 'supervised', batchSize: 12, labeledBatch: 12 },
  'mt-acdc': { ...acdc, method: 'meanTeacher', consistencyStart: 1000 },
  'bcp-acdc': {
    ...acdc,
    method: 'bcp',
    schedule: 'constant',
    pretrainIterations: 10000,
    emaScope: 'all',
    bcp: { keepOptimizer: true },
    dice: { squared: true, perSample: false, smooth: 1e-10, includeBackground: true },
  },
  'coda-acdc': { ...acdc, method: 'coda', consistency: 1 },
  'icl-acdc': { ...acdc, method: 'icl', batchSize: 16, labeledBatch: 8 },
  'action-acdc': { ...acdc, method: 'action', batchSize: 8, labeledBatch: 4, nesterov: true },
  'supervised-la': { ...la, method: 'supervised', batchSize: 2, labeledBatch: 2 },
  'mt-la': { ...la, method: 'meanTeacher', schedule: 'poly' },
  'bcp-la': {
    ...la,
    method: 'bcp',
    iterations: 15000,
    batchSize: 8,
    labeledBatch: 4,
    pretrainIterations: 2000,
    pairing: 'outFirst',
    dice: { squared: false, perSample: true, smooth: 1e-5, includeBackground: true },
  },
  'versemi-la': {
    ...la,
    method: 'versemi',
    networkOptions: { normalization: 'instancenorm', lastBlock: false },
    optimizer: 'adam',
    lr: 1e-3,
    betas: [0.5, 0.999],
    weightDecay: 0,
    schedule: 'constant',
    size: [96, 96, 96],
    pretrainIterations: 2000,
    iterations: 15000,
    dice: { squared: false, perSample: true, smooth: 1e-5, includeBackground: false },
  },
};
RECIPES['versemi-multi'] = { ...RECIPES['versemi-la'], tasks: 2 };
RECIPES['action-la'] = { ...la, method: 'action', batchSize: 4, labeledBatch: 2, nesterov: true, schedule: 'poly' };

export function recipeNames(): string[] {
  return Object.keys(RECIPES);
}

/** The recipe's full configuration with `overrides` applied (unknown keys and bad values fail, naming them). */
export function resolveConfig(recipe: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  const fn = 'resolveConfig';
  const r = RECIPES[recipe];
  if (!r) throw rangeError(fn, 'recipe', `one of ${recipeNames().join(', ')}`, recipe);
  const o = checkObject(fn, 'overrides', overrides);
  checkKnownKeys(fn, 'overrides', o, Object.keys(r));
  // nested settings: unknown keys fail too (a misspelt bcp.keepOptimiser was silently ignored)
  for (const k of ['dice', 'action', 'bcp', 'coda'] as const)
    if (o[k] !== undefined) checkKnownKeys(fn, k, checkObject(fn, k, o[k]), Object.keys(r[k]));
  const c = {
    ...r,
    ...o,
    dice: { ...r.dice, ...((o.dice as object | undefined) ?? {}) },
    action: { ...r.action, ...((o.action as object | undefined) ?? {}) },
    bcp: { ...r.bcp, ...((o.bcp as object | undefined) ?? {}) },
    coda: { ...r.coda, ...((o.coda as object | undefined) ?? {}) },
    recipe,
  } as TrainConfig;
  // (iterations, validateEvery, pretrainIterations, lr and the enums: checkSettings, below)
  const positive = ['batchSize', 'labeledBatch', 'labeled', 'stepEvery'] as const;
  for (const k of positive) if (!Number.isInteger(c[k]) || c[k] < 1) throw rangeError(fn, k, 'an integer >= 1', c[k]);
  if (c.labeledBatch > c.batchSize) throw rangeError(fn, 'labeledBatch', `at most batchSize (${c.batchSize})`, c.labeledBatch);
  if (c.method !== 'supervised' && c.labeledBatch === c.batchSize) throw rangeError(fn, 'labeledBatch', `below batchSize for ${c.method} (the rest is unlabeled)`, c.labeledBatch);
  if (c.method === 'bcp' && (c.labeledBatch % 2 !== 0 || (c.batchSize - c.labeledBatch) !== c.labeledBatch))
    throw rangeError(fn, 'labeledBatch', 'an even number, half of batchSize, for bcp', c.labeledBatch);
  if (!(c.alpha >= 0 && c.alpha <= 1)) throw rangeError(fn, 'alpha', 'a number in [0, 1]', c.alpha);
  if (typeof c.bcp.keepOptimizer !== 'boolean') throw rangeError(fn, 'bcp.keepOptimizer', 'true or false', c.bcp.keepOptimizer);
  if (c.coda.inference !== 'net1' && c.coda.inference !== 'mean') throw rangeError(fn, 'coda.inference', "'net1' or 'mean'", c.coda.inference);
  if (c.method === 'action') {
    const a = c.action;
    for (const k of ['globalIterations', 'localIterations'] as const) if (!Number.isInteger(a[k]) || a[k] < 0) throw rangeError(fn, `action.${k}`, 'an integer >= 0', a[k]);
    if (!Number.isInteger(a.window) || !Number.isInteger(a.pool) || a.pool < 1 || a.window % a.pool !== 0 || a.window % 2 !== 0)
      throw rangeError(fn, 'action.window', `an even multiple of action.pool (${a.pool})`, a.window);
    if (c.size.some((s) => s < a.window)) throw rangeError(fn, 'action.window', `at most every side of size (${c.size.join('x')})`, a.window);
  }
  if (c.method === 'versemi' && c.network !== 'VNet3D') throw rangeError(fn, 'network', "'VNet3D' for versemi", c.network);
  if (c.method === 'versemi' && (c.networkOptions as { lastBlock?: boolean }).lastBlock !== false)
    throw rangeError(fn, 'networkOptions.lastBlock', 'false for versemi (its V-Net has no block_nine: the dynamic head takes the decoder features)', (c.networkOptions as { lastBlock?: boolean }).lastBlock);
  if (!Number.isInteger(c.tasks) || c.tasks < 1) throw rangeError(fn, 'tasks', 'an integer >= 1', c.tasks);
  if (c.method === 'icl' && c.network !== 'UNet2D') throw rangeError(fn, 'network', "'UNet2D' for icl (its modules attach to the 2-D U-Net decoder)", c.network);
  if (!(c.boxRatio > 0 && c.boxRatio < 1)) throw rangeError(fn, 'boxRatio', 'a number in (0, 1)', c.boxRatio);
  c.precision = resolvePrecision(checkPrecision(fn, c.precision), c.device, fn);
  checkSettings(fn, c);
  return c;
}

/**
 * The checks of a resolved configuration that train() repeats (a config edited after resolveConfig):
 * enums, numeric ranges and the iteration counts the loop relies on.
 */
export function checkSettings(fn: string, c: TrainConfig): void {
  checkOneOf(fn, 'method', c.method, METHODS);
  checkOneOf(fn, 'network', c.network, ['UNet2D', 'VNet3D']);
  checkOneOf(fn, 'schedule', c.schedule, ['constant', 'poly', 'step']);
  checkOneOf(fn, 'teacherMode', c.teacherMode, ['train', 'eval']);
  checkOneOf(fn, 'emaScope', c.emaScope, ['parameters', 'all']);
  checkOneOf(fn, 'pairing', c.pairing, ['inFirst', 'outFirst']);
  if (!(c.threshold > 0 && c.threshold < 1)) throw rangeError(fn, 'threshold', 'a number in (0, 1)', c.threshold);
  if (!(c.consistency >= 0 && Number.isFinite(c.consistency))) throw rangeError(fn, 'consistency', 'a finite number >= 0', c.consistency);
  if (c.valCases !== undefined && (!Number.isInteger(c.valCases) || c.valCases < 1)) throw rangeError(fn, 'valCases', 'an integer >= 1', c.valCases);
  for (const k of ['squared', 'perSample', 'includeBackground'] as const) if (typeof c.dice[k] !== 'boolean') throw rangeError(fn, `dice.${k}`, 'true or false', c.dice[k]);
  if (!(c.dice.smooth >= 0 && Number.isFinite(c.dice.smooth))) throw rangeError(fn, 'dice.smooth', 'a finite number >= 0', c.dice.smooth);
  if (!Number.isInteger(c.classes) || c.classes < 2) throw rangeError(fn, 'classes', 'an integer >= 2 (background and at least one class)', c.classes);
  if (!(c.emaAlpha >= 0 && c.emaAlpha <= 1)) throw rangeError(fn, 'emaAlpha', 'a number in [0, 1]', c.emaAlpha);
  if (!Number.isSafeInteger(c.seed)) throw rangeError(fn, 'seed', 'an integer', c.seed);
  if (!(c.lr > 0 && Number.isFinite(c.lr))) throw rangeError(fn, 'lr', 'a finite number > 0', c.lr);
  if (typeof c.device !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(c.device)) throw rangeError(fn, 'device', "'cpu', 'cuda' or 'cuda:N'", c.device);
  for (const k of ['iterations', 'validateEvery'] as const) if (!Number.isInteger(c[k]) || c[k] < 1) throw rangeError(fn, k, 'an integer >= 1', c[k]);
  if (!Number.isInteger(c.pretrainIterations) || c.pretrainIterations < 0) throw rangeError(fn, 'pretrainIterations', 'an integer >= 0', c.pretrainIterations);
  // both networks halve every side four times: a patch that is not a multiple of 16 failed in the first forward
  const dims = c.network === 'UNet2D' ? 2 : 3;
  if (!Array.isArray(c.size) || c.size.length !== dims || c.size.some((v) => !Number.isInteger(v) || v < 16 || v % 16 !== 0))
    throw rangeError(fn, 'size', `${dims} multiples of 16 (the ${c.network} halves each side four times)`, c.size);
  checkNetworkOptions(fn, c.network, c.networkOptions);
  // the optimizer's settings (they were checked only when the run built its optimizer, after creating the folder)
  checkOneOf(fn, 'optimizer', c.optimizer, ['sgd', 'adam']);
  for (const k of ['momentum', 'weightDecay'] as const) if (!(c[k] >= 0 && Number.isFinite(c[k]))) throw rangeError(fn, k, 'a finite number >= 0', c[k]);
  if (typeof c.nesterov !== 'boolean') throw rangeError(fn, 'nesterov', 'true or false', c.nesterov);
  if (!Array.isArray(c.betas) || c.betas.length !== 2 || c.betas.some((b) => !(b >= 0 && b < 1)))
    throw rangeError(fn, 'betas', 'a pair [beta1, beta2] of numbers in [0, 1)', c.betas);
}
