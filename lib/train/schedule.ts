/**
 * Learning-rate schedules of the spec (1.3) as plain data (so checkpoints record them) and their value at
 * an iteration: constant; poly: base * (1 - it / maxIterations)^power; step: base * gamma^(it // every).
 */
import { checkFinite, checkInt, checkObject, checkOneOf, rangeError } from '../validate.js';

export type Schedule =
  | { kind: 'constant'; base: number }
  | { kind: 'poly'; base: number; maxIterations: number; power: number }
  | { kind: 'step'; base: number; every: number; gamma: number };

export function constant(base: number): Schedule {
  return checkSchedule({ kind: 'constant', base });
}
export function poly(base: number, maxIterations: number, power = 0.9): Schedule {
  return checkSchedule({ kind: 'poly', base, maxIterations, power });
}
export function step(base: number, every: number, gamma = 0.1): Schedule {
  return checkSchedule({ kind: 'step', base, every, gamma });
}

export function checkSchedule(s: unknown): Schedule {
  const fn = 'schedule';
  const o = checkObject(fn, 'schedule', s);
  const kind = checkOneOf(fn, 'kind', o.kind, ['constant', 'poly', 'step'] as const);
  const base = checkFinite(fn, 'base', o.base);
  if (base < 0) throw rangeError(fn, 'base', 'a learning rate >= 0', base);
  if (kind === 'constant') return { kind, base };
  if (kind === 'poly')
    return { kind, base, maxIterations: checkInt(fn, 'maxIterations', o.maxIterations, 1), power: checkFinite(fn, 'power', o.power) };
  return { kind, base, every: checkInt(fn, 'every', o.every, 1), gamma: checkFinite(fn, 'gamma', o.gamma) };
}

/** The learning rate at iteration `it` (0-based, as the published loops count). */
export function lrAt(s: Schedule, it: number): number {
  checkInt('lrAt', 'it', it, 0);
  switch (s.kind) {
    case 'constant':
      return s.base;
    case 'poly':
      return s.base * Math.pow(Math.max(0, 1 - it / s.maxIterations), s.power);
    case 'step':
      return s.base * Math.pow(s.gamma, Math.floor(it / s.every));
  }
}
