/**
 * Precision of forwards, for inference and training: `'float32'`, `'bfloat16'` (CPU or CUDA),
 * `'float16'` (CUDA only) or `'auto'`. Reduced precision runs the convolutions under autocast (float32
 * weights, optimizer state, probabilities and loss reductions); checkpoints stay float32.
 * `'auto'` picks bfloat16 where it runs natively (a CPU with AVX-512 BF16 or AMX-BF16, a CUDA device of
 * compute capability >= 8.0) and float32 elsewhere: on a CPU without native bfloat16 it is emulated and
 * slower than float32.
 */
import type { Device } from './dtype.js';
import { native } from './native.js';
import { checkOneOf } from './validate.js';

/** A requested precision. */
export type Precision = 'float32' | 'bfloat16' | 'float16' | 'auto';
/** The precision forwards actually run in. */
export type ResolvedPrecision = 'float32' | 'bfloat16' | 'float16';

export const PRECISIONS: readonly Precision[] = ['float32', 'bfloat16', 'float16', 'auto'];

/** `value` as a Precision, or a TypeError / RangeError naming `fn` and `name`. */
export function checkPrecision(fn: string, value: unknown, name = 'precision'): Precision {
  return checkOneOf(fn, name, value, PRECISIONS);
}

/**
 * The precision `precision` resolves to on `device`. Throws, naming `fn`, for an unknown name, for
 * 'float16' on a CPU device and for 'bfloat16' on a CUDA device without bfloat16 (before Ampere).
 */
export function resolvePrecision(precision: Precision, device: Device | string = 'cpu', fn = 'resolvePrecision'): ResolvedPrecision {
  const p = checkPrecision(fn, precision);
  if (p === 'float32') return 'float32'; // runs anywhere: the device is checked where it is used
  try {
    return native.resolvePrecision(p, device, fn);
  } catch (err) {
    throw new RangeError((err as Error).message);
  }
}

/** The autocast dtype of a resolved precision (undefined: plain float32). */
export function autocastOf(precision: ResolvedPrecision): 'bfloat16' | 'float16' | undefined {
  return precision === 'float32' ? undefined : precision;
}

/** The CPU features that matter for speed and precision (cpuid), and whether bfloat16 is native here. */
export function cpuFeatures(): { features: string[]; nativeBf16: boolean } {
  return native.cpuFeatures();
}

/**
 * A warning for a precision that runs emulated here, or undefined: bfloat16 on a CPU without native
 * bfloat16 (no AVX-512 BF16 or AMX-BF16) runs LibTorch's reference kernels, correct but slower than
 * float32 (measured on an AVX2 CPU: a 2-D U-Net validation pass 2x, one 3-D V-Net window ~70x).
 */
export function precisionWarning(precision: Precision, device: Device | string = 'cpu'): string | undefined {
  if (precision !== 'bfloat16' || !String(device).startsWith('cpu') || cpuFeatures().nativeBf16) return undefined;
  return "precision bfloat16 is emulated on this CPU (no AVX-512 BF16 or AMX-BF16): expect it to be slower than float32, several times for 3-D networks ('auto' picks float32 here)";
}
