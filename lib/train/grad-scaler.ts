/**
 * Dynamic loss scaling for float16 mixed-precision training (torch.amp.GradScaler's rule): float16
 * gradients underflow to zero below ~6e-8, so the loss is multiplied by a large scale before backward and
 * the gradients are divided by it again before the optimizer step. A step whose gradients overflowed
 * (inf / NaN) is skipped and the scale halved; after `growthInterval` good steps in a row it doubles.
 * Weights, optimizer state and the unscaled gradients stay float32. bfloat16 has float32's range and
 * needs none of this.
 */
import type { Tensor } from '../tensor.js';
import { checkInt, checkNumber, checkObject, rangeError } from '../validate.js';
import type { Optimizer } from './optimizer.js';

export interface GradScalerOptions {
  /** Initial scale (default 2^16). */
  initScale?: number;
  /** Factor after `growthInterval` finite steps in a row (default 2). */
  growthFactor?: number;
  /** Factor after a step with non-finite gradients (default 0.5). */
  backoffFactor?: number;
  /** Finite steps in a row before the scale grows (default 2000). */
  growthInterval?: number;
}

function inRange(fn: string, name: string, v: unknown, lo: number, hi: number, loOpen: boolean): number {
  const x = checkNumber(fn, name, v);
  if (!(Number.isFinite(x) && (loOpen ? x > lo : x >= lo) && x <= hi)) throw rangeError(fn, name, `a number in ${loOpen ? '(' : '['}${lo}, ${hi}]`, v);
  return x;
}

/** What a resumed run needs of a scaler (saved in last.ckpt with the training state). */
export interface GradScalerState {
  scale: number;
  /** Finite steps in a row since the scale last changed. */
  good: number;
  skipped: number;
}

export class GradScaler {
  /** The current scale. */
  scale: number;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  #good = 0;
  /** Steps skipped so far because a gradient was not finite. */
  skipped = 0;

  constructor(options?: GradScalerOptions) {
    const fn = 'GradScaler';
    const o = checkObject(fn, 'options', options);
    this.scale = o.initScale === undefined ? 2 ** 16 : inRange(fn, 'initScale', o.initScale, 0, Number.MAX_VALUE, true);
    this.growthFactor = o.growthFactor === undefined ? 2 : inRange(fn, 'growthFactor', o.growthFactor, 1, Number.MAX_VALUE, false);
    this.backoffFactor = o.backoffFactor === undefined ? 0.5 : inRange(fn, 'backoffFactor', o.backoffFactor, 0, 1, true);
    this.growthInterval = o.growthInterval === undefined ? 2000 : checkInt(fn, 'growthInterval', o.growthInterval, 1, 1e9);
  }

  /** The scale and its counters, for a checkpoint. */
  state(): GradScalerState {
    return { scale: this.scale, good: this.#good, skipped: this.skipped };
  }

  /** Continues from a {@link state}: a resumed run scales, skips and grows as an uninterrupted one. */
  restore(state: GradScalerState): void {
    const fn = 'GradScaler.restore';
    const s = checkObject(fn, 'state', state);
    const scale = inRange(fn, 'state.scale', s.scale, 0, Number.MAX_VALUE, true);
    const good = checkInt(fn, 'state.good', s.good, 0, 1e9);
    const skipped = checkInt(fn, 'state.skipped', s.skipped, 0, Number.MAX_SAFE_INTEGER);
    [this.scale, this.#good, this.skipped] = [scale, good, skipped];
  }

  /**
   * Backward of `loss * scale`, the gradients unscaled, then the optimizer's step unless a gradient is
   * not finite; updates the scale. Clears the gradients first. Returns whether the step was taken.
   */
  async step(optimizer: Optimizer, loss: Tensor): Promise<boolean> {
    optimizer.zeroGrad();
    const scaled = loss.mul(this.scale);
    try {
      await scaled.backwardAsync();
    } finally {
      scaled.dispose();
    }
    const finite = optimizer.native.unscaleGrads(this.scale);
    if (finite) {
      await optimizer.stepAsync();
      if (++this.#good >= this.growthInterval) {
        this.scale *= this.growthFactor;
        this.#good = 0;
      }
    } else {
      optimizer.zeroGrad();
      this.scale *= this.backoffFactor;
      this.#good = 0;
      this.skipped++;
    }
    return finite;
  }
}
