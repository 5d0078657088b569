/**
 * `npm run bench -- [--device cpu|cuda] [--cases a,b,...] [--threads N] [--iterations N] [--full] [--parity]`
 *
 * Every case of the protocol (../shared/spec/benchmarks.md) for semiseg and the PyTorch reference, alternating
 * blocks with the same LibTorch, thread count, shapes and seed: the fused ops (ops.ts), whole BCP / Co-DA
 * training steps (steps.ts) and whole-volume inference (infer.ts, CPU). Writes one JSON file and one
 * markdown table (medians, min-max, peak memory, ratios semiseg / reference) to bench-results/.
 *
 * `--parity` is the parity mode instead: one BCP (ACDC, LA) and one Co-DA iteration from identical
 * weights, batch, box and seed on both sides must give the same loss (1e-4 relative) and the same updated
 * weights (1e-4); prints the table and exits 1 when one differs.
 */
import { buildInfo, setNumThreads } from '../lib/index.js';
import { inferCases, runInference } from './infer.js';
import { OP_CASES, runOps } from './ops.js';
import { PARITY_RECIPES, stepParity, type ParityResult } from './parity.js';
import { stepCases, runSteps } from './steps.js';
import { Reference, machine, parseBenchArgs, referencePythonPath, runMain, writeReport, type CaseResult } from './harness.js';

async function parityMode(threads: number, python: string, full: boolean, cases: string[]): Promise<void> {
  setNumThreads(threads);
  const shapes = stepCases(full);
  const ref = new Reference(python, 'bench_steps.py');
  const rows: ParityResult[] = [];
  try {
    await ref.send({ cmd: 'setup', threads, device: 'cpu' });
    for (const name of cases) {
      if (!PARITY_RECIPES[name]) throw new Error(`--parity: unknown case '${name}' (one of ${Object.keys(PARITY_RECIPES).join(', ')})`);
      rows.push(await stepParity(ref, name, shapes[name].shape));
    }
  } finally {
    ref.close();
  }
  const ok = (r: ParityResult) => r.loss.relDiff < 1e-4 && r.weights.maxAbsDiff < 1e-4;
  const md = [
    '| case | shape | loss semiseg | loss reference | rel. diff | weights max abs diff (where) | tensors | parity |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.case} | ${r.shape.join('x')} | ${r.loss.semiseg.toPrecision(8)} | ${r.loss.reference.toPrecision(8)} | ${r.loss.relDiff.toExponential(1)} | ${r.weights.maxAbsDiff.toExponential(1)} (${r.weights.worst}) | ${r.weights.compared} | ${ok(r) ? 'yes' : '**NO**'} |`,
    ),
  ].join('\n');
  console.log(md);
  if (!rows.every(ok)) process.exit(1);
}

runMain(async () => {
  const o = parseBenchArgs();
  const python = referencePythonPath();
  if (o.flags.has('--parity')) return parityMode(o.threads, python, o.full, o.cases ?? Object.keys(PARITY_RECIPES));
  const groups = { ops: Object.keys(OP_CASES), steps: Object.keys(stepCases(o.full)), infer: Object.keys(inferCases(o.full)) };
  const all = Object.values(groups).flat();
  for (const c of o.cases ?? []) if (!all.includes(c)) throw new Error(`--cases: unknown case '${c}' (one of ${all.join(', ')})`);
  const pick = (names: string[]) => (o.cases ? names.filter((n) => o.cases!.includes(n)) : names);
  const results: CaseResult[] = [];
  const meta: Record<string, unknown> = { bench: 'all', device: o.device, threads: o.threads, iterations: o.iterations, warmup: o.warmup, full: o.full, machine: machine(), semiseg: buildInfo() };
  if (pick(groups.ops).length) {
    const r = await runOps({ ...o, cases: pick(groups.ops) }, python);
    results.push(...r.results);
    meta.ops = r.meta;
  }
  if (pick(groups.steps).length) {
    const r = await runSteps({ ...o, cases: pick(groups.steps) }, python);
    results.push(...r.results);
    meta.steps = r.meta;
  }
  if (pick(groups.infer).length) {
    if (o.device === 'cpu') {
      const r = await runInference({ ...o, cases: pick(groups.infer) }, python);
      results.push(...r.results);
      meta.infer = r.meta;
    } else console.error('note: the inference cases run on the CPU only; skipped with --device cuda');
  }
  console.log(writeReport(`bench-${o.device}`, meta, results));
});
