/**
 * Runs the PyTorch reference (benchmarks/reference/*.py) on cases built in a test, and compares results.
 * The reference python is SEMISEG_PYTHON, else this checkout's .venv; tests skip when neither has torch.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Tensor } from '../../lib/index.js';

export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

function findPython(): string | null {
  const candidates = [process.env.SEMISEG_PYTHON, join(repoRoot, '.venv/bin/python3')].filter(Boolean) as string[];
  for (const py of candidates) {
    if (!existsSync(py)) continue;
    if (spawnSync(py, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}

export const referencePython = findPython();

export interface RefArray {
  shape: number[];
  dtype: string;
  data: string;
}

const INTEGRAL = new Set(['int32', 'int64', 'uint8', 'bool']);

/** A tensor's values as the reference reads them: float64 or int64, base64. */
export function encode(t: Tensor): RefArray {
  const values = t.toArray();
  const wide = INTEGRAL.has(t.dtype)
    ? BigInt64Array.from(values as ArrayLike<number | bigint>, (v) => BigInt(v))
    : Float64Array.from(values as ArrayLike<number>);
  return { shape: t.shape, dtype: t.dtype, data: Buffer.from(wide.buffer).toString('base64') };
}

export function decodeValues(a: RefArray): Float64Array {
  const buf = Buffer.from(a.data, 'base64');
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  return INTEGRAL.has(a.dtype) ? Float64Array.from(new BigInt64Array(ab), Number) : new Float64Array(ab);
}

export interface RefCase {
  op: string;
  inputs: Tensor[];
  args?: Record<string, unknown>;
}

export type RefResult = { outputs: RefArray[] } | { error: string };

/** Runs `script` (a file of benchmarks/reference) once over all cases. */
export function runReference(script: string, cases: RefCase[]): RefResult[] {
  if (!referencePython) throw new Error('no python with torch for the reference');
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-ref-'));
  try {
    const input = join(dir, 'cases.json');
    const output = join(dir, 'results.json');
    writeFileSync(input, JSON.stringify(cases.map((c) => ({ op: c.op, inputs: c.inputs.map(encode), args: c.args ?? {} }))));
    const run = spawnSync(referencePython, [join(repoRoot, 'benchmarks/reference', script), input, output], {
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(`reference ${script} failed: ${run.stderr}`);
    return JSON.parse(readFileSync(output, 'utf8')) as RefResult[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Largest |a - b| / (atol + rtol * |b|); <= 1 means within tolerance. NaNs must match. */
export function closeness(actual: ArrayLike<number | bigint>, expected: Float64Array, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const b = expected[i];
    if (Number.isNaN(a) || Number.isNaN(b)) {
      if (Number.isNaN(a) !== Number.isNaN(b)) return Infinity;
      continue;
    }
    if (a === b) continue;
    worst = Math.max(worst, Math.abs(a - b) / (atol + rtol * Math.abs(b)));
  }
  return worst;
}

/**
 * Asserts `actual` has the shape of `expected` (a tensor read back from a reference script) and its
 * values within `closeness` <= 1; `what` names it in the message. A missing side fails.
 */
export function assertClose(
  t: { true(v: boolean, m?: string): void },
  what: string,
  actual: Tensor | null | undefined,
  expected: Tensor | undefined,
  atol: number,
  rtol: number,
): void {
  if (!actual || !expected) return t.true(false, `${what}: missing`);
  t.true(actual.shape.join() === expected.shape.join(), `${what}: shape ${actual.shape} vs ${expected.shape}`);
  const worst = closeness(actual.toArray() as Float32Array, Float64Array.from(expected.toArray() as Float32Array), atol, rtol);
  t.true(worst <= 1, `${what}: ${worst.toFixed(2)} x the tolerance`);
}
