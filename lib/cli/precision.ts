/** The `--precision` option of `semiseg evaluate`, `predict` and `train`. */
import type { Device } from '../dtype.js';
import { PRECISIONS, precisionWarning, resolvePrecision, type Precision, type ResolvedPrecision } from '../precision.js';
import { UsageError } from './options.js';

export const PRECISION_HELP = "forward precision: float32, bfloat16, float16 (CUDA only) or auto (bfloat16 where the CPU or GPU runs it natively)";

/** The precision `value` asks for on `device`, or a UsageError naming --precision. */
export function precisionOption(value: string, device: Device | string): { requested: Precision; chosen: ResolvedPrecision } {
  if (!(PRECISIONS as readonly string[]).includes(value)) throw new UsageError(`--precision: expected one of ${PRECISIONS.join(', ')}, got '${value}'`);
  const requested = value as Precision;
  try {
    return { requested, chosen: resolvePrecision(requested, device, 'precision') };
  } catch (err) {
    throw new UsageError(`--precision: ${(err as Error).message.replace(/^precision\(\): /, '')}`);
  }
}

/** Writes `semiseg: warning: ...` to stderr when `chosen` runs emulated on `device` (precisionWarning). */
export function warnIfEmulated(chosen: Precision, device: Device | string): void {
  const warning = precisionWarning(chosen, device);
  if (warning) process.stderr.write(`semiseg: warning: ${warning}\n`);
}
