/**
 * Calls into the native op table. Async calls capture the caller's stack before going native, so that
 * a rejected Promise points at user code rather than at the libuv callback that settled it.
 */
import { native, type NativeValue } from './native.js';

export function callOp(name: string, args: NativeValue[]): NativeValue {
  return native.op(name, args);
}

/** Re-stacks a native error on the call site captured before the work was queued. */
export function withCallSite<T>(promise: Promise<T>, site: Error): Promise<T> {
  return promise.catch((err: unknown) => {
    if (err instanceof Error && site.stack) {
      const frames = site.stack.split('\n').slice(1).join('\n');
      err.stack = `${err.name}: ${err.message}\n${frames}`;
    }
    throw err;
  });
}

export function callOpAsync(name: string, args: NativeValue[]): Promise<NativeValue> {
  const site = new Error();
  Error.captureStackTrace(site, callOpAsync);
  let promise: Promise<NativeValue>;
  try {
    // Queued synchronously: the worker captures this thread's grad mode now (noGrad scopes are synchronous).
    promise = native.opAsync(name, args);
  } catch (err) {
    promise = Promise.reject(err as Error);
  }
  return withCallSite(promise, site);
}
