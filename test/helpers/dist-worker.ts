/**
 * One rank of the distributed tests (or a single process when WORLD_SIZE is unset):
 *   node dist-worker.js collectives
 *     prints {"rank", "sum", "bcast", "mean", "gathered"} after an all-reduce, a broadcast from rank 1, a mean of
 *     numbers and an all-gather of numbers.
 *   node dist-worker.js gradsync
 *     two SGD(lr 1) steps over three tensors with the gradient all-reduce attached (tiny buckets): rank 0
 *     uses p1, rank 1 p1 and p2, nobody p3; prints the tensors after each step and whether p3 has a gradient.
 *   node dist-worker.js syncbn OUT
 *     one SGD(lr 1) step of a float64 V-Net on a global batch of 4 (this rank's share), BatchNorm
 *     synchronised, the gradient all-reduce attached; writes OUT/syncbn.rank<k>.safetensors (the updated
 *     parameters as "param.<name>", buffers as "buffer.<name>").
 *   node dist-worker.js train OUT JSON
 *     trains on synthetic 3-D blobs with resolveConfig(JSON.recipe, JSON.config), JSON.syncBatchNorm; prints
 *     each iteration and the result as JSON lines.
 */
import { mkdirSync } from 'node:fs';

import { resolveConfig, syntheticData, train } from '../../lib/trainers/index.js';
import { ProcessGroup, rendezvousFromEnv } from '../../lib/dist.js';
import { SGD, manualSeed, nets, prng, setNumThreads, tensor, writeSafetensors, type StateDict } from '../../lib/index.js';

const [mode, outArg, json] = process.argv.slice(2);
const out = `${outArg}${process.env.TEST_OUT_SUFFIX ?? ''}`;
setNumThreads(Number(process.env.TEST_THREADS ?? 1));
const rv = rendezvousFromEnv();
const group = rv ? await ProcessGroup.connect({ ...rv, timeout: Number(process.env.TEST_DIST_TIMEOUT ?? 60) }) : undefined;
try {
  if (mode === 'collectives') {
    const g = group as ProcessGroup;
    const t = tensor([g.rank + 1, 10 * (g.rank + 1)]);
    await g.allreduce([t]);
    const b = tensor([[g.rank, g.rank]]).transpose(0, 1); // non-contiguous
    await g.broadcast([b], 1);
    const mean = await g.allreduceNumbers([g.rank, 1.5], { op: 'mean' });
    const gathered = await g.allGatherNumbers([g.rank, 10 + g.rank]);
    console.log(JSON.stringify({ rank: g.rank, sum: Array.from(t.data() as Float32Array), bcast: Array.from(b.contiguous().data() as Float32Array), mean, gathered }));
  } else if (mode === 'gradsync') {
    const g = group as ProcessGroup;
    const p1 = tensor([1, 2, 3], { requiresGrad: true });
    const p2 = tensor([4, 5], { requiresGrad: true });
    const p3 = tensor([6], { requiresGrad: true });
    const opt = SGD([p1, p2, p3], { lr: 1 });
    g.attach(opt, { bucketMB: 1e-6 }); // one tensor per bucket
    const steps = [];
    for (let step = 0; step < 2; step++) {
      opt.zeroGrad();
      let loss = p1.mul(g.rank + 1).sum();
      if (g.rank === 1) loss = loss.add(p2.square().sum());
      await loss.backwardAsync();
      await opt.stepAsync();
      steps.push({ p1: Array.from(p1.data() as Float32Array), p2: Array.from(p2.data() as Float32Array), p3: Array.from(p3.data() as Float32Array), p3grad: p3.grad !== null });
    }
    g.detach(opt);
    console.log(JSON.stringify({ rank: g.rank, steps }));
  } else if (mode === 'syncbn') {
    const W = group?.worldSize ?? 1;
    const r = group?.rank ?? 0;
    manualSeed(11);
    const net = nets.VNet3D({ nFilters: 4, hasDropout: false }).to({ dtype: (process.env.TEST_DTYPE ?? 'float64') as 'float64' }).train();
    const rand = prng(7);
    const N = 4;
    const vx = 16 * 16 * 16;
    const xs = Float64Array.from({ length: N * vx }, () => rand() * 2 - 1);
    const ws = Float64Array.from({ length: N * 2 * vx }, () => rand());
    const b = N / W;
    const x = tensor(xs.subarray(r * b * vx, (r + 1) * b * vx), { shape: [b, 1, 16, 16, 16], dtype: (process.env.TEST_DTYPE ?? 'float64') as 'float64' });
    const w = tensor(ws.subarray(r * b * 2 * vx, (r + 1) * b * 2 * vx), { shape: [b, 2, 16, 16, 16], dtype: (process.env.TEST_DTYPE ?? 'float64') as 'float64' });
    group?.syncBatchNorm(true);
    const opt = SGD(net, { lr: 1 });
    group?.attach(opt);
    opt.zeroGrad();
    const logits = await net.forward(x);
    const loss = logits.square().mul(w).mean(); // a mean over this rank's batch: the group mean is the global mean
    await loss.backwardAsync();
    await opt.stepAsync();
    const dict: StateDict = {};
    for (const [k, v] of Object.entries(net.namedParameters())) dict[`param.${k}`] = v;
    for (const [k, v] of Object.entries(net.namedBuffers())) dict[`buffer.${k}`] = v;
    mkdirSync(out, { recursive: true });
    await writeSafetensors(`${out}/syncbn.rank${r}.safetensors`, dict);
    console.log(JSON.stringify({ rank: r, loss: Number(loss.item()) }));
  } else {
    const spec = JSON.parse(json) as { recipe: string; config: Record<string, unknown>; syncBatchNorm?: boolean };
    const config = resolveConfig(spec.recipe, { ...spec.config, ...(JSON.parse(process.env.TEST_CONFIG_OVERRIDE ?? '{}') as Record<string, unknown>) });
    const data =
      config.network === 'VNet3D'
        ? syntheticData({ spatialDims: 3, labeled: 8, unlabeled: 8, size: 32, patch: [16, 16, 16], seed: 3 })
        : syntheticData({ spatialDims: 2, labeled: 8, unlabeled: 8, size: 32, seed: 3 });
    try {
      const r = await train(config, {
        data,
        out,
        resume: process.env.TEST_RESUME === '1',
        group,
        syncBatchNorm: spec.syncBatchNorm,
        onEvent: (e) => {
          if (e.type === 'iteration') console.log(JSON.stringify({ iteration: e.iteration, stage: e.stage, loss: e.loss }));
        },
      });
      console.log(JSON.stringify({ result: { final: r.final, replicaDivergence: r.replicaDivergence, firstLoss: r.firstLoss, lastLoss: r.lastLoss, validations: r.validations } }));
    } finally {
      data.dispose();
    }
  }
} finally {
  group?.shutdown();
}
