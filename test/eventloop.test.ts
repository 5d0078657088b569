// A Node service stays responsive while semiseg trains: the event-loop delay (perf_hooks'
// monitorEventLoopDelay) stays under 50 ms at the 99th percentile during a single training step, during
// whole iterations of a trainer (BCP: teacher pass, mixing, student passes, EMA; data from the loader) and
// during whole-volume inference (sliding window, slice by slice).
// Serial: the optimizer guard refuses concurrent steps, and a parallel test would add its own lag.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { manualSeed, nets, randint, randn, setNumThreads, SGD, sliceInference, slidingWindowInference, trainers, trainStep } from '../lib/index.js';

setNumThreads(1);

async function lagDuring(work: () => Promise<void>): Promise<{ p99: number; max: number; ms: number; ticks: number }> {
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  const start = performance.now();
  await work();
  const ms = performance.now() - start;
  h.disable();
  clearInterval(ticker);
  return { p99: h.percentile(99) / 1e6, max: h.max / 1e6, ms, ticks };
}

test.serial('a training step keeps the event loop p99 delay under 50 ms', async (t) => {
  manualSeed(3);
  const net = nets.UNet2D({ inChannels: 1, outChannels: 4 });
  const opt = SGD(net, { lr: 0.01, momentum: 0.9 });
  const x = randn([8, 1, 128, 128]);
  const y = randint([8, 128, 128], 0, 4);
  const lag = await lagDuring(async () => {
    await trainStep(net, opt, x, y);
    await trainStep(net, opt, x, y);
  });
  t.log(`2 steps: ${lag.ms.toFixed(0)} ms, p99 delay ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms, ${lag.ticks} timer ticks`);
  t.true(lag.ms > 200, `the steps took only ${lag.ms.toFixed(0)} ms: too short to measure lag`);
  t.true(lag.p99 < 50, `p99 event-loop delay ${lag.p99.toFixed(1)} ms`);
  t.true(lag.ticks >= lag.ms / 25, `only ${lag.ticks} ticks of a 5 ms timer in ${lag.ms.toFixed(0)} ms`);
  for (const d of [x, y, net]) d.dispose();
});

test.serial('whole BCP iterations of a trainer keep the event loop p99 delay under 50 ms', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-lag-'));
  const config = trainers.resolveConfig('bcp-acdc', {
    iterations: 4,
    pretrainIterations: 2,
    batchSize: 4,
    labeledBatch: 2,
    size: [64, 64],
    validateEvery: 100,
  });
  const data = trainers.syntheticData({ spatialDims: 2, size: 64, labeled: 6, unlabeled: 10, valCases: 1 });
  try {
    const lag = await lagDuring(async () => {
      await trainers.train(config, { data, out });
    });
    t.log(`6 BCP iterations: ${lag.ms.toFixed(0)} ms, p99 delay ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms`);
    t.true(lag.ms > 200);
    t.true(lag.p99 < 50, `p99 event-loop delay ${lag.p99.toFixed(1)} ms`);
  } finally {
    data.dispose();
    rmSync(out, { recursive: true, force: true });
  }
});

test.serial('whole-volume inference keeps the event loop p99 delay under 50 ms', async (t) => {
  manualSeed(5);
  const vnet = nets.VNet3D({ hasDropout: false });
  const unet = nets.UNet2D();
  const volume = randn([72, 72, 56]);
  const slices = randn([6, 200, 180]);
  const lag = await lagDuring(async () => {
    (await slidingWindowInference(vnet, volume, { patch: [64, 64, 48], strides: [18, 18, 4] })).dispose();
    (await sliceInference(unet, slices, { size: [256, 256] })).dispose();
  });
  t.log(`inference: ${lag.ms.toFixed(0)} ms, p99 delay ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms`);
  t.true(lag.ms > 200);
  t.true(lag.p99 < 50, `p99 event-loop delay ${lag.p99.toFixed(1)} ms`);
  for (const d of [vnet, unet, volume, slices]) d.dispose();
});
