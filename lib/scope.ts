/**
 * Explicit memory: `tidy(fn)` frees every tensor created inside `fn` except those it returns
 * (or `keep`s); `dispose(x)` frees the tensors in any nesting of arrays and plain objects.
 * Scopes are synchronous, like tf.tidy: an async `fn` is refused, since its tensors outlive the call.
 */
import { checkFunction } from './validate.js';

/** What a scope tracks: anything with an idempotent dispose(). */
export interface Trackable {
  dispose(): void;
  readonly isDisposed: boolean;
}

/** Set by Tensor so that scopes can find tensors inside returned values without importing Tensor. */
export const TRACKABLE = Symbol('semiseg.trackable');

const scopes: Set<Trackable>[] = [];

/** Called by every Tensor at creation. */
export function track(t: Trackable): void {
  scopes[scopes.length - 1]?.add(t);
}

function isTrackable(v: unknown): v is Trackable {
  return typeof v === 'object' && v !== null && TRACKABLE in v;
}

/** The tensors found in a value: a tensor, or arrays / plain objects / Maps of them, nested. */
export function collect(value: unknown, into = new Set<Trackable>(), seen = new Set<unknown>()): Set<Trackable> {
  if (typeof value !== 'object' || value === null || seen.has(value)) return into;
  seen.add(value);
  if (isTrackable(value)) {
    into.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, into, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, into, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, into, seen);
  }
  return into;
}

function isThenable(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs `fn` and frees every tensor it created, except those in its result, which move to the enclosing
 * scope. If `fn` throws, everything it created is freed and the error propagates.
 */
export function tidy<T>(fn: () => T): T {
  checkFunction('tidy', 'fn', fn);
  // refused before it runs: an async body goes on after tidy returns, with the tensors it made disposed
  if ((fn as unknown as { constructor?: { name?: string } }).constructor?.name === 'AsyncFunction')
    throw new TypeError("tidy(): argument 'fn' must be synchronous, got an async function (await outside tidy)");
  const scope = new Set<Trackable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw err;
  }
  scopes.pop();
  const kept = collect(result);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  if (isThenable(result)) {
    // the promise is refused, not awaited: its own failure must not become an unhandled rejection
    (result as unknown as PromiseLike<unknown>).then(undefined, () => undefined);
    throw new TypeError(
      "tidy(): argument 'fn' must be synchronous, got a function that returned a Promise (await outside tidy)",
    );
  }
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of kept) if (scope.has(t)) parent.add(t);
  return result;
}

/** Exempts a tensor from every enclosing tidy scope; it must then be disposed explicitly. */
export function keep<T extends Trackable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** Disposes every tensor found in `value` (a tensor, or arrays / plain objects / Maps of them). */
export function dispose(value: unknown): void {
  for (const t of collect(value)) t.dispose();
}
