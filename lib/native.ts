/**
 * The exact shape of the native addon (binding/), and its loading (lib/addon.ts: a source build, or the prebuild that matches the LibTorch found).
 * Data crosses the boundary by copy in both directions: a TypedArray is copied into a new tensor,
 * and reading a tensor copies its values into a fresh TypedArray.
 */
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

import { loadAddon, type AddonChoice } from './addon.js';

/** A native tensor handle: owns one LibTorch tensor until disposed (or garbage-collected). */
export interface NativeTensorHandle {
  dispose(): void;
  isDisposed(): boolean;
  shape(): number[];
  dtype(): string;
  device(): string;
  requiresGrad(): boolean;
  nbytes(): number;
}

/** What an op of the native table takes and returns. */
export type NativeValue =
  | undefined
  | null
  | number
  | boolean
  | string
  | bigint
  | NativeTensorHandle
  | number[]
  | NativeTensorHandle[];

export type NativeData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** [names, tensors]: how named tensor lists (state dicts) cross the boundary. */
export type NativeNamed = [string[], NativeTensorHandle[]];

export interface NativeNetworkHandle {
  kind(): 'UNet2D' | 'VNet3D' | 'VerSemi';
  optionsJson(): string;
  forward(x: NativeTensorHandle, autocast?: string): Promise<NativeTensorHandle>;
  forwardSync(x: NativeTensorHandle, autocast?: string): NativeTensorHandle;
  forwardFeatures(x: NativeTensorHandle, autocast?: string): Promise<NativeTensorHandle[]>;
  setTraining(on: boolean): void;
  isTraining(): boolean;
  namedParameters(): NativeNamed;
  namedBuffers(): NativeNamed;
  stateDict(): NativeNamed;
  parameterCount(): number;
  to(device: string, dtype?: string): void;
  setChannelsLast(on: boolean): void;
  channelsLast(): boolean;
  device(): string;
  dtype(): string;
  clone(): NativeNetworkHandle;
  loadState(names: string[], tensors: NativeTensorHandle[], strict: boolean): { missing: string[]; unexpected: string[] };
  dispose(): void;
  isDisposed(): boolean;
}

export interface NativeOptimizerHandle {
  zeroGrad(): void;
  step(): void;
  stepAsync(): Promise<void>;
  unscaleGrads(scale: number): boolean;
  attachGradSync(group: NativeGroupHandle, bucketBytes: number): void;
  detachGradSync(): void;
  lr(group: number): number;
  setLr(lr: number, group?: number): void;
  groupCount(): number;
  state(): NativeNamed;
  loadState(names: string[], tensors: NativeTensorHandle[]): void;
}

export interface NativeGroupHandle {
  rank(): number;
  size(): number;
  allreduce(tensors: NativeTensorHandle[]): Promise<void>;
  broadcast(tensors: NativeTensorHandle[], root: number): Promise<void>;
  barrier(): Promise<void>;
  shutdown(): void;
  closed(): boolean;
}

export interface NativeGroupOptions {
  host: string;
  port: number;
  rank: number;
  worldSize: number;
  timeoutMs: number;
  interface?: string;
  nccl?: boolean;
}

export interface NativeOptimizerGroup {
  params: NativeTensorHandle[];
  options: Record<string, number | boolean>;
}

export interface NativeLossSpec {
  kind: 'ce' | 'dice' | 'ceDice';
  squared: boolean;
  perSample: boolean;
  smooth: number;
  includeBackground: boolean;
}

export interface NativeCheckpoint {
  model: NativeNamed;
  optimizer: NativeNamed;
  aux: NativeNamed;
  meta: string;
  rng: NativeTensorHandle | null;
}

/** Counters of the large-block CPU cache (`cpuCache.stats()`). */
export interface CpuCacheStats {
  /** Whether freed blocks are kept for reuse (SEMISEG_CPU_CACHE=0 at load, or `cpuCache.setEnabled(false)`: not). */
  enabled: boolean;
  /** Bytes of freed blocks held for reuse. */
  cachedBytes: number;
  /** Bytes of large blocks (>= 1 MiB) in use. */
  inUseBytes: number;
  /** The most bytes of large blocks in use at once so far: the cache keeps in-use + cached within this plus slack. */
  peakInUseBytes: number;
  /** Large requests served from the cache. */
  hits: number;
  /** Large requests that needed a new block. */
  misses: number;
  /** Cached blocks given back to the system (to make room, by `empty()` or on switching off). */
  releases: number;
}

export interface BuildInfo {
  torchVersion: string;
  torchRoot: string;
  cuda: boolean;
  napiVersion: number;
}

export interface Native {
  TensorHandle: abstract new () => NativeTensorHandle;
  buildInfo(): BuildInfo;
  op(name: string, args: NativeValue[]): NativeValue;
  opAsync(name: string, args: NativeValue[]): Promise<NativeValue>;
  fromData(
    data: NativeData,
    shape: number[],
    srcDtype: string,
    dtype: string,
    device: string,
    requiresGrad: boolean,
  ): NativeTensorHandle;
  toData(handle: NativeTensorHandle): NativeData;
  toDataAsync(handle: NativeTensorHandle): Promise<NativeData>;
  liveTensors(): number;
  externalMemory(): number;
  manualSeed(seed: number | bigint): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  isGradEnabled(): boolean;
  setGradEnabled(enabled: boolean): void;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(device?: number): void;
  opNames(): string[];
  cpuCacheStats(): CpuCacheStats;
  emptyCpuCache(): void;
  setCpuCacheEnabled(enabled: boolean): void;
  setMaxConcurrentJobs(n: number): void;
  maxConcurrentJobs(): number;
  /** Process exit: starts no more native jobs and waits (at most 30 s) for running ones. Irreversible. */
  prepareExit(): void;
  pendingJobs(): number;
  fromRawBytes(bytes: Uint8Array, shape: number[], dtype: string): NativeTensorHandle;
  toRawBytes(handle: NativeTensorHandle): Uint8Array;

  NetworkHandle: abstract new () => NativeNetworkHandle;
  createUNet2D(options: { inChannels: number; outChannels: number; features: number[]; dropout: number[] }): NativeNetworkHandle;
  createVNet3D(options: {
    inChannels: number;
    outChannels: number;
    nFilters: number;
    normalization: string;
    hasDropout: boolean;
    lastBlock?: boolean;
  }): NativeNetworkHandle;
  emaUpdate(teacher: NativeNetworkHandle, student: NativeNetworkHandle, alpha: number, includeBuffers: boolean): void;
  createVerSemi(options: { inChannels: number; nFilters: number; normalization: string; hasDropout: boolean; lastBlock: boolean; tasks: number }): NativeNetworkHandle;
  networkSetTask(net: NativeNetworkHandle, task: number): void;
  networkTask(net: NativeNetworkHandle): { task: number; tasks: number };

  OptimizerHandle: abstract new () => NativeOptimizerHandle;
  createOptimizer(kind: 'sgd' | 'adam', groups: NativeOptimizerGroup[]): NativeOptimizerHandle;
  trainStep(
    net: NativeNetworkHandle,
    optimizer: NativeOptimizerHandle,
    input: NativeTensorHandle,
    target: NativeTensorHandle,
    loss: NativeLossSpec,
  ): Promise<number>;
  rngState(): NativeTensorHandle;
  setRngState(state: NativeTensorHandle): void;

  distInfo(): { available: boolean; reason: string; nccl: boolean };
  distConnect(options: NativeGroupOptions): Promise<NativeGroupHandle>;
  setSyncBatchNorm(group: NativeGroupHandle | null): void;

  writeStateDict(path: string, names: string[], tensors: NativeTensorHandle[]): Promise<void>;
  readStateDict(path: string, key?: string): Promise<NativeNamed>;
  writeCheckpoint(
    path: string,
    modelNames: string[],
    model: NativeTensorHandle[],
    optimizerNames: string[],
    optimizer: NativeTensorHandle[],
    meta: string,
    rng?: NativeTensorHandle,
    auxNames?: string[],
    aux?: NativeTensorHandle[],
  ): Promise<void>;
  readCheckpoint(path: string): Promise<NativeCheckpoint>;

  CancelToken: new () => { cancel(): void };
  slidingWindow(
    net: NativeNetworkHandle,
    image: NativeTensorHandle,
    options: { patch: number[]; strides: number[]; batch: number; gaussian: boolean; precision?: string; fold?: boolean },
    token?: { cancel(): void },
  ): Promise<NativeTensorHandle>;
  sliceLabels(net: NativeNetworkHandle, volume: NativeTensorHandle, batch: number, precision: string, fold: boolean, token?: { cancel(): void }): Promise<NativeTensorHandle>;
  resolvePrecision(precision: string, device: string, fn?: string): 'float32' | 'bfloat16' | 'float16';
  cpuFeatures(): { features: string[]; nativeBf16: boolean };

  preprocess(
    image: NativeTensorHandle,
    label: NativeTensorHandle | undefined,
    options: {
      crop: boolean;
      channels: { scheme: string; lo: number; hi: number; mean: number; std: number; mask?: boolean }[];
      size?: number[];
      spacing?: number[];
      targetSpacing?: number[];
      keepAxis?: number;
      imageMode: string;
      labelMode: string;
      classes: number;
    },
  ): Promise<{ image: NativeTensorHandle; label?: NativeTensorHandle; cropStart: number[]; cropShape: number[] }>;
  resample(x: NativeTensorHandle, size: number[], mode: string): Promise<NativeTensorHandle>;
  resampleLabels(labels: NativeTensorHandle, size: number[], mode: string, classes: number): Promise<NativeTensorHandle>;
}

/** The package root (holds build/ and prebuilds/), from dist/lib/native.js. */
export const packageRoot = fileURLToPath(new URL('../..', import.meta.url));

/** How the addon was found (a source build or a prebuild, and the LibTorch it runs on). */
export let addonChoice: AddonChoice;

function load(): Native {
  try {
    const { addon, choice } = loadAddon<Native>(packageRoot);
    addonChoice = choice;
    return addon;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (reason.startsWith('semiseg:')) throw err;
    throw new Error(
      `semiseg: the native addon could not be loaded (${reason.split('\n')[0]}). ` +
        'Build it with `npm run build` (it needs LibTorch: set LIBTORCH or TORCH_ROOT, or put a python3 ' +
        'with torch on PATH; `npm run setup` installs torch==2.13.0+cpu into .venv and builds).',
      { cause: err },
    );
  }
}

export const native: Native = load();

// LibTorch's static destructors must not run under a compute thread that is still working: on the main
// thread's exit (process.exit(), an uncaught exception, the loop running dry) wait for running jobs.
if (isMainThread) process.on('exit', () => native.prepareExit());
