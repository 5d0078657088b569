/**
 * Mixed precision in the trainers (TrainConfig.precision, resolved by resolveConfig): the networks'
 * forwards run under autocast (bfloat16 on CPU or CUDA, float16 on CUDA), while weights, optimizer state,
 * the fused losses' sums and every loss reduction stay float32. float16 also gets a GradScaler.
 */
import type { ForwardOptions } from '../../nets/network.js';
import type { Tensor } from '../../tensor.js';
import { GradScaler } from '../../train/grad-scaler.js';
import type { Optimizer } from '../../train/optimizer.js';
import type { TrainConfig } from '../recipes.js';

/** The forward options of the recipe's precision ({} in float32). */
export function forwardOptions(c: Pick<TrainConfig, 'precision'>): ForwardOptions {
  return c.precision === 'bfloat16' || c.precision === 'float16' ? { autocast: c.precision } : {};
}

/**
 * `t` in float32 for the losses written with ordinary tensor ops (differentiable): `t` itself when it
 * already is float32 / float64, else a new tensor added to `bag`.
 */
export function float32(bag: { add<T extends Tensor>(t: T): T }, t: Tensor): Tensor {
  return t.dtype === 'float32' || t.dtype === 'float64' ? t : bag.add(t.to('float32'));
}

/** Attaches a GradScaler to `optimizer` when the recipe trains in float16. */
export function withLossScaling(optimizer: Optimizer, c: Pick<TrainConfig, 'precision'>): Optimizer {
  if (c.precision === 'float16') optimizer.scaler = new GradScaler();
  return optimizer;
}
