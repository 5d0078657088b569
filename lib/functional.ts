/** Functions over several tensors, and the nn-style ops with options (interpolate, conv). */
import { callOp } from './call.js';
import { Tensor, operand, tensorArg, wrap } from './tensor.js';
import {
  checkBool,
  checkDims,
  checkInt,
  checkObject,
  checkOneOf,
  rangeError,
  typeError,
} from './validate.js';

function tensorList(fn: string, tensors: unknown) {
  if (!Array.isArray(tensors)) throw typeError(fn, 'tensors', 'an array of Tensors', tensors);
  if (tensors.length === 0) throw rangeError(fn, 'tensors', 'a non-empty array of Tensors', tensors);
  return tensors.map((t, i) => tensorArg(fn, `tensors[${i}]`, t));
}

/** Concatenates along an existing dimension. */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  return wrap(callOp('cat', [tensorList('cat', tensors), checkInt('cat', 'dim', dim)]));
}

/** Stacks along a new dimension. */
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return wrap(callOp('stack', [tensorList('stack', tensors), checkInt('stack', 'dim', dim)]));
}

/** Element-wise `condition ? input : other` with broadcasting; `condition` must be bool. */
export function where(condition: Tensor, input: Tensor | number | boolean, other: Tensor | number | boolean): Tensor {
  return wrap(
    callOp('where', [tensorArg('where', 'condition', condition), operand('where', input, 'input'), operand('where', other)]),
  );
}

export function matmul(input: Tensor, other: Tensor): Tensor {
  return wrap(callOp('matmul', [tensorArg('matmul', 'input', input), tensorArg('matmul', 'other', other)]));
}

export function oneHot(input: Tensor, numClasses = -1): Tensor {
  return wrap(callOp('oneHot', [tensorArg('oneHot', 'input', input), checkInt('oneHot', 'numClasses', numClasses, -1)]));
}

export const INTERPOLATE_MODES = ['nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear'] as const;
export type InterpolateMode = (typeof INTERPOLATE_MODES)[number];

export interface InterpolateOptions {
  /** Output spatial size (one int for every spatial dim, or one per dim). */
  size?: number | number[];
  /** Multiplier of every spatial size (floor of size * factor), passed to the kernel as PyTorch does. */
  scaleFactor?: number;
  mode?: InterpolateMode;
  /** Linear modes only. */
  alignCorners?: boolean;
}

/** torch.nn.functional.interpolate for (N, C, L), (N, C, H, W) and (N, C, D, H, W) inputs. */
export function interpolate(input: Tensor, options: InterpolateOptions): Tensor {
  const fn = 'interpolate';
  const o = checkObject(fn, 'options', options);
  if ((o.size === undefined) === (o.scaleFactor === undefined))
    throw rangeError(fn, 'options', 'an object with exactly one of size and scaleFactor', o);
  const size = o.size === undefined ? undefined : checkDims(fn, 'size', o.size);
  size?.forEach((s, i) => {
    if (s <= 0) throw rangeError(fn, `size[${i}]`, 'an integer > 0', s);
  });
  let scale: number | undefined;
  if (o.scaleFactor !== undefined) {
    if (typeof o.scaleFactor !== 'number') throw typeError(fn, 'scaleFactor', 'a number > 0', o.scaleFactor);
    if (!(o.scaleFactor > 0) || !Number.isFinite(o.scaleFactor)) throw rangeError(fn, 'scaleFactor', 'a number > 0', o.scaleFactor);
    scale = o.scaleFactor;
  }
  const mode = o.mode === undefined ? 'nearest' : checkOneOf(fn, 'mode', o.mode, INTERPOLATE_MODES);
  const align = o.alignCorners === undefined ? undefined : checkBool(fn, 'alignCorners', o.alignCorners);
  return wrap(callOp('interpolate', [tensorArg(fn, 'input', input), size, scale, mode, align]));
}

/**
 * torch.nn.functional.pad with mode 'constant': `padding` holds (left, right) pairs from the last
 * dimension backwards; negative amounts crop.
 */
export function pad(input: Tensor, padding: number[], value = 0): Tensor {
  const fn = 'pad';
  if (!Array.isArray(padding) || padding.some((p) => !Number.isInteger(p))) throw typeError(fn, 'padding', 'an array of integers', padding);
  if (typeof value !== 'number') throw typeError(fn, 'value', 'a number', value);
  return wrap(callOp(fn, [tensorArg(fn, 'input', input), padding, value]));
}

export interface ConvOptions {
  bias?: Tensor;
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}

/** 2-D or 3-D convolution (by the input's rank), as torch.nn.functional.conv2d / conv3d. */
export function conv(input: Tensor, weight: Tensor, options?: ConvOptions): Tensor {
  const fn = 'conv';
  const o = checkObject(fn, 'options', options);
  return wrap(
    callOp(fn, [
      tensorArg(fn, 'input', input),
      tensorArg(fn, 'weight', weight),
      o.bias === undefined ? undefined : tensorArg(fn, 'bias', o.bias),
      o.stride === undefined ? undefined : checkDims(fn, 'stride', o.stride),
      o.padding === undefined ? undefined : checkDims(fn, 'padding', o.padding),
      o.dilation === undefined ? undefined : checkDims(fn, 'dilation', o.dilation),
      o.groups === undefined ? undefined : checkInt(fn, 'groups', o.groups, 1),
    ]),
  );
}
