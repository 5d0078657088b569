/** Process-wide controls: seeding, threads, grad mode, CUDA, leak counting, build facts. */
import { addonChoice, native, type BuildInfo, type CpuCacheStats } from './native.js';
import { checkBool, checkFunction, checkInt } from './validate.js';

/** Seeds LibTorch's CPU (and CUDA) generators. */
export function manualSeed(seed: number): void {
  native.manualSeed(checkInt('manualSeed', 'seed', seed, 0));
}

/** Sets LibTorch's intra-op thread count (as torch.set_num_threads). */
export function setNumThreads(n: number): void {
  native.setNumThreads(checkInt('setNumThreads', 'n', n, 1, 1024));
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Runs `fn` with gradient recording off (torch.no_grad) and restores the previous mode. `fn` must be
 * synchronous; async ops started inside it run without grad, as their mode is captured when they start.
 */
export function noGrad<T>(fn: () => T): T {
  checkFunction('noGrad', 'fn', fn);
  const prev = native.isGradEnabled();
  native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/**
 * How many native jobs (forwards, train steps, async ops, file I/O) may run at once, process-wide.
 * Default 1: each job already uses every intra-op thread (setNumThreads); a service that runs small
 * jobs side by side can raise it, keeping jobs x threads within its cores.
 */
export function setMaxConcurrentJobs(n: number): void {
  native.setMaxConcurrentJobs(checkInt('setMaxConcurrentJobs', 'n', n, 1, 64));
}

export function maxConcurrentJobs(): number {
  return native.maxConcurrentJobs();
}

/** Async native calls of this thread (main or worker) not yet settled. */
export function pendingJobs(): number {
  return native.pendingJobs();
}

/** The number of tensors held by JS handles right now: the counter for leak tests. */
export function liveTensors(): number {
  return native.liveTensors();
}

/** The bytes of native memory V8 has been told about (tensors held by JS handles, among others). */
export function externalMemory(): number {
  return native.externalMemory();
}

/**
 * What the addon was built against, which addon file was loaded (a source build or a prebuild), and the
 * CPU features that matter for speed and precision (`cpuFeatures`; `nativeBf16`: what precision 'auto'
 * picks bfloat16 on).
 */
export function buildInfo(): BuildInfo & { addonFile: string; addonKind: 'source build' | 'prebuild'; cpuFeatures: string[]; nativeBf16: boolean } {
  const cpu = native.cpuFeatures();
  return { ...native.buildInfo(), addonFile: addonChoice.file, addonKind: addonChoice.kind, cpuFeatures: cpu.features, nativeBf16: cpu.nativeBf16 };
}

export const cuda = {
  /** True when this LibTorch has CUDA and at least one GPU is visible. */
  isAvailable(): boolean {
    return native.cudaIsAvailable();
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
  /** Waits until the work queued on GPU `device` (default 0) has finished; throws without CUDA. */
  synchronize(device = 0): void {
    native.cudaSynchronize(checkInt('cuda.synchronize', 'device', device, 0));
  },
};

/**
 * The cache of large CPU blocks (>= 1 MiB) that LibTorch's CPU tensors are allocated from. A 3-D network's
 * activations are hundreds of MiB each; without the cache every one is a fresh mapping that the kernel
 * faults in and zeroes page by page, and unmaps again when freed. Training steps and sliding-window passes
 * allocate the same sizes each time, so after the first pass they are served from the cache (blocks from
 * 8 MiB in 2 MiB huge pages where the kernel allows). The cache never lets in-use + cached bytes grow past the
 * largest in-use total seen so far plus slack (1/8, at least 64 MiB): it costs no more memory than the
 * process's own peak, but it holds that peak between jobs until `empty()` is called. On by default;
 * `SEMISEG_CPU_CACHE=0` in the environment at load turns it off. Process-wide (all worker threads share it).
 */
export const cpuCache = {
  /** Its counters: cached and in-use bytes, hits, misses, releases. */
  stats(): CpuCacheStats {
    return native.cpuCacheStats();
  },
  /** Gives every cached block back to the system (e.g. a service going idle); blocks in use are untouched. */
  empty(): void {
    native.emptyCpuCache();
  },
  /** Off: cached blocks are given back and LibTorch's own allocator serves new requests; on: the cache again. */
  setEnabled(enabled: boolean): void {
    native.setCpuCacheEnabled(checkBool('cpuCache.setEnabled', 'enabled', enabled));
  },
};
