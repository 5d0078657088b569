/**
 * The fused ops of the semi-supervised methods (one native pass each, CPU and CUDA kernels, fused
 * backward): BCP's bidirectional copy-paste and region-weighted CE + Dice, Co-DA's class-wise marginal
 * alignment, class marginals and over-expectation cross-entropy. `ops.composite` holds the same
 * computations written with ordinary tensor ops, as the published PyTorch code builds them: the fused
 * ops are tested and benchmarked against those. Every result is a new tensor the caller owns.
 */
import { callOp } from './call.js';
import { tensor } from './create.js';
import { ceDiceLoss, type DiceOptions } from './losses.js';
import type { NativeValue } from './native.js';
import { Tensor, tensorArg, wrap } from './tensor.js';
import { checkBool, checkIntList, checkKnownKeys, checkNumber, checkObject, checkOneOf, rangeError, typeError } from './validate.js';

/** An axis-aligned box on the spatial axes: `start` and `size` per axis, (H, W) or (D, H, W). */
export interface Box {
  start: number[];
  size: number[];
}

export const PAIRINGS = ['same', 'inFirst', 'outFirst'] as const;
export type Pairing = (typeof PAIRINGS)[number];

export interface CopyPasteOptions {
  /** Region weight of pseudo-labelled pixels, in [0, 1]; ground truth weighs 1. Default 0.5 (BCP). */
  alpha?: number;
  /**
   * Which samples each mix pairs. 'same' (default): both mixes pair labeled[i] with unlabeled[i] (N
   * outputs each). 'inFirst': the in-mix uses the first half of the batch, the out-mix the second half
   * (N / 2 each; BCP's ACDC code). 'outFirst': the other way round (BCP's LA code).
   */
  pairing?: Pairing;
}

export interface CopyPasteResult {
  /** Unlabeled outside the box, labeled inside; its target: pseudo-labels outside (weight alpha), labels inside (1). */
  mixedIn: Tensor;
  targetIn: Tensor;
  weightIn: Tensor;
  /** Labeled outside the box, unlabeled inside; its target: labels outside (weight 1), pseudo-labels inside (alpha). */
  mixedOut: Tensor;
  targetOut: Tensor;
  weightOut: Tensor;
}

function boxTensor(fn: string, box: unknown): { handle: NativeValue; owned?: Tensor } {
  if (box instanceof Tensor) return { handle: tensorArg(fn, 'box', box) };
  const rows = Array.isArray(box) ? box : [box];
  if (rows.length === 0) throw rangeError(fn, 'box', 'a box or a non-empty array of boxes', box);
  const flat: number[] = [];
  let dims = -1;
  rows.forEach((r, i) => {
    const name = Array.isArray(box) ? `box[${i}]` : 'box';
    const o = checkObject(fn, name, r);
    if (o.start === undefined || o.size === undefined) throw typeError(fn, name, 'a { start, size } box', r);
    const start = checkIntList(fn, `${name}.start`, o.start, 0);
    const size = checkIntList(fn, `${name}.size`, o.size, 0);
    if (start.length !== size.length || (dims >= 0 && start.length !== dims)) {
      throw rangeError(fn, name, 'start and size with one value per spatial axis, the same for every box', r);
    }
    dims = start.length;
    flat.push(...start, ...size);
  });
  const owned = tensor(flat, { dtype: 'int64', shape: [rows.length, 2 * dims] });
  return { handle: owned.handle(fn, 'box'), owned };
}

function list(v: NativeValue): Tensor[] {
  return (v as NativeValue[]).map(wrap);
}

function copyPaste(
  name: string,
  labeled: Tensor,
  labels: Tensor,
  unlabeled: Tensor,
  pseudoLabels: Tensor,
  box: Box | Box[] | Tensor,
  options?: CopyPasteOptions,
): CopyPasteResult {
  const fn = 'bidirectionalCopyPaste';
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, ['alpha', 'pairing']);
  const alpha = o.alpha === undefined ? 0.5 : checkNumber(fn, 'alpha', o.alpha);
  if (!(alpha >= 0 && alpha <= 1)) throw rangeError(fn, 'alpha', 'a number in [0, 1]', o.alpha);
  const pairing = PAIRINGS.indexOf(o.pairing === undefined ? 'same' : checkOneOf(fn, 'pairing', o.pairing, PAIRINGS));
  const args = [
    tensorArg(fn, 'labeled', labeled),
    tensorArg(fn, 'labels', labels),
    tensorArg(fn, 'unlabeled', unlabeled),
    tensorArg(fn, 'pseudoLabels', pseudoLabels),
  ];
  const b = boxTensor(fn, box);
  try {
    const [mixedIn, targetIn, weightIn, mixedOut, targetOut, weightOut] = list(callOp(name, [...args, b.handle, alpha, pairing]));
    return { mixedIn, targetIn, weightIn, mixedOut, targetOut, weightOut };
  } finally {
    b.owned?.dispose();
  }
}

/**
 * BCP's bidirectional copy-paste in one pass: both mixed inputs, both mixed integer targets and both
 * region-weight maps. Images (N, C, H, W) or (N, C, D, H, W); labels (N, ...spatial) integers; `box`
 * one box for the batch, one per mixed sample, or an integer (B, 2 * dims) tensor of [start..., size...].
 * Differentiable in both image batches.
 */
export function bidirectionalCopyPaste(
  labeled: Tensor,
  labels: Tensor,
  unlabeled: Tensor,
  pseudoLabels: Tensor,
  box: Box | Box[] | Tensor,
  options?: CopyPasteOptions,
): CopyPasteResult {
  return copyPaste('bidirectionalCopyPaste', labeled, labels, unlabeled, pseudoLabels, box, options);
}

export interface RegionWeightedOptions {
  /** Region weights (N, ...spatial); absent: 1 everywhere (then CE is the plain mean). */
  weights?: Tensor;
  /** 'squared' denominators sum(w p^2) + sum(w y) (SSL4MIS, BCP ACDC; default) or 'linear' sum(w p) + sum(w y) (BCP LA). */
  dice?: 'squared' | 'linear';
  /** Dice per (sample, class), then the mean (BCP LA). Default false. */
  perSample?: boolean;
  /** Added to the Dice numerator and denominator. Default 1e-5. */
  smooth?: number;
  /** Average the Dice over the background class too. Default true. */
  includeBackground?: boolean;
}

function regionArgs(fn: string, options: unknown) {
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, ['weights', 'dice', 'perSample', 'smooth', 'includeBackground']);
  const smooth = o.smooth === undefined ? 1e-5 : checkNumber(fn, 'smooth', o.smooth);
  if (!(smooth >= 0)) throw rangeError(fn, 'smooth', 'a number >= 0', o.smooth);
  return {
    weights: o.weights === undefined ? undefined : (o.weights as Tensor),
    squared: (o.dice === undefined ? 'squared' : checkOneOf(fn, 'dice', o.dice, ['squared', 'linear'] as const)) === 'squared',
    perSample: o.perSample === undefined ? false : checkBool(fn, 'perSample', o.perSample),
    smooth,
    includeBackground: o.includeBackground === undefined ? true : checkBool(fn, 'includeBackground', o.includeBackground),
  };
}

/**
 * 0.5 * (CE_w + Dice_w) on logits (N, C, ...spatial) against integer targets: CE_w = sum(w ce) / (sum(w) + 1e-16),
 * Dice_w the Dice loss with every sum weighted by w. One pass forward, one pass backward.
 */
export function regionWeightedCeDice(input: Tensor, target: Tensor, options?: RegionWeightedOptions): Tensor {
  const fn = 'regionWeightedCeDice';
  const a = regionArgs(fn, options);
  return wrap(
    callOp(fn, [
      tensorArg(fn, 'input', input),
      tensorArg(fn, 'target', target),
      a.weights === undefined ? undefined : tensorArg(fn, 'weights', a.weights),
      a.squared,
      a.perSample,
      a.smooth,
      a.includeBackground,
    ]),
  );
}

function epsArg(fn: string, options: unknown): number {
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, ['eps']);
  const eps = o.eps === undefined ? 1e-6 : checkNumber(fn, 'eps', o.eps);
  if (!(eps > 0)) throw rangeError(fn, 'eps', 'a number > 0', o.eps);
  return eps;
}

function align(name: string, input: Tensor, labeledMarginal: Tensor, unlabeledMarginal: Tensor, options?: { eps?: number }): Tensor {
  const fn = 'marginalAlign';
  return wrap(
    callOp(name, [
      tensorArg(fn, 'input', input),
      tensorArg(fn, 'labeledMarginal', labeledMarginal),
      tensorArg(fn, 'unlabeledMarginal', unlabeledMarginal),
      epsArg(fn, options),
    ]),
  );
}

/**
 * Co-DA's class-wise marginal alignment of probabilities (N, C, ...spatial):
 * q = p * labeledMarginal / (unlabeledMarginal + eps), renormalised over classes per pixel (eps default 1e-6).
 * Differentiable in `input`; the marginals are constants.
 */
export function marginalAlign(input: Tensor, labeledMarginal: Tensor, unlabeledMarginal: Tensor, options?: { eps?: number }): Tensor {
  return align('marginalAlign', input, labeledMarginal, unlabeledMarginal, options);
}

export interface ClassMarginals {
  /** (C) per-class mean probability over the counted pixels (0 when none counts). */
  means: Tensor;
  /** () the number of counted pixels. */
  count: Tensor;
}

function marginals(name: string, input: Tensor, options?: { mask?: Tensor }): ClassMarginals {
  const fn = 'classMarginals';
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, ['mask']);
  const [means, count] = list(
    callOp(name, [tensorArg(fn, 'input', input), o.mask === undefined ? undefined : tensorArg(fn, 'mask', o.mask)]),
  );
  return { means, count };
}

/** Per-class means of probabilities (N, C, ...spatial) over all pixels, or those where `mask` (N, ...spatial) is true. */
export function classMarginals(input: Tensor, options?: { mask?: Tensor }): ClassMarginals {
  return marginals('classMarginals', input, options);
}

export interface OverExpectation {
  /** Mean CE of the logits against the pseudo-labels over the kept pixels; 0 (zero gradient) when none is kept. */
  loss: Tensor;
  /** () kept pixels. */
  count: Tensor;
  /** (C) mean confidence of the pixels pseudo-labelled c (0 where none): what the expectation EMA tracks. */
  classConfidence: Tensor;
  /** (C) pixels pseudo-labelled c. */
  classCount: Tensor;
}

function overExpectation(name: string, input: Tensor, aligned: Tensor, expectations: Tensor): OverExpectation {
  const fn = 'overExpectationCe';
  const [loss, count, classConfidence, classCount] = list(
    callOp(name, [tensorArg(fn, 'input', input), tensorArg(fn, 'aligned', aligned), tensorArg(fn, 'expectations', expectations)]),
  );
  return { loss, count, classConfidence, classCount };
}

/**
 * Co-DA's over-expectation cross-entropy: pseudo-label = argmax of `aligned`, confidence = its max; a
 * pixel counts when its confidence reaches `expectations` (C) of its class. Differentiable in `input` (logits).
 */
export function overExpectationCe(input: Tensor, aligned: Tensor, expectations: Tensor): OverExpectation {
  return overExpectation('overExpectationCe', input, aligned, expectations);
}

/** The same computations from ordinary tensor ops (the published code's way): references for tests and benchmarks. */
export const composite = {
  bidirectionalCopyPaste(
    labeled: Tensor,
    labels: Tensor,
    unlabeled: Tensor,
    pseudoLabels: Tensor,
    box: Box | Box[] | Tensor,
    options?: CopyPasteOptions,
  ): CopyPasteResult {
    return copyPaste('composite.bidirectionalCopyPaste', labeled, labels, unlabeled, pseudoLabels, box, options);
  },
  regionWeightedCeDice(input: Tensor, target: Tensor, options?: RegionWeightedOptions): Tensor {
    const a = regionArgs('regionWeightedCeDice', options);
    const dice: DiceOptions = { squared: a.squared, perSample: a.perSample, smooth: a.smooth, includeBackground: a.includeBackground };
    return ceDiceLoss(input, target, a.weights === undefined ? dice : { ...dice, weights: a.weights });
  },
  marginalAlign(input: Tensor, labeledMarginal: Tensor, unlabeledMarginal: Tensor, options?: { eps?: number }): Tensor {
    return align('composite.marginalAlign', input, labeledMarginal, unlabeledMarginal, options);
  },
  classMarginals(input: Tensor, options?: { mask?: Tensor }): ClassMarginals {
    return marginals('composite.classMarginals', input, options);
  },
  overExpectationCe(input: Tensor, aligned: Tensor, expectations: Tensor): OverExpectation {
    return overExpectation('composite.overExpectationCe', input, aligned, expectations);
  },
};
