/**
 * Tensor: a TypeScript handle on one LibTorch tensor. Methods are camelCase versions of PyTorch's and
 * return new tensors (views share storage, as in PyTorch). Memory is explicit: call dispose(), or create
 * tensors inside tidy(). Reading values copies them into a fresh TypedArray.
 */
import { callOp, callOpAsync } from './call.js';
import { checkDevice, checkDType, DTYPES, isDType, type Device, type DType } from './dtype.js';
import { native, type NativeData, type NativeTensorHandle, type NativeValue } from './native.js';
import { TRACKABLE, track, type Trackable } from './scope.js';
import { checkBool, checkDims, checkInt, checkIntList, checkObject, typeError } from './validate.js';

export type Scalar = number | boolean;
/** Values returned by toArray()/data(): float16/bfloat16 widen to Float32Array, int64 is BigInt64Array. */
export type TensorData = NativeData;

export class Tensor implements Trackable {
  readonly [TRACKABLE] = true;
  #handle: NativeTensorHandle | null;
  #shape: number[] | undefined;
  #dtype: DType | undefined;
  #device: Device | undefined;

  /** @internal Wraps a native handle; use the factories (tensor, zeros, ...) instead. */
  constructor(handle: NativeTensorHandle) {
    if (!(handle instanceof native.TensorHandle)) throw typeError('Tensor', 'handle', 'a native tensor handle', handle);
    this.#handle = handle;
    track(this);
  }

  /** @internal The native handle, or an Error naming the op and argument when disposed. */
  handle(fn = 'Tensor', name = 'input'): NativeTensorHandle {
    if (this.#handle === null) throw new Error(`${fn}(): argument '${name}' is a disposed tensor`);
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Frees the native memory now. Idempotent. */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }

  get shape(): number[] {
    this.#shape ??= this.handle('shape').shape();
    return [...this.#shape];
  }
  get dtype(): DType {
    return (this.#dtype ??= this.handle('dtype').dtype() as DType);
  }
  get device(): Device {
    return (this.#device ??= this.handle('device').device() as Device);
  }
  get rank(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get requiresGrad(): boolean {
    return this.handle('requiresGrad').requiresGrad();
  }
  /** Sets requires_grad in place (floating-point tensors only) and returns this tensor. */
  setRequiresGrad(flag = true): this {
    callOp('setRequiresGrad', [this.handle('setRequiresGrad'), checkBool('setRequiresGrad', 'flag', flag)]);
    return this;
  }

  /** The accumulated gradient as a new tensor, or null when there is none. */
  get grad(): Tensor | null {
    const g = callOp('grad', [this.handle('grad')]);
    return g === undefined ? null : wrap(g);
  }
  zeroGrad(): void {
    callOp('zeroGrad', [this.handle('zeroGrad')]);
  }
  backward(gradient?: Tensor, options?: { retainGraph?: boolean }): void {
    const o = checkObject('backward', 'options', options);
    const g = gradient === undefined ? undefined : tensorArg('backward', 'gradient', gradient);
    const retain = o.retainGraph === undefined ? undefined : checkBool('backward', 'retainGraph', o.retainGraph);
    callOp('backward', [this.handle('backward'), g, retain]);
  }
  /** backward() on semiseg's compute thread: the event loop keeps turning while gradients are computed. */
  async backwardAsync(gradient?: Tensor, options?: { retainGraph?: boolean }): Promise<void> {
    const o = checkObject('backwardAsync', 'options', options);
    const g = gradient === undefined ? undefined : tensorArg('backwardAsync', 'gradient', gradient);
    const retain = o.retainGraph === undefined ? undefined : checkBool('backwardAsync', 'retainGraph', o.retainGraph);
    await callOpAsync('backward', [this.handle('backwardAsync'), g, retain]);
  }
  detach(): Tensor {
    return this.#op('detach');
  }

  // ---- reading values --------------------------------------------------------------------------
  /** The values, row-major, in a fresh TypedArray (a copy). */
  toArray(): TensorData {
    return native.toData(this.handle('toArray'));
  }
  /** Same as toArray(). */
  data(): TensorData {
    return native.toData(this.handle('data'));
  }
  /** toArray() off the JS thread (useful for large GPU tensors). */
  dataAsync(): Promise<TensorData> {
    return native.toDataAsync(this.handle('dataAsync'));
  }
  /**
   * The single value of a one-element tensor. An int64 value beyond JavaScript's safe integers (2^53) is a
   * RangeError rather than a silently rounded number: toArray() gives it exactly (BigInt64Array).
   */
  item(): number | boolean {
    const v = callOp('item', [this.handle('item')]) as number | boolean;
    if (typeof v === 'number' && this.dtype === 'int64' && !Number.isSafeInteger(v))
      throw new RangeError(`item(): the int64 value ${(this.toArray() as BigInt64Array)[0]} is beyond JavaScript's safe integers (2^53); read it with toArray(), a BigInt64Array`);
    return v;
  }

  /** A copy with another dtype and/or on another device (this tensor when nothing changes). */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    let dtype: DType | undefined;
    let device: Device | undefined;
    if (typeof target === 'string') {
      if (isDType(target)) dtype = target;
      else if (!/^(cpu|cuda)(:\d+)?$/.test(target)) throw new RangeError(`to(): argument 'target' must be a dtype (${DTYPES.join(', ')}) or a device ('cpu', 'cuda', 'cuda:N'), got '${target}'`);
      else device = checkDevice('to', target, 'target');
    } else {
      const o = checkObject('to', 'target', target);
      if (o.dtype !== undefined) dtype = checkDType('to', o.dtype);
      if (o.device !== undefined) device = checkDevice('to', o.device);
    }
    return this.#op('to', dtype, device);
  }

  // ---- element-wise ----------------------------------------------------------------------------
  add(other: Tensor | Scalar, alpha?: number): Tensor {
    return this.#op('add', operand('add', other), alpha);
  }
  sub(other: Tensor | Scalar, alpha?: number): Tensor {
    return this.#op('sub', operand('sub', other), alpha);
  }
  mul(other: Tensor | Scalar): Tensor {
    return this.#op('mul', operand('mul', other));
  }
  div(other: Tensor | Scalar): Tensor {
    return this.#op('div', operand('div', other));
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return this.#op('pow', operand('pow', exponent, 'exponent'));
  }
  maximum(other: Tensor | Scalar): Tensor {
    return this.#op('maximum', operand('maximum', other));
  }
  minimum(other: Tensor | Scalar): Tensor {
    return this.#op('minimum', operand('minimum', other));
  }
  remainder(other: Tensor | Scalar): Tensor {
    return this.#op('remainder', operand('remainder', other));
  }
  eq(other: Tensor | Scalar): Tensor {
    return this.#op('eq', operand('eq', other));
  }
  ne(other: Tensor | Scalar): Tensor {
    return this.#op('ne', operand('ne', other));
  }
  lt(other: Tensor | Scalar): Tensor {
    return this.#op('lt', operand('lt', other));
  }
  le(other: Tensor | Scalar): Tensor {
    return this.#op('le', operand('le', other));
  }
  gt(other: Tensor | Scalar): Tensor {
    return this.#op('gt', operand('gt', other));
  }
  ge(other: Tensor | Scalar): Tensor {
    return this.#op('ge', operand('ge', other));
  }
  logicalAnd(other: Tensor | Scalar): Tensor {
    return this.#op('logicalAnd', operand('logicalAnd', other));
  }
  logicalOr(other: Tensor | Scalar): Tensor {
    return this.#op('logicalOr', operand('logicalOr', other));
  }
  neg(): Tensor {
    return this.#op('neg');
  }
  abs(): Tensor {
    return this.#op('abs');
  }
  exp(): Tensor {
    return this.#op('exp');
  }
  log(): Tensor {
    return this.#op('log');
  }
  sqrt(): Tensor {
    return this.#op('sqrt');
  }
  rsqrt(): Tensor {
    return this.#op('rsqrt');
  }
  square(): Tensor {
    return this.#op('square');
  }
  reciprocal(): Tensor {
    return this.#op('reciprocal');
  }
  sigmoid(): Tensor {
    return this.#op('sigmoid');
  }
  tanh(): Tensor {
    return this.#op('tanh');
  }
  relu(): Tensor {
    return this.#op('relu');
  }
  floor(): Tensor {
    return this.#op('floor');
  }
  ceil(): Tensor {
    return this.#op('ceil');
  }
  round(): Tensor {
    return this.#op('round');
  }
  sign(): Tensor {
    return this.#op('sign');
  }
  logicalNot(): Tensor {
    return this.#op('logicalNot');
  }
  isNan(): Tensor {
    return this.#op('isNan');
  }
  /** Clamps to [min, max]; either bound may be null, not both. */
  clamp(min: number | null, max?: number | null): Tensor {
    const lo = min ?? undefined;
    const hi = max ?? undefined;
    if (lo !== undefined && typeof lo !== 'number') throw typeError('clamp', 'min', 'a number or null', lo);
    if (hi !== undefined && typeof hi !== 'number') throw typeError('clamp', 'max', 'a number or null', hi);
    return this.#op('clamp', lo, hi);
  }

  // ---- reductions ------------------------------------------------------------------------------
  /** Sum over `dim` (an int or ints; all when absent). */
  sum(dim?: number | number[], keepdim = false): Tensor {
    return this.#reduce('sum', dim === undefined ? undefined : checkDims('sum', 'dim', dim), keepdim);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return this.#reduce('mean', dim === undefined ? undefined : checkDims('mean', 'dim', dim), keepdim);
  }
  /** The maximum over everything, or the maximum values along `dim`. */
  max(dim?: number, keepdim = false): Tensor {
    return this.#reduce('max', optDim('max', dim), keepdim);
  }
  min(dim?: number, keepdim = false): Tensor {
    return this.#reduce('min', optDim('min', dim), keepdim);
  }
  /** int64 indices of the maximum (of the flattened tensor when `dim` is absent). */
  argmax(dim?: number, keepdim = false): Tensor {
    return this.#reduce('argmax', optDim('argmax', dim), keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return this.#reduce('argmin', optDim('argmin', dim), keepdim);
  }
  any(): Tensor {
    return this.#op('any');
  }
  all(): Tensor {
    return this.#op('all');
  }
  softmax(dim: number): Tensor {
    return this.#op('softmax', checkInt('softmax', 'dim', dim));
  }
  logSoftmax(dim: number): Tensor {
    return this.#op('logSoftmax', checkInt('logSoftmax', 'dim', dim));
  }

  // ---- shape and indexing ----------------------------------------------------------------------
  reshape(shape: number[]): Tensor {
    return this.#op('reshape', checkIntList('reshape', 'shape', shape, -1));
  }
  permute(dims: number[]): Tensor {
    return this.#op('permute', checkIntList('permute', 'dims', dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return this.#op('transpose', checkInt('transpose', 'dim0', dim0), checkInt('transpose', 'dim1', dim1));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return this.#op(
      'narrow',
      checkInt('narrow', 'dim', dim),
      checkInt('narrow', 'start', start),
      checkInt('narrow', 'length', length, 0),
    );
  }
  /** Python-style slicing along one dim: [start, end) with step; negative indices count from the end. */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return this.#op(
      'slice',
      checkInt('slice', 'dim', dim),
      start == null ? undefined : checkInt('slice', 'start', start),
      end == null ? undefined : checkInt('slice', 'end', end),
      checkInt('slice', 'step', step, 1),
    );
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return this.#op('indexSelect', checkInt('indexSelect', 'dim', dim), tensorArg('indexSelect', 'index', index));
  }
  gather(dim: number, index: Tensor): Tensor {
    return this.#op('gather', checkInt('gather', 'dim', dim), tensorArg('gather', 'index', index));
  }
  squeeze(dim?: number): Tensor {
    return this.#op('squeeze', optDim('squeeze', dim));
  }
  unsqueeze(dim: number): Tensor {
    return this.#op('unsqueeze', checkInt('unsqueeze', 'dim', dim));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return this.#op('flatten', checkInt('flatten', 'startDim', startDim), checkInt('flatten', 'endDim', endDim));
  }
  expand(shape: number[]): Tensor {
    return this.#op('expand', checkIntList('expand', 'shape', shape, -1));
  }
  flip(dims: number | number[]): Tensor {
    return this.#op('flip', checkDims('flip', 'dims', dims));
  }
  /** numpy.rot90: k quarter turns from dims[0] towards dims[1]. */
  rot90(k = 1, dims: [number, number] = [0, 1]): Tensor {
    return this.#op('rot90', checkInt('rot90', 'k', k), checkIntList('rot90', 'dims', dims));
  }
  contiguous(): Tensor {
    return this.#op('contiguous');
  }
  clone(): Tensor {
    return this.#op('clone');
  }
  /**
   * Copies `source`'s values into this tensor in place, outside autograd (same shape; the dtype is
   * converted). For restoring trainable tensors that an optimizer already holds.
   */
  copyFrom(source: Tensor): this {
    callOp('copyFrom', [this.handle('copyFrom'), tensorArg('copyFrom', 'source', source)]);
    return this;
  }
  /** One-hot encoding of int64 labels in a new last dimension (int64). */
  oneHot(numClasses = -1): Tensor {
    return this.#op('oneHot', checkInt('oneHot', 'numClasses', numClasses, -1));
  }

  // ---- linear algebra --------------------------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return this.#op('matmul', tensorArg('matmul', 'other', other));
  }
  /** matmul() off the JS thread: the event loop keeps turning while it runs. */
  async matmulAsync(other: Tensor): Promise<Tensor> {
    return wrap(await callOpAsync('matmul', [this.handle('matmulAsync'), tensorArg('matmulAsync', 'other', other)]));
  }

  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
  /** console.log and util.inspect show toString() (never the values, which may be millions). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
  /** JSON.stringify gives the description too, not an empty object. */
  toJSON(): string {
    return this.toString();
  }

  #op(name: string, ...args: NativeValue[]): Tensor {
    return wrap(callOp(name, [this.handle(name), ...args]));
  }
  #reduce(name: string, dim: number | number[] | undefined, keepdim: boolean): Tensor {
    return this.#op(name, dim, checkBool(name, 'keepdim', keepdim));
  }
}

// ---- helpers shared with the functional API -------------------------------------------------------

/** A Tensor from a native result that must be a tensor handle. */
export function wrap(v: NativeValue): Tensor {
  return new Tensor(v as NativeTensorHandle);
}

/** The live handle of a Tensor argument, or a TypeError / Error naming the argument. */
export function tensorArg(fn: string, name: string, v: unknown): NativeTensorHandle {
  if (!(v instanceof Tensor)) throw typeError(fn, name, 'a Tensor', v);
  return v.handle(fn, name);
}

/** A Tensor, a number or a boolean operand. */
export function operand(fn: string, v: unknown, name = 'other'): NativeValue {
  if (v instanceof Tensor) return v.handle(fn, name);
  if (typeof v === 'number' || typeof v === 'boolean') return v;
  throw typeError(fn, name, 'a Tensor, a number or a boolean', v);
}

function optDim(fn: string, dim: unknown): number | undefined {
  return dim === undefined ? undefined : checkInt(fn, 'dim', dim);
}

