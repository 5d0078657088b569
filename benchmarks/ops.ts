/**
 * Fused-op benchmarks: each op forward + backward at the spec's shapes, three ways: the fused op, the
 * same work from ordinary tensor ops in semiseg (ops.composite), and that composite in PyTorch
 * (benchmarks/reference/bench_ops.py). Targets: fused >= 2x faster than the composite on CPU, >= 3x on
 * GPU, and on GPU >= 70 % of the device-to-device copy bandwidth measured in the same run.
 *   node dist/benchmarks/ops.js [--device cpu|cuda] [--threads N] [--iterations N]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { cuda, manualSeed, ops, rand, randint, randn, setNumThreads, tidy } from '../lib/index.js';
import { Reference, machine, repoRoot, stats, writeReport, type CaseResult } from './harness.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const device = opt('--device', 'cpu') as 'cpu' | 'cuda';
const threads = Number(opt('--threads', '2'));
const iterations = Number(opt('--iterations', '10'));
const warmup = 3;

// name, shape, and the bytes a single pass must at least read and write (for GPU bandwidth).
const cases: [string, number[]][] = [
  ['copy-paste-acdc', [24, 1, 256, 256]],
  ['copy-paste-la', [8, 1, 112, 112, 80]],
  ['ce-dice-acdc', [12, 4, 256, 256]],
  ['ce-dice-la', [4, 2, 112, 112, 80]],
  ['marginal-align', [12, 4, 256, 256]],
  ['over-expectation-ce', [12, 4, 256, 256]],
];

const sync = () => {
  if (device === 'cuda') cuda.synchronize();
};

type Impl = typeof ops | typeof ops.composite;

// One forward + backward of `name` with implementation `impl`, on inputs made once.
function makeCase(name: string, shape: number[]): (impl: Impl) => void {
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

function time(run: () => void, n: number): number[] {
  for (let i = 0; i < warmup; i++) run();
  sync();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    run();
    sync();
    out.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return out;
}

// Device-to-device copy bandwidth (bytes read + written per second) of a 256 MiB float32 tensor.
function copyBandwidth(): number {
  const src = randn([64, 1024, 1024], { device });
  const times = time(() => src.clone().dispose(), 10);
  const s = stats(times, 0);
  src.dispose();
  return (2 * 64 * 1024 * 1024 * 4) / s.median;
}

async function main() {
  const python = process.env.SEMISEG_PYTHON ?? join(repoRoot, '.venv/bin/python3');
  if (!existsSync(python)) throw new Error(`no reference python at ${python} (run npm run setup or set SEMISEG_PYTHON)`);
  if (device === 'cuda' && !cuda.isAvailable()) throw new Error('--device cuda: this build has no CUDA or no GPU is visible');
  setNumThreads(threads);
  const ref = new Reference(python, 'bench_ops.py');
  const refInfo = await ref.send<{ torch: string; threads: number }>({ cmd: 'setup', threads, device });
  const bandwidth = device === 'cuda' ? copyBandwidth() : undefined;
  const results: CaseResult[] = [];
  for (const [name, shape] of cases) {
    manualSeed(0);
    const run = makeCase(name, shape);
    const fused: number[] = [];
    const comp: number[] = [];
    const theirs: number[] = [];
    let refRss = 0;
    for (let round = 0; round < 2; round++) {
      fused.push(...time(() => run(ops), Math.ceil(iterations / 2)));
      comp.push(...time(() => run(ops.composite), Math.ceil(iterations / 2)));
      const r = await ref.send<{ times: number[]; peak_rss_kb: number }>({ cmd: 'run', case: name, shape, warmup, iterations: Math.ceil(iterations / 2) });
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
  ref.close();
  const meta = { bench: 'ops', device, threads, iterations, machine: machine(), reference: refInfo, copyBandwidthGBs: bandwidth && bandwidth / 1e9 };
  console.log(writeReport(`ops-${device}`, meta, results));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

