/**
 * Whole-training-iteration benchmarks: one self-training iteration of BCP (ACDC U-Net, LA V-Net) and one
 * Co-DA iteration (two U-Nets), semiseg's trainers (`trainers.buildMethod(...).stages[train].step`) vs the
 * same iteration in ordinary PyTorch (benchmarks/reference/bench_steps.py), alternating blocks.
 *   node dist/benchmarks/steps.js [--device cpu|cuda] [--threads N] [--iterations N] [--cases a,b] [--full]
 * Default (CPU-sized) shapes: bcp-acdc-step 8x1x128x128, bcp-la-step 4x1x64x64x48, coda-acdc-step
 * 8x1x128x128. --full uses the spec's shapes (batch 24 at 256x256; batch 8 at 112x112x80).
 * The batch is the labeled half followed by the unlabeled half, random images and labels.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { buildInfo, cuda, liveTensors, manualSeed, randint, randn, setNumThreads, trainers } from '../lib/index.js';
import { Reference, machine, repoRoot, stats, writeReport, type CaseResult } from './harness.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const device = opt('--device', 'cpu') as 'cpu' | 'cuda';
const threads = Number(opt('--threads', '2'));
const iterations = Number(opt('--iterations', '10'));
const full = args.includes('--full');
const warmup = 3;

interface StepCase {
  recipe: string;
  shape: number[];
}

const CASES: Record<string, StepCase> = full
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

const selected = opt('--cases', Object.keys(CASES).join(','))
  .split(',')
  .filter((s) => s.length > 0);

const sync = () => {
  if (device === 'cuda') cuda.synchronize();
};

/** The semiseg side of a case: the recipe's method at the case's batch and size, its self-training stage, one batch. */
async function makeCase(c: StepCase) {
  const [B, , ...spatial] = c.shape;
  const config = trainers.resolveConfig(c.recipe, { batchSize: B, labeledBatch: B / 2, size: spatial, device });
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

async function time(run: () => Promise<void>, n: number): Promise<number[]> {
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

async function main() {
  const python = process.env.SEMISEG_PYTHON ?? join(repoRoot, '.venv/bin/python3');
  if (!existsSync(python)) throw new Error(`no reference python at ${python} (run npm run setup or set SEMISEG_PYTHON)`);
  if (device === 'cuda' && !cuda.isAvailable()) throw new Error('--device cuda: this build has no CUDA or no GPU is visible');
  for (const name of selected) if (!CASES[name]) throw new Error(`--cases: unknown case '${name}' (one of ${Object.keys(CASES).join(', ')})`);
  setNumThreads(threads);
  const ref = new Reference(python, 'bench_steps.py');
  const refInfo = await ref.send<{ torch: string; threads: number }>({ cmd: 'setup', threads, device });
  const results: CaseResult[] = [];
  const refCudaPeak: Record<string, number> = {};
  const before = liveTensors();
  for (const name of selected) {
    const { shape } = CASES[name];
    const run = await makeCase(CASES[name]);
    const ours: number[] = [];
    const theirs: number[] = [];
    let refRss = 0;
    try {
      // alternate: half the iterations each, twice
      for (let round = 0; round < 2; round++) {
        ours.push(...(await time(run.step, Math.ceil(iterations / 2))));
        const r = await ref.send<{ times: number[]; peak_rss_kb: number; peak_cuda_bytes?: number }>({
          cmd: 'run',
          case: name,
          shape,
          warmup,
          iterations: Math.ceil(iterations / 2),
        });
        theirs.push(...r.times);
        refRss = r.peak_rss_kb;
        if (r.peak_cuda_bytes !== undefined) refCudaPeak[name] = Math.max(refCudaPeak[name] ?? 0, r.peak_cuda_bytes);
      }
    } finally {
      run.dispose();
    }
    const s = stats(ours, process.resourceUsage().maxRSS);
    const rs = stats(theirs, refRss);
    results.push({ case: name, shape, semiseg: s, reference: rs, ratio: s.median / rs.median });
    const ms = (v: number) => (v * 1000).toFixed(1);
    console.error(`${name} ${shape.join('x')}: semiseg ${ms(s.median)} ms, reference ${ms(rs.median)} ms, ratio ${(s.median / rs.median).toFixed(2)}`);
  }
  ref.close();
  // This script disposes its batch and the method; handles the methods themselves leave undisposed (freed
  // only when the GC finalises them) show up here.
  const leaked = liveTensors() - before;
  if (leaked !== 0) console.error(`note: ${leaked} tensor handles were left undisposed by the methods (not yet garbage-collected)`);
  const meta = {
    bench: 'steps',
    device,
    threads,
    iterations,
    warmup,
    full,
    machine: machine(),
    semiseg: buildInfo(),
    reference: refInfo,
    referenceCudaPeakMiB: device === 'cuda' ? Object.fromEntries(Object.entries(refCudaPeak).map(([k, v]) => [k, v / 2 ** 20])) : undefined,
  };
  console.log(writeReport(`steps-${device}`, meta, results));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
