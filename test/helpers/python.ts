/** Runs a reference script of benchmarks/reference with the reference python; throws with its stderr. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { referencePython, repoRoot } from './reference.js';

export function runPython(script: string, ...args: string[]): string {
  if (!referencePython) throw new Error('no python with torch for the reference');
  const r = spawnSync(referencePython, [join(repoRoot, 'benchmarks/reference', script), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Runs a snippet of Python with the reference python and returns its stdout. */
export function runPythonCode(code: string): string {
  if (!referencePython) throw new Error('no python with torch for the reference');
  const r = spawnSync(referencePython, ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

/** max |a - b| over two equal-shaped float tensors' values. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
