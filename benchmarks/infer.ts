/**
 * Inference benchmarks: a whole LA volume by sliding window (V-Net, stride 18 / 4) and a whole ACDC volume
 * slice by slice (U-Net at 256x256), semiseg (`slidingWindowInference`, `sliceInference`) against the
 * published test code in PyTorch (benchmarks/reference/bench_infer.py), alternating blocks. CPU only: the
 * reference runs the published code, which works on numpy arrays.
 *   node dist/benchmarks/infer.js [--threads N] [--iterations N] [--cases a,b] [--full]   (also `npm run bench`)
 * CPU-sized shapes: LA 80x80x56 with 64x64x48 windows (12 windows), ACDC 8 slices of 216x256; --full: LA
 * 176x144x88 with 112x112x80 windows (45 windows), ACDC 10 slices of 216x256.
 * `--precisions float32,auto,bfloat16,unfolded` (default float32,auto): one row per precision; the
 * reference runs in float32, or under torch.autocast in the precision semiseg resolved to; 'unfolded' is
 * float32 without BatchNorm folding (what folding gains), 'uncached' float32 with the large-block CPU
 * cache off (what `cpuCache` gains).
 */
import { manualSeed, nets, randn, resolvePrecision, setNumThreads, sliceInference, slidingWindowInference, type Precision } from '../lib/index.js';
import { Reference, isMain, machine, parseBenchArgs, referencePythonPath, runMain, stats, timeRuns, variantName, withCacheSetting, writeReport, type BenchOptions, type CaseResult } from './harness.js';

interface InferCase {
  shape: number[];
  patch?: number[];
  strides?: number[];
  size?: number[];
}

export function inferCases(full: boolean): Record<string, InferCase> {
  return {
    'infer-la-volume': full ? { shape: [176, 144, 88], patch: [112, 112, 80], strides: [18, 18, 4] } : { shape: [80, 80, 56], patch: [64, 64, 48], strides: [18, 18, 4] },
    'infer-acdc-volume': { shape: [full ? 10 : 8, 216, 256], size: [256, 256] },
  };
}

/** Runs the selected inference cases, semiseg and the reference alternating in blocks. */
export async function runInference(o: BenchOptions, python = referencePythonPath()): Promise<{ results: CaseResult[]; meta: Record<string, unknown> }> {
  if (o.device !== 'cpu') throw new Error('the inference cases run on the CPU only (the reference is the published numpy test code)');
  const cases = inferCases(o.full);
  const selected = o.cases ?? Object.keys(cases);
  for (const name of selected) if (!cases[name]) throw new Error(`--cases: unknown inference case '${name}' (one of ${Object.keys(cases).join(', ')})`);
  setNumThreads(o.threads);
  const ref = new Reference(python, 'bench_infer.py');
  try {
    const refInfo = await ref.send<{ torch: string; threads: number }>({ cmd: 'setup', threads: o.threads, device: 'cpu' });
    const results: CaseResult[] = [];
    const half = Math.ceil(o.iterations / 2);
    for (const name of selected) {
      const c = cases[name];
      manualSeed(0);
      const la = name === 'infer-la-volume';
      const net = la ? nets.VNet3D({ hasDropout: false }) : nets.UNet2D();
      net.eval();
      const volume = randn(c.shape);
      try {
        for (const p of o.precisions) {
          const foldBatchNorm = p !== 'unfolded';
          const precision = p === 'unfolded' || p === 'uncached' ? 'float32' : resolvePrecision(p as Precision, 'cpu');
          const run = la
            ? async () => (await slidingWindowInference(net, volume, { patch: c.patch, strides: c.strides, precision, foldBatchNorm })).dispose()
            : async () => (await sliceInference(net, volume, { size: c.size as [number, number], precision, foldBatchNorm })).dispose();
          const ours: number[] = [];
          const theirs: number[] = [];
          let refRss = 0;
          const autocast = precision === 'float32' ? null : precision;
          for (let round = 0; round < 2; round++) {
            ours.push(...(await withCacheSetting(p, () => timeRuns(run, half, o.warmup, () => undefined))));
            const r = await ref.send<{ times: number[]; peak_rss_kb: number }>({ cmd: 'run', case: name, ...c, autocast, warmup: o.warmup, iterations: half });
            theirs.push(...r.times);
            refRss = r.peak_rss_kb;
          }
          const s = stats(ours, process.resourceUsage().maxRSS);
          const rs = stats(theirs, refRss);
          const row = variantName(name, p);
          results.push({ case: row, shape: c.shape, semiseg: s, reference: rs, ratio: s.median / rs.median });
          const ms = (v: number) => (v * 1000).toFixed(1);
          console.error(`${row} ${c.shape.join('x')} (${precision}): semiseg ${ms(s.median)} ms, reference ${ms(rs.median)} ms, ratio ${(s.median / rs.median).toFixed(2)}`);
        }
      } finally {
        volume.dispose();
        net.dispose();
      }
    }
    return { results, meta: { reference: refInfo } };
  } finally {
    ref.close();
  }
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const o = parseBenchArgs();
    const { results, meta } = await runInference(o);
    console.log(writeReport('infer-cpu', { bench: 'infer', threads: o.threads, iterations: o.iterations, full: o.full, machine: machine(), ...meta }, results));
  });
}
