/**
 * Argument validation for the public API: one message template for every check,
 * `fn(): argument 'name' must be <expected>, got <received>`, as a TypeError (wrong kind of value)
 * or a RangeError (right kind, outside the allowed values).
 */

/** A short description of any received value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'bigint') return `the bigint ${v}n`;
  if (typeof v === 'boolean' || typeof v === 'symbol') return String(v);
  if (typeof v === 'function') return 'a function';
  // a short list of numbers (a size, a pair of betas) is shown whole: 'got an array [40, 40]'
  if (Array.isArray(v) && v.length > 0 && v.length <= 8 && v.every((x) => typeof x === 'number')) return `an array [${v.map((x) => describe(x)).join(', ')}]`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  const name = (v as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

export function typeError(fn: string, name: string, expected: string, received: unknown): TypeError {
  return new TypeError(`${fn}(): argument '${name}' must be ${expected}, got ${describe(received)}`);
}

export function rangeError(fn: string, name: string, expected: string, received: unknown): RangeError {
  return new RangeError(`${fn}(): argument '${name}' must be ${expected}, got ${describe(received)}`);
}

export function checkInt(fn: string, name: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number') throw typeError(fn, name, 'an integer', v);
  if (!Number.isSafeInteger(v)) throw rangeError(fn, name, 'an integer', v);
  if (v < min || v > max) {
    const bounds = max === Infinity ? `>= ${min}` : min === -Infinity ? `<= ${max}` : `between ${min} and ${max}`;
    throw rangeError(fn, name, `an integer ${bounds}`, v);
  }
  return v;
}

export function checkNumber(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(fn, name, 'a number', v);
  return v;
}

export function checkFinite(fn: string, name: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(fn, name, 'a finite number', v);
  if (!Number.isFinite(v)) throw rangeError(fn, name, 'a finite number', v);
  return v;
}

export function checkBool(fn: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw typeError(fn, name, 'a boolean', v);
  return v;
}

export function checkIntList(fn: string, name: string, v: unknown, min = -Infinity): number[] {
  if (!Array.isArray(v)) throw typeError(fn, name, 'an array of integers', v);
  // an index loop: forEach skips the holes of a sparse array ([3, , 4])
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== 'number') throw typeError(fn, `${name}[${i}]`, 'an integer', x);
    if (!Number.isSafeInteger(x) || x < min)
      throw rangeError(fn, `${name}[${i}]`, min === -Infinity ? 'an integer' : `an integer >= ${min}`, x);
  }
  return v as number[];
}

/** A shape: an array of integer sizes >= 0. */
export function checkShape(fn: string, v: unknown, name = 'shape'): number[] {
  return checkIntList(fn, name, v, 0);
}

/** An integer or an array of integers, as an array. */
export function checkDims(fn: string, name: string, v: unknown): number[] {
  return typeof v === 'number' ? [checkInt(fn, name, v)] : checkIntList(fn, name, v);
}

export function checkOneOf<T extends string>(fn: string, name: string, v: unknown, allowed: readonly T[]): T {
  const expected = `one of ${allowed.map((a) => `'${a}'`).join(', ')}`;
  if (typeof v !== 'string') throw typeError(fn, name, expected, v);
  if (!allowed.includes(v as T)) throw rangeError(fn, name, expected, v);
  return v as T;
}

export function checkObject(fn: string, name: string, v: unknown): Record<string, unknown> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw typeError(fn, name, 'an options object', v);
  return v as Record<string, unknown>;
}

/** A non-empty file path. */
export function checkPath(fn: string, v: unknown, name = 'path'): string {
  if (typeof v !== 'string' || v === '') throw typeError(fn, name, 'a file path', v);
  return v;
}

/** Refuses keys outside `allowed` (a typo in an option name must not pass silently). */
export function checkKnownKeys(fn: string, name: string, o: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k))
      throw new RangeError(`${fn}(): unknown key '${k}' in argument '${name}' (expected one of ${allowed.join(', ')})`);
}

export function checkFunction(fn: string, name: string, v: unknown): (...args: never[]) => unknown {
  if (typeof v !== 'function') throw typeError(fn, name, 'a function', v);
  return v as (...args: never[]) => unknown;
}

/**
 * `err` with its leading "inner(): " replaced by "fn(): " when it is one of `inner` (a public function's
 * errors name it, not the helper that failed inside it); other errors unchanged.
 */
export function relabel(err: unknown, fn: string, inner: readonly string[]): unknown {
  if (err instanceof Error)
    for (const name of inner)
      if (err.message.startsWith(`${name}(): `)) return withMessage(err, `${fn}(): ${err.message.slice(name.length + 4)}`);
  return err;
}

/** `err` (the same object: its class and fields stay) with `message`, also in its stack. */
export function withMessage(err: Error, message: string): Error {
  if (typeof err.stack === 'string') err.stack = err.stack.replace(err.message, () => message);
  err.message = message;
  return err;
}
