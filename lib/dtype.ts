/** dtypes and devices as semiseg names them, and their checks. */
import { checkOneOf, rangeError, typeError } from './validate.js';

export const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int64', 'uint8', 'bool'] as const;
export type DType = (typeof DTYPES)[number];

/** `cpu`, `cuda` or `cuda:N`. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && (DTYPES as readonly string[]).includes(v);
}

export function checkDType(fn: string, v: unknown, name = 'dtype'): DType {
  return checkOneOf(fn, name, v, DTYPES);
}

export function isDevice(v: unknown): v is Device {
  return typeof v === 'string' && (v === 'cpu' || v === 'cuda' || /^cuda:\d{1,3}$/.test(v));
}

export function checkDevice(fn: string, v: unknown, name = 'device'): Device {
  const expected = "'cpu', 'cuda' or 'cuda:N'";
  if (typeof v !== 'string') throw typeError(fn, name, expected, v);
  if (!isDevice(v)) throw rangeError(fn, name, expected, v);
  return v;
}
