/**
 * The benchmark protocol of ../shared/spec/benchmarks.md: the same case run by semiseg and by the PyTorch
 * reference (a persistent python process), alternating blocks, same thread count and shapes; medians,
 * min/max, peak memory, and ratios semiseg / reference (below 1.0: semiseg is faster).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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
