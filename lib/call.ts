/**
 * Calls into the native layer. Async calls start synchronously (so the worker captures this thread's grad
 * mode at call time) and re-stack a rejection on the caller's stack captured before going native, so that
 * it points at user code rather than at the libuv callback that settled it.
 */
import { native, type NativeValue } from './native.js';

export function callOp(name: string, args: NativeValue[]): NativeValue {
  return native.op(name, args);
}

/** Starts `start()` now; a synchronous throw becomes a rejection; errors carry `site`'s stack. */
export function startNative<T>(start: () => Promise<T>, site: Error): Promise<T> {
  let promise: Promise<T>;
  try {
    promise = start();
  } catch (err) {
    promise = Promise.reject(err as Error);
  }
  return promise.catch((err: unknown) => {
    if (err instanceof Error && site.stack) {
      const frames = site.stack.split('\n').slice(1).join('\n');
      err.stack = `${err.name}: ${err.message}\n${frames}`;
    }
    throw err;
  });
}

/** A call-site marker for startNative(), omitting frames above `above`. */
export function callSite(above: (...args: never[]) => unknown): Error {
  const site = new Error();
  Error.captureStackTrace(site, above);
  return site;
}

export function callOpAsync(name: string, args: NativeValue[]): Promise<NativeValue> {
  return startNative(() => native.opAsync(name, args), callSite(callOpAsync));
}
