/** The Mean Teacher EMA update (spec 1.3). */
import { native } from '../native.js';
import { Network } from '../nets/network.js';
import { checkFinite, checkInt, checkObject, checkOneOf, rangeError, typeError } from '../validate.js';

export interface EmaOptions {
  /** The decay a (default 0.99). */
  alpha?: number;
  /** With the iteration t, the warm-up rule a_t = min(1 - 1 / (t + 1), a) applies. */
  iteration?: number;
  /** 'parameters' (default) or 'all' (parameters and BatchNorm buffers, as BCP's ACDC code). */
  scope?: 'parameters' | 'all';
}

/** The decay used at iteration t: min(1 - 1/(t + 1), alpha). */
export function emaDecay(alpha: number, iteration?: number): number {
  return iteration === undefined ? alpha : Math.min(1 - 1 / (iteration + 1), alpha);
}

/** teacher = a * teacher + (1 - a) * student, in place. Returns the decay used. */
export function emaUpdate(teacher: Network, student: Network, options?: EmaOptions): number {
  const fn = 'emaUpdate';
  if (!(teacher instanceof Network)) throw typeError(fn, 'teacher', 'a Network', teacher);
  if (!(student instanceof Network)) throw typeError(fn, 'student', 'a Network', student);
  const o = checkObject(fn, 'options', options);
  const alpha = o.alpha === undefined ? 0.99 : checkFinite(fn, 'alpha', o.alpha);
  if (alpha < 0 || alpha > 1) throw rangeError(fn, 'alpha', 'a number in [0, 1]', alpha);
  const iteration = o.iteration === undefined ? undefined : checkInt(fn, 'iteration', o.iteration, 0);
  const scope = o.scope === undefined ? 'parameters' : checkOneOf(fn, 'scope', o.scope, ['parameters', 'all'] as const);
  const a = emaDecay(alpha, iteration);
  native.emaUpdate(teacher.handle(fn), student.handle(fn), a, scope === 'all');
  return a;
}
