/**
 * Network benchmarks: forward (eval, no grad) and a full supervised train step (zero grad, forward,
 * 0.5 (CE + Dice), backward, SGD momentum step) of the U-Net and V-Net, semiseg vs the PyTorch reference.
 *   node dist/benchmarks/nets.js [--threads N] [--iterations N] [--full]
 * Default (CPU-sized) shapes: U-Net 4x1x256x256, V-Net 1x1x64x64x48. --full uses the spec's shapes
 * (U-Net batch 24 at 256x256, V-Net batch 8 at 112x112x80).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { SGD, buildInfo, manualSeed, nets, noGrad, randint, randn, setNumThreads, trainStep, type Network, type Tensor } from '../lib/index.js';
import { Reference, machine, repoRoot, stats, writeReport, type CaseResult } from './harness.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const threads = opt('--threads', 2);
const iterations = opt('--iterations', 10);
const full = args.includes('--full');
const warmup = 3;

const cases: [string, number[]][] = full
  ? [['unet2d-forward', [24, 1, 256, 256]], ['unet2d-train-step', [24, 1, 256, 256]], ['vnet3d-forward', [8, 1, 112, 112, 80]], ['vnet3d-train-step', [8, 1, 112, 112, 80]]]
  : [['unet2d-forward', [4, 1, 256, 256]], ['unet2d-train-step', [4, 1, 256, 256]], ['vnet3d-forward', [1, 1, 64, 64, 48]], ['vnet3d-train-step', [1, 1, 64, 64, 48]]];

async function semisegBlock(net: Network, what: string, x: Tensor, y: Tensor, n: number): Promise<number[]> {
  const optimizer = SGD(net, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
  const once = async () => {
    if (what === 'forward') {
      net.eval();
      (await noGrad(() => net.forward(x))).dispose();
    } else {
      net.train();
      await trainStep(net, optimizer, x, y);
    }
  };
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await once();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return times;
}

async function main() {
  const python = process.env.SEMISEG_PYTHON ?? join(repoRoot, '.venv/bin/python3');
  if (!existsSync(python)) throw new Error(`no reference python at ${python} (run npm run setup or set SEMISEG_PYTHON)`);
  setNumThreads(threads);
  const ref = new Reference(python);
  const refInfo = await ref.send<{ torch: string; threads: number }>({ cmd: 'setup', threads });
  const results: CaseResult[] = [];
  for (const [name, shape] of cases) {
    manualSeed(0);
    const [kind, what] = [name.split('-')[0], name.slice(name.indexOf('-') + 1)];
    const net = kind === 'unet2d' ? nets.UNet2D() : nets.VNet3D();
    const x = randn(shape);
    const y = randint([shape[0], ...shape.slice(2)], 0, kind === 'unet2d' ? 4 : 2);
    const ours: number[] = [];
    const theirs: number[] = [];
    let refRss = 0;
    // alternate: half the iterations each, twice
    for (let round = 0; round < 2; round++) {
      ours.push(...(await semisegBlock(net, what, x, y, Math.ceil(iterations / 2))));
      const r = await ref.send<{ times: number[]; peak_rss_kb: number }>({ cmd: 'run', case: name, shape, warmup, iterations: Math.ceil(iterations / 2) });
      theirs.push(...r.times);
      refRss = r.peak_rss_kb;
    }
    const s = stats(ours, process.resourceUsage().maxRSS);
    const rs = stats(theirs, refRss);
    results.push({ case: name, shape, semiseg: s, reference: rs, ratio: s.median / rs.median });
    console.error(`${name} ${shape.join('x')}: semiseg ${(s.median * 1000).toFixed(1)} ms, reference ${(rs.median * 1000).toFixed(1)} ms, ratio ${(s.median / rs.median).toFixed(2)}`);
    x.dispose();
    y.dispose();
    net.dispose();
  }
  ref.close();
  const md = writeReport('nets', { machine: machine(), semiseg: buildInfo(), reference: refInfo, threads, iterations, warmup, full }, results);
  console.log(md);
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
