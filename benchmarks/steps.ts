/**
 * Whole-training-iteration benchmarks: one self-training iteration of BCP (ACDC U-Net, LA V-Net) and one
 * Co-DA iteration (two U-Nets), semiseg's trainers (`trainers.buildMethod(...).stages[train].step`) vs the
 * same iteration in ordinary PyTorch (benchmarks/reference/bench_steps.py), alternating blocks.
 *   node dist/benchmarks/steps.js [--device cpu|cuda] [--threads N] [--iterations N] [--cases a,b] [--full]
 * (also part of `npm run bench`).
 * Default (CPU-sized) shapes: bcp-acdc-step 8x1x128x128, bcp-la-step 4x1x64x64x48, coda-acdc-step
 * 8x1x128x128. --full uses the spec's shapes (batch 24 at 256x256; batch 8 at 112x112x80).
 * The batch is the labeled half followed by the unlabeled half, random images and labels.
 * `--precisions float32,auto,bfloat16,uncached` (default float32,auto): one row per precision (the recipe's
 * `precision`: mixed precision); the reference runs in float32 or, for a reduced precision, its step
 * under torch.autocast in that dtype. 'uncached' is float32 with semiseg's large-block CPU cache off.
 */
import { buildInfo, cuda, liveTensors, manualSeed, randint, randn, setNumThreads, trainers, type Precision } from '../lib/index.js';
import { Reference, isMain, machine, parseBenchArgs, referencePythonPath, runMain, stats, timeRuns, variantName, withCacheSetting, writeReport, type BenchOptions, type CaseResult } from './harness.js';

interface StepCase {
  recipe: string;
  shape: number[];
}

/** The cases at CPU-sized shapes, or the spec's with `full`. */
export function stepCases(full: boolean): Record<string, StepCase> {
  return full
    ? {
        'bcp-acdc-step': { recipe: 'bcp-acdc', shape: [24, 1, 256, 256] },
        'bcp-la-step': { recipe: 'bcp-la', shape: [8, 1, 112, 112, 80] },
        'coda-acdc-step': { recipe: 'coda-acdc', shape: [24, 1, 256, 256] },
      }
    : {
        'bcp-acdc-step': { recipe: 'bcp-acdc', shape: [8, 1, 128, 128] },
        'bcp-la-step': { recipe: 'bcp-la', shape: [4, 1, 64, 64, 48] },
        'coda-acdc-step': { recipe: 'coda-acdc', shape: [8, 1, 128, 128] },
      };
}

/** The semiseg side of a case: the recipe's method at the case's batch and size, its self-training stage, one batch. */
async function makeCase(c: StepCase, device: 'cpu' | 'cuda', precision: Precision = 'float32') {
  const [B, , ...spatial] = c.shape;
  const config = trainers.resolveConfig(c.recipe, { batchSize: B, labeledBatch: B / 2, size: spatial, device, precision });
  manualSeed(0);
  const method = trainers.buildMethod(config);
  const stage = method.stages.find((s) => s.name === 'train');
  if (!stage) throw new Error(`${c.recipe}: no 'train' stage`);
  await stage.begin(false, null);
  const batch = {
    images: randn(c.shape, { device }),
    labels: randint([B, ...spatial], 0, config.classes, { device }),
    indices: Array.from({ length: B }, (_, i) => i),
  };
  let it = 0;
  return {
    precision: config.precision,
    step: async () => {
      await stage.step(batch, ++it);
    },
    dispose: () => {
      batch.images.dispose();
      batch.labels.dispose();
      method.dispose();
    },
  };
}

/** Runs the selected step cases, semiseg and the reference alternating in blocks. */
export async function runSteps(o: BenchOptions, python = referencePythonPath()): Promise<{ results: CaseResult[]; meta: Record<string, unknown> }> {
  const cases = stepCases(o.full);
  const selected = o.cases ?? Object.keys(cases);
  for (const name of selected) if (!cases[name]) throw new Error(`--cases: unknown step case '${name}' (one of ${Object.keys(cases).join(', ')})`);
  if (o.device === 'cuda' && !cuda.isAvailable()) throw new Error('--device cuda: this build has no CUDA or no GPU is visible');
  const sync = () => {
    if (o.device === 'cuda') cuda.synchronize();
  };
  setNumThreads(o.threads);
  const ref = new Reference(python, 'bench_steps.py');
  try {
    const refInfo = await ref.send<{ torch: string; threads: number }>({ cmd: 'setup', threads: o.threads, device: o.device });
    const results: CaseResult[] = [];
    const refCudaPeak: Record<string, number> = {};
    const before = liveTensors();
    const half = Math.ceil(o.iterations / 2);
    for (const name of selected) {
      for (const p of o.precisions) {
        if (p === 'unfolded') continue; // an inference setting
        const { shape } = cases[name];
        const run = await makeCase(cases[name], o.device, (p === 'uncached' ? 'float32' : p) as Precision);
        const row = variantName(name, p);
        const autocast = run.precision === 'float32' ? null : run.precision;
        const ours: number[] = [];
        const theirs: number[] = [];
        let refRss = 0;
        try {
          // alternate: half the iterations each, twice
          for (let round = 0; round < 2; round++) {
            ours.push(...(await withCacheSetting(p, () => timeRuns(run.step, half, o.warmup, sync))));
            const r = await ref.send<{ times: number[]; peak_rss_kb: number; peak_cuda_bytes?: number }>({ cmd: 'run', case: name, shape, autocast, warmup: o.warmup, iterations: half });
            theirs.push(...r.times);
            refRss = r.peak_rss_kb;
            if (r.peak_cuda_bytes !== undefined) refCudaPeak[row] = Math.max(refCudaPeak[row] ?? 0, r.peak_cuda_bytes);
          }
        } finally {
          run.dispose();
        }
        const s = stats(ours, process.resourceUsage().maxRSS);
        const rs = stats(theirs, refRss);
        results.push({ case: row, shape, semiseg: s, reference: rs, ratio: s.median / rs.median });
        const ms = (v: number) => (v * 1000).toFixed(1);
        console.error(`${row} ${shape.join('x')} (${run.precision}): semiseg ${ms(s.median)} ms, reference ${ms(rs.median)} ms, ratio ${(s.median / rs.median).toFixed(2)}`);
      }
    }
    const leaked = liveTensors() - before;
    if (leaked !== 0) console.error(`note: ${leaked} tensor handles were left undisposed by the methods (not yet garbage-collected)`);
    return {
      results,
      meta: {
        reference: refInfo,
        referenceCudaPeakMiB: o.device === 'cuda' ? Object.fromEntries(Object.entries(refCudaPeak).map(([k, v]) => [k, v / 2 ** 20])) : undefined,
      },
    };
  } finally {
    ref.close();
  }
}

if (isMain(import.meta.url)) {
  runMain(async () => {
    const o = parseBenchArgs();
    const { results, meta } = await runSteps(o);
    const info = { bench: 'steps', device: o.device, threads: o.threads, iterations: o.iterations, warmup: o.warmup, full: o.full, machine: machine(), semiseg: buildInfo(), ...meta };
    console.log(writeReport(`steps-${o.device}`, info, results));
  });
}
