/** State dicts in TypeScript: plain objects of tensors, converted to and from the native [names, handles]. */
import type { NativeNamed } from './native.js';
import { Tensor, wrap } from './tensor.js';
import { typeError } from './validate.js';

export type StateDict = Record<string, Tensor>;

export function namedFromNative([names, handles]: NativeNamed): StateDict {
  const out: StateDict = {};
  names.forEach((n, i) => (out[n] = wrap(handles[i])));
  return out;
}

/** Validates a state dict argument (a plain object or a Map of tensors) and returns [names, handles]. */
export function namedToNative(fn: string, name: string, dict: unknown): NativeNamed {
  const entries: [string, unknown][] =
    dict instanceof Map
      ? [...dict.entries()]
      : typeof dict === 'object' && dict !== null && !Array.isArray(dict)
        ? Object.entries(dict)
        : (() => {
            throw typeError(fn, name, 'an object of Tensors', dict);
          })();
  const names: string[] = [];
  const handles = entries.map(([k, v]) => {
    if (!(v instanceof Tensor)) throw typeError(fn, `${name}['${k}']`, 'a Tensor', v);
    names.push(String(k));
    return v.handle(fn, `${name}['${k}']`);
  });
  return [names, handles];
}
