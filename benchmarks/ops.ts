/**
 * Fused-op benchmarks: each op forward + backward at the spec's shapes, three ways: the fused op, the
 * same work from ordinary tensor ops in semiseg (ops.composite), and that composite in PyTorch
 * (benchmarks/reference/bench_ops.py). Targets: fused >= 2x faster than the composite on CPU, >= 3x on
 * GPU, and on GPU >= 70 % of the device-to-device copy bandwidth measured in the same run.
 *   node dist/benchmarks/ops.js [--device cpu|cuda] [--threads N] [--iterations N] [--cases a,b]
 * (also part of `npm run bench`).
 */
import { cuda, manualSeed, ops, rand, randint, randn, setNumThreads, tidy } from '../lib/index.js';
import { Reference, isMain, machine, parseBenchArgs, referencePythonPath, runMain, stats, timeRuns, writeReport, type BenchOptions, type CaseResult } from './harness.js';

/** The cases and their shapes (the spec's, on CPU too: each op is fast enough). */
export const OP_CASES: Record<string, number[]> = {
  'copy-paste-acdc': [24, 1, 256, 256],
  'copy-paste-la': [8, 1, 112, 112, 80],
  'ce-dice-acdc': [12, 4, 256, 256],
  'ce-dice-la': [4, 2, 112, 112, 80],
  'marginal-align': [12, 4, 256, 256],
  'over-expectation-ce': [12, 4, 256, 256],
};

type Impl = typeof ops | typeof ops.composite;

// One forward + backward of `name` with implementation `impl`, on inputs made once.
function makeCase(name: string, shape: number[], device: 'cpu' | 'cuda'): (impl: Impl) => void {
  const [n, c, ...sp] = shape;
  const on = { device };
  const x = randn(shape, on).setRequiresGrad();
  const t = randint([n, ...sp], 0, Math.max(c, 2), on);
  if (name.startsWith('copy-paste')) {
    const u = randn(shape, on).setRequiresGrad();
    const box = { start: sp.map((s) => Math.floor(s / 6)), size: sp.map((s) => Math.floor((s * 2) / 3)) };
    const g = randn([n / 2, c, ...sp], on);
    const pairing = name.endsWith('la') ? 'outFirst' : 'inFirst';
    return (impl) =>
      tidy(() => {
        const m = impl.bidirectionalCopyPaste(x, t, u, t, box, { pairing });
        m.mixedIn.mul(g).sum().add(m.mixedOut.mul(g).sum()).backward();
        x.zeroGrad();
        u.zeroGrad();
      });
  }
  const w = rand([n, ...sp], on).gt(0.5).to('float32').mul(0.5).add(0.5);
  const q = randn(shape, on).mul(2).softmax(1);
  if (name.startsWith('ce-dice')) {
    const o: ops.RegionWeightedOptions = name.endsWith('acdc') ? { weights: w, smooth: 1e-10 } : { weights: w, dice: 'linear', perSample: true };
    return (impl) => tidy(() => (impl.regionWeightedCeDice(x, t, o).backward(), x.zeroGrad()));
  }
  if (name === 'marginal-align') {
    const p = q.detach().setRequiresGrad();
    const piL = rand([c], on).add(1).div(c);
    const piU = rand([c], on).add(1).div(c);
    const r = randn(shape, on);
    return (impl) => tidy(() => (impl.marginalAlign(p, piL, piU).backward(r), p.zeroGrad()));
  }
  const e = rand([c], on).mul(0).add(0.6);
  return (impl) => tidy(() => (impl.overExpectationCe(x, q, e).loss.backward(), x.zeroGrad()));
}

// Device-to-device copy bandwidth (bytes read + written per second) of a 256 MiB float32 tensor.
async function copyBandwidth(o: BenchOptions, sync: () => void): Promise<number> {
  const src = randn([64, 1024, 1024], { device: o.device });
  const times = await timeRuns(() => src.clone().dispose(), 10, o.warmup, sync);
  src.dispose();
  return (2 * 64 * 1024 * 1024 * 4) / stats(times, 0).median;
}

/** Runs the selected op cases (fused, semiseg composite, PyTorch composite), alternating blocks. */
export async function runOps(o: BenchOptions, python = referencePythonPath()): Promise<{ results: CaseResult[]; meta: Record<string, unknown> }> {
  const selected = o.cases ?? Object.keys(OP_CASES);
  for (const name of selected) if (!OP_CASES[name]) throw new Error(`--cases: unknown op case '${name}' (one of ${Object.keys(OP_CASES).join(', ')})`);
  if (o.device === 'cuda' && !cuda.isAvailable()) throw new Error('--device cuda: this build has no CUDA or no GPU is visible');
  const sync = () => {
    if (o.device === 'cuda') cuda.synchronize();
  };
  setNumThreads(o.threads);
  // The ops are synchronous calls: on the CPU they run on the JS thread with one intra-op thread
  // (cpp/tensor/runtime.h), so the reference runs them with one thread too.
  const threads = o.device === 'cpu' ? 1 : o.threads;
  const ref = new Reference(python, 'bench_ops.py');
  try {
    const refInfo = await ref.send<{ torch: string; threads: number }>({ cmd: 'setup', threads, device: o.device });
    const bandwidth = o.device === 'cuda' ? await copyBandwidth(o, sync) : undefined;
    const results: CaseResult[] = [];
    const half = Math.ceil(o.iterations / 2);
    for (const name of selected) {
      const shape = OP_CASES[name];
      manualSeed(0);
      const run = makeCase(name, shape, o.device);
      const fused: number[] = [];
      const comp: number[] = [];
      const theirs: number[] = [];
      let refRss = 0;
      for (let round = 0; round < 2; round++) {
        fused.push(...(await timeRuns(() => run(ops), half, o.warmup, sync)));
        comp.push(...(await timeRuns(() => run(ops.composite), half, o.warmup, sync)));
        const r = await ref.send<{ times: number[]; peak_rss_kb: number }>({ cmd: 'run', case: name, shape, warmup: o.warmup, iterations: half });
        theirs.push(...r.times);
        refRss = r.peak_rss_kb;
      }
      const s = stats(fused, process.resourceUsage().maxRSS);
      const cs = stats(comp, process.resourceUsage().maxRSS);
      const rs = stats(theirs, refRss);
      results.push({ case: name, shape, semiseg: s, reference: rs, ratio: s.median / rs.median, composite: cs, compositeRatio: s.median / cs.median });
      const ms = (v: number) => (v * 1000).toFixed(2);
      console.error(
        `${name} ${shape.join('x')}: fused ${ms(s.median)} ms, composite ${ms(cs.median)} ms (x${(cs.median / s.median).toFixed(1)}), PyTorch ${ms(rs.median)} ms (x${(rs.median / s.median).toFixed(1)})`,
      );
    }
    return { results, meta: { opThreads: threads, reference: refInfo, copyBandwidthGBs: bandwidth && bandwidth / 1e9 } };
  } finally {
    ref.close();
  }
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const o = parseBenchArgs();
    const { results, meta } = await runOps(o);
    console.log(writeReport(`ops-${o.device}`, { bench: 'ops', device: o.device, threads: o.threads, iterations: o.iterations, machine: machine(), ...meta }, results));
  });
}
