/**
 * Creating tensors: from JS data (nested arrays, numbers, booleans, TypedArrays; always copied) and the
 * factories, which take the shape first: zeros([2, 3], { dtype, device }).
 * Default dtypes: numbers -> float32, booleans -> bool, a TypedArray keeps its own element type.
 */
import { callOp } from './call.js';
import { checkDevice, checkDType, FLOAT_DTYPES, type Device, type DType } from './dtype.js';
import { native, type NativeData } from './native.js';
import { Tensor, wrap } from './tensor.js';
import { checkBool, checkFinite, checkInt, checkKnownKeys, checkObject, checkShape, rangeError, typeError } from './validate.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export type NestedArray<T> = T | NestedArray<T>[];
export type TensorInput =
  | NestedArray<number>
  | NestedArray<boolean>
  | Float32Array
  | Float64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array
  | Uint8ClampedArray
  | BigInt64Array;

interface Resolved {
  dtype: DType;
  device: Device;
  requiresGrad: boolean;
}

function resolveOptions(fn: string, options: unknown, defaultDtype: DType): Resolved {
  const o = checkObject(fn, 'options', options);
  checkKnownKeys(fn, 'options', o, ['dtype', 'device', 'requiresGrad', 'shape']);
  const r = {
    dtype: o.dtype === undefined ? defaultDtype : checkDType(fn, o.dtype),
    device: o.device === undefined ? 'cpu' : checkDevice(fn, o.device),
    requiresGrad: o.requiresGrad === undefined ? false : checkBool(fn, 'requiresGrad', o.requiresGrad),
  };
  // before anything is created (a refused tensor would otherwise be left behind)
  if (r.requiresGrad && !FLOAT_DTYPES.includes(r.dtype))
    throw new TypeError(`${fn}(): option 'requiresGrad' needs a floating-point dtype; only those have gradients, got ${r.dtype}`);
  return r;
}

// The range of each integer dtype, for numbers given as JS values (torch.tensor([...], dtype) refuses what
// does not fit instead of wrapping it).
const INT_RANGE: Partial<Record<DType, [number, number]>> = { uint8: [0, 255], int32: [-(2 ** 31), 2 ** 31 - 1], int64: [-(2 ** 63), 2 ** 63] };

function checkFits(fn: string, values: Float64Array, dtype: DType): void {
  const range = INT_RANGE[dtype];
  if (!range) return;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(v >= range[0] && (dtype === 'int64' ? v < range[1] : v <= range[1])))
      throw new RangeError(`${fn}(): value ${v} (flat index ${i}) cannot be converted to ${dtype} without overflow`);
  }
}

/** A TypedArray the native layer takes as is, with its source dtype; other typed arrays are widened. */
function nativeData(view: ArrayBufferView): [NativeData, DType] {
  // memory shared with other threads is copied first (the native layer reads plain ArrayBuffers only)
  const data = typeof SharedArrayBuffer !== 'undefined' && view.buffer instanceof SharedArrayBuffer && 'slice' in view ? (view as unknown as { slice(): ArrayBufferView }).slice() : view;
  if (data instanceof Float32Array) return [data, 'float32'];
  if (data instanceof Float64Array) return [data, 'float64'];
  if (data instanceof Int32Array) return [data, 'int32'];
  if (data instanceof BigInt64Array) return [data, 'int64'];
  if (data instanceof Uint8Array) return [data, 'uint8'];
  if (data instanceof Uint8ClampedArray) return [new Uint8Array(data), 'uint8'];
  if (data instanceof Int8Array || data instanceof Int16Array || data instanceof Uint16Array)
    return [Int32Array.from(data), 'int32'];
  if (data instanceof Uint32Array) return [BigInt64Array.from(data, (x) => BigInt(x)), 'int64'];
  throw typeError('tensor', 'data', 'an array, a number, a boolean or a numeric TypedArray', data);
}

/** Flattens nested arrays of numbers or booleans, checking that they are rectangular. */
function flatten(data: unknown): { values: (number | boolean)[]; shape: number[] } {
  const shape: number[] = [];
  for (let level: unknown = data; Array.isArray(level); level = level[0]) shape.push(level.length);
  const values: (number | boolean)[] = [];
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number' && typeof v !== 'boolean')
        throw typeError('tensor', `data${path}`, 'a number or a boolean', v);
      values.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth])
      throw rangeError('tensor', `data${path}`, `an array of length ${shape[depth]} (data is ragged)`, v);
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${path}[${i}]`); // holes are undefined: refused
  };
  walk(data, 0, '');
  return { values, shape };
}

/** A new tensor holding a copy of `data`. `options.shape` reshapes flat data. */
export function tensor(data: TensorInput, options?: TensorOptions & { shape?: number[] }): Tensor {
  let src: NativeData;
  let srcDtype: DType;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    [src, srcDtype] = nativeData(data);
    shape = [src.length];
  } else if (typeof data === 'number' || typeof data === 'boolean' || Array.isArray(data)) {
    const flat = flatten(data);
    shape = flat.shape;
    const isBool = flat.values.length > 0 && typeof flat.values[0] === 'boolean';
    flat.values.forEach((v, i) => {
      if (typeof v !== (isBool ? 'boolean' : 'number'))
        throw typeError('tensor', `data (flat index ${i})`, isBool ? 'a boolean like the first' : 'a number like the first', v);
    });
    src = isBool ? Uint8Array.from(flat.values as boolean[], (b) => (b ? 1 : 0)) : Float64Array.from(flat.values as number[]);
    srcDtype = isBool ? 'bool' : 'float64';
  } else {
    throw typeError('tensor', 'data', 'an array, a number, a boolean or a numeric TypedArray', data);
  }
  const o = checkObject('tensor', 'options', options);
  const defaultDtype = srcDtype === 'float64' && !(data instanceof Float64Array) ? 'float32' : srcDtype;
  const { dtype, device, requiresGrad } = resolveOptions('tensor', options, defaultDtype);
  if (src instanceof Float64Array && !ArrayBuffer.isView(data)) checkFits('tensor', src, dtype);
  if (o.shape !== undefined) {
    const want = checkShape('tensor', o.shape);
    const n = want.reduce((a, b) => a * b, 1);
    if (n !== src.length) throw rangeError('tensor', 'shape', `a shape of ${src.length} elements`, `[${want.join(', ')}] (${n} elements)`);
    shape = want;
  }
  return new Tensor(native.fromData(src, shape, srcDtype, dtype, device, requiresGrad));
}

function factory(fn: string, name: string, args: (number | number[] | boolean)[], options: unknown, dtype: DType): Tensor {
  const o = resolveOptions(fn, options, dtype);
  const t = wrap(callOp(name, [...args, o.dtype, o.device]));
  return o.requiresGrad ? t.setRequiresGrad(true) : t;
}

export function zeros(shape: number[], options?: TensorOptions): Tensor {
  return factory('zeros', 'zeros', [checkShape('zeros', shape)], options, 'float32');
}
export function ones(shape: number[], options?: TensorOptions): Tensor {
  return factory('ones', 'ones', [checkShape('ones', shape)], options, 'float32');
}
export function full(shape: number[], value: number | boolean, options?: TensorOptions): Tensor {
  if (typeof value !== 'number' && typeof value !== 'boolean') throw typeError('full', 'value', 'a number or a boolean', value);
  return factory('full', 'full', [checkShape('full', shape), value], options, typeof value === 'boolean' ? 'bool' : 'float32');
}
/** Uniform samples in [0, 1). */
export function rand(shape: number[], options?: TensorOptions): Tensor {
  return factory('rand', 'rand', [checkShape('rand', shape)], options, 'float32');
}
/** Standard normal samples. */
export function randn(shape: number[], options?: TensorOptions): Tensor {
  return factory('randn', 'randn', [checkShape('randn', shape)], options, 'float32');
}
/** Integers drawn uniformly from [low, high) (int64 by default). */
export function randint(shape: number[], low: number, high: number, options?: TensorOptions): Tensor {
  checkInt('randint', 'low', low);
  checkInt('randint', 'high', high, low + 1);
  return factory('randint', 'randint', [checkShape('randint', shape), low, high], options, 'int64');
}
/** [start, end) in steps; arange(n) is [0, n). int64 when every argument is an integer, else float32. */
export function arange(start: number, end?: number, step = 1, options?: TensorOptions): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  checkFinite('arange', 'start', s);
  checkFinite('arange', 'end', e);
  checkFinite('arange', 'step', step);
  if (step === 0) throw rangeError('arange', 'step', 'a non-zero number', step);
  const integral = [s, e, step].every(Number.isInteger);
  return factory('arange', 'arange', [s, e, step], options, integral ? 'int64' : 'float32');
}
/** `steps` evenly spaced values from start to end inclusive. */
export function linspace(start: number, end: number, steps: number, options?: TensorOptions): Tensor {
  checkFinite('linspace', 'start', start);
  checkFinite('linspace', 'end', end);
  checkInt('linspace', 'steps', steps, 0);
  return factory('linspace', 'linspace', [start, end, steps], options, 'float32');
}
