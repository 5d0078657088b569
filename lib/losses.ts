/**
 * Losses of the spec (1.2): cross-entropy, the Dice variants as explicit options, 0.5 * (CE + Dice) and
 * the softmax-MSE consistency. Losses take (input, target): input (N, C, ...spatial) logits (or
 * probabilities for diceLoss without `softmax`), target (N, ...spatial) integer labels.
 */
import { callOp } from './call.js';
import { Tensor, tensorArg, wrap } from './tensor.js';
import { checkBool, checkNumber, checkObject, rangeError } from './validate.js';

export interface DiceOptions {
  /** Denominators sum(p^2) + sum(y^2) (SSL4MIS, default) or, when false, sum(p) + sum(y). */
  squared?: boolean;
  /** Dice per (sample, class) then averaged (LA recipes); default false: sums over the whole batch. */
  perSample?: boolean;
  /** Added to numerator and denominator; default 1e-5. */
  smooth?: number;
  /** Average over background too (default true, as SSL4MIS). */
  includeBackground?: boolean;
  /** Region weights (N, ...spatial) restricting every sum (BCP's mixed supervision). */
  weights?: Tensor;
}

export interface DiceLossOptions extends DiceOptions {
  /** Apply softmax over the class dimension first (input are logits). Default false: input are probabilities. */
  softmax?: boolean;
}

function diceArgs(fn: string, options: unknown) {
  const o = checkObject(fn, 'options', options);
  const smooth = o.smooth === undefined ? 1e-5 : checkNumber(fn, 'smooth', o.smooth);
  if (!(smooth >= 0)) throw rangeError(fn, 'smooth', 'a number >= 0', smooth);
  return {
    o,
    weights: o.weights === undefined ? undefined : tensorArg(fn, 'weights', o.weights),
    squared: o.squared === undefined ? true : checkBool(fn, 'squared', o.squared),
    perSample: o.perSample === undefined ? false : checkBool(fn, 'perSample', o.perSample),
    smooth,
    includeBackground: o.includeBackground === undefined ? true : checkBool(fn, 'includeBackground', o.includeBackground),
  };
}

/** Cross-entropy, the mean over pixels; with `weights`, sum(w * ce) / (sum(w) + 1e-16). */
export function crossEntropy(input: Tensor, target: Tensor, options?: { weights?: Tensor }): Tensor {
  const fn = 'crossEntropy';
  const o = checkObject(fn, 'options', options);
  return wrap(
    callOp(fn, [
      tensorArg(fn, 'input', input),
      tensorArg(fn, 'target', target),
      o.weights === undefined ? undefined : tensorArg(fn, 'weights', o.weights),
    ]),
  );
}

/** Dice loss: 1 - (2 sum(p y) + s) / (sum(p^2) + sum(y^2) + s) per class, averaged over classes. */
export function diceLoss(input: Tensor, target: Tensor, options?: DiceLossOptions): Tensor {
  const fn = 'diceLoss';
  const a = diceArgs(fn, options);
  const softmax = a.o.softmax === undefined ? false : checkBool(fn, 'softmax', a.o.softmax);
  const x = tensorArg(fn, 'input', input);
  const probs = softmax ? wrap(callOp('softmax', [x, 1])) : undefined;
  try {
    return wrap(
      callOp(fn, [probs ? probs.handle() : x, tensorArg(fn, 'target', target), a.weights, a.squared, a.perSample, a.smooth, a.includeBackground]),
    );
  } finally {
    probs?.dispose();
  }
}

/** 0.5 * (crossEntropy + diceLoss(softmax(input))): the supervised loss of most 2D recipes. */
export function ceDiceLoss(input: Tensor, target: Tensor, options?: DiceOptions): Tensor {
  const fn = 'ceDiceLoss';
  const a = diceArgs(fn, options);
  return wrap(
    callOp(fn, [tensorArg(fn, 'input', input), tensorArg(fn, 'target', target), a.weights, a.squared, a.perSample, a.smooth, a.includeBackground]),
  );
}

/** Mean squared difference of the class softmaxes (Mean Teacher consistency). */
export function softmaxMse(input: Tensor, target: Tensor): Tensor {
  return wrap(callOp('softmaxMse', [tensorArg('softmaxMse', 'input', input), tensorArg('softmaxMse', 'target', target)]));
}
