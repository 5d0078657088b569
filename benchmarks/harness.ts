/**
 * The benchmark protocol of ../shared/spec/benchmarks.md: the same case run by semiseg and by the PyTorch
 * reference (a persistent python process), alternating blocks, same thread count and shapes; medians,
 * min/max, peak memory, and ratios semiseg / reference (below 1.0: semiseg is faster).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { cpuCache } from '../lib/index.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface CaseResult {
  case: string;
  shape: number[];
  semiseg: Stats;
  reference: Stats;
  ratio: number;
  /** Where the case has one: the same work built from ordinary tensor ops in semiseg, and fused / composite. */
  composite?: Stats;
  compositeRatio?: number;
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  n: number;
  peakRssMiB: number;
}

export function stats(times: number[], peakRssKb: number): Stats {
  const s = [...times].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return {
    median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2,
    min: s[0],
    max: s[s.length - 1],
    n: s.length,
    peakRssMiB: peakRssKb / 1024,
  };
}

/** The reference server (benchmarks/reference/bench_server.py), one JSON line in, one out. */
export class Reference {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterator<string>;

  constructor(python: string, script = 'bench_server.py') {
    this.proc = spawn(python, [join(repoRoot, 'benchmarks/reference', script)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }

  async send<T>(command: Record<string, unknown>): Promise<T> {
    this.proc.stdin.write(`${JSON.stringify(command)}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error('the reference process ended');
    return JSON.parse(next.value) as T;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

export function machine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` };
}

export function writeReport(name: string, meta: Record<string, unknown>, results: CaseResult[]): string {
  const dir = join(repoRoot, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const base = join(dir, `${name}-${stamp}`);
  writeFileSync(`${base}.json`, JSON.stringify({ ...meta, results }, null, 2));
  const ms = (s: number) => (s * 1000).toFixed(1);
  const withComposite = results.some((r) => r.composite);
  const range = (s: Stats) => `${ms(s.median)} (${ms(s.min)}-${ms(s.max)})`;
  const rows = results.map(
    (r) =>
      `| ${r.case} | ${r.shape.join('x')} | ${range(r.semiseg)} | ${withComposite ? `${r.composite ? `${range(r.composite)} | **${(r.compositeRatio ?? 0).toFixed(2)}**` : '- | -'} | ` : ''}${range(r.reference)} | **${r.ratio.toFixed(2)}** | ${r.semiseg.peakRssMiB.toFixed(0)} / ${r.reference.peakRssMiB.toFixed(0)} |`,
  );
  const md = [
    `# ${name}: semiseg vs PyTorch reference`,
    '',
    `${JSON.stringify(meta)}`,
    '',
    withComposite
      ? '| case | shape | semiseg ms median (min-max) | semiseg composite ms | fused / composite | reference ms median (min-max) | ratio | peak RSS MiB (semiseg / ref) |'
      : '| case | shape | semiseg ms median (min-max) | reference ms median (min-max) | ratio | peak RSS MiB (semiseg / ref) |',
    withComposite ? '|---|---|---|---|---|---|---|---|' : '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(`${base}.md`, md);
  return md;
}

/** Options every benchmark takes: `--device cpu|cuda --threads N --iterations N --full --cases a,b`. */
export interface BenchOptions {
  device: 'cpu' | 'cuda';
  threads: number;
  iterations: number;
  warmup: number;
  /** The spec's full shapes instead of the CPU-sized ones. */
  full: boolean;
  /** Case names to run (all when undefined). */
  cases?: string[];
  /**
   * Precisions of the inference and step cases (`--precisions`, default float32,auto): 'float32',
   * 'bfloat16', 'float16', 'auto', 'uncached' (float32 with the large-block CPU cache off: what `cpuCache`
   * gains), and for inference 'unfolded' (float32 without BatchNorm folding). Rows
   * other than float32 are named `<case>@<precision>`; their reference runs in the precision semiseg
   * resolved (float32, or torch.autocast in bfloat16 / float16).
   */
  precisions: string[];
}

export const BENCH_PRECISIONS = ['float32', 'bfloat16', 'float16', 'auto', 'unfolded', 'uncached'] as const;

/** Runs `fn` with the large-block CPU cache off when `p` is 'uncached' (and on again after). */
export async function withCacheSetting<T>(p: string, fn: () => Promise<T>): Promise<T> {
  if (p !== 'uncached') return fn();
  cpuCache.setEnabled(false);
  try {
    return await fn();
  } finally {
    cpuCache.setEnabled(true);
  }
}

/** The row name of `name` in precision `p`. */
export function variantName(name: string, p: string): string {
  return p === 'float32' ? name : `${name}@${p}`;
}

export function parseBenchArgs(argv = process.argv.slice(2)): BenchOptions & { flags: Set<string> } {
  const value = (name: string) => {
    const i = argv.indexOf(name);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
    return v;
  };
  const positive = (name: string, fallback: number) => {
    const v = value(name);
    const n = v === undefined ? fallback : Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const device = (value('--device') ?? 'cpu') as 'cpu' | 'cuda';
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`--device must be cpu or cuda, got '${device}'`);
  const cases = value('--cases')
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return {
    device,
    threads: positive('--threads', 2),
    iterations: positive('--iterations', 10),
    warmup: 3,
    full: argv.includes('--full'),
    cases,
    precisions: (value('--precisions') ?? 'float32,auto').split(',').map((p) => {
      const q = p.trim();
      if (!(BENCH_PRECISIONS as readonly string[]).includes(q)) throw new Error(`--precisions: '${q}' is not one of ${BENCH_PRECISIONS.join(', ')}`);
      return q;
    }),
    flags: new Set(argv.filter((a) => a.startsWith('--'))),
  };
}

/** The reference python: SEMISEG_PYTHON, else this checkout's .venv. */
export function referencePythonPath(): string {
  const python = process.env.SEMISEG_PYTHON ?? join(repoRoot, '.venv/bin/python3');
  if (!existsSync(python)) throw new Error(`no reference python at ${python} (run npm run setup or set SEMISEG_PYTHON)`);
  return python;
}

/** Times `run` (warm-up first), synchronising with `sync` before each clock read; seconds. */
export async function timeRuns(run: () => unknown, n: number, warmup: number, sync: () => void): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await run();
  sync();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await run();
    sync();
    out.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return out;
}

/** True when `url` (import.meta.url) is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && fileURLToPath(url) === process.argv[1];
}

/** Runs a benchmark script's main, printing an error in one line and exiting 1 on failure. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
}
