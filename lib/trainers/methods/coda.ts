/**
 * Co-DA (spec 3): two networks of one architecture with different initialisations. Each network's
 * class marginals on labeled and unlabeled pixels are tracked as EMAs; its unlabeled probabilities are
 * aligned (fused marginalAlign) and their argmax supervises the other network through the fused
 * over-expectation CE, whose per-class confidences update that network's expectation EMA. On several
 * data-parallel ranks the statistics behind the EMAs are those of the whole group's batch (all-reduced),
 * so every rank keeps the same EMAs, as one process on the group's batch would.
 */
import { tensor } from '../../create.js';
import { ceDiceLoss } from '../../losses.js';
import type { Network } from '../../nets/network.js';
import { classMarginals, marginalAlign, overExpectationCe } from '../../ops.js';
import { noGrad } from '../../runtime.js';
import type { Tensor } from '../../tensor.js';
import type { ProcessGroup } from '../../dist.js';
import type { TrainConfig } from '../recipes.js';
import { Bag, makeNetwork, optimizeStep, rampup, makeOptimizer, type MethodRuntime } from './common.js';
import { float32, forwardOptions } from './precision.js';

interface Ema {
  labeled: number[] | null;
  unlabeled: number[] | null;
  expectation: number[] | null;
}

function values(t: Tensor): number[] {
  return Array.from(t.data() as Float32Array, Number);
}

/** m * prev + (1 - m) * next where `use`; the first observation initialises (fallback where unused). */
function emaOf(prev: number[] | null, next: number[], m: number, use: boolean[], fallback: number): number[] {
  if (!prev) return next.map((v, i) => (use[i] ? v : fallback));
  return prev.map((p, i) => (use[i] ? m * p + (1 - m) * next[i] : p));
}

export function coda(c: TrainConfig, inChannels: number): MethodRuntime {
  const make = () => makeNetwork(c, inChannels);
  const net1 = make();
  const net2 = make(); // drawn after net1 from the same generator: a different initialisation
  const optimizer = makeOptimizer([{ params: net1 }, { params: net2 }], c);
  const L = c.labeledBatch;
  const fwd = forwardOptions(c);
  const C = c.classes;
  const ema: [Ema, Ema] = [
    { labeled: null, unlabeled: null, expectation: null },
    { labeled: null, unlabeled: null, expectation: null },
  ];
  const all = new Array<boolean>(C).fill(true);
  let group: ProcessGroup | undefined;

  // Network k's class marginals on its labeled and unlabeled probabilities (group means on several ranks).
  async function marginals(probs: Tensor[], bag: Bag): Promise<number[][]> {
    const local = probs.flatMap((p) => {
      const B = p.shape[0];
      return [classMarginals(bag.add(p.narrow(0, 0, L))), classMarginals(bag.add(p.narrow(0, L, B - L)))].map((m) => {
        bag.add(m.count);
        return values(bag.add(m.means));
      });
    });
    if (!group) return local;
    const mean = await group.allreduceNumbers(local.flat(), { op: 'mean' }); // equal batches on every rank
    return local.map((_, i) => mean.slice(i * C, (i + 1) * C));
  }

  // Updates network k's marginal EMAs and returns its aligned unlabeled probabilities.
  function align(k: 0 | 1, probs: Tensor, labeled: number[], unlabeled: number[], bag: Bag): Tensor {
    const B = probs.shape[0];
    ema[k].labeled = emaOf(ema[k].labeled, labeled, c.marginalMomentum, all, 1 / C);
    ema[k].unlabeled = emaOf(ema[k].unlabeled, unlabeled, c.marginalMomentum, all, 1 / C);
    const piL = bag.add(tensor(ema[k].labeled, { device: probs.device }));
    const piU = bag.add(tensor(ema[k].unlabeled, { device: probs.device }));
    return bag.add(marginalAlign(bag.add(probs.narrow(0, L, B - L)), piL, piU, { eps: c.alignEps }));
  }

  // Over-expectation CE of `logits` (the other network's unlabeled logits) against network k's aligned q,
  // with network k's per-class confidence sums and counts for its expectation EMA.
  function overExpectation(k: 0 | 1, logits: Tensor, q: Tensor, bag: Bag): { loss: Tensor; sums: number[]; counts: number[] } {
    const e = bag.add(tensor(ema[k].expectation ?? new Array<number>(C).fill(0), { device: q.device }));
    const r = overExpectationCe(logits, q, e);
    bag.add(r.count);
    const counts = values(bag.add(r.classCount));
    const sums = values(bag.add(r.classConfidence)).map((m, i) => m * counts[i]);
    return { loss: bag.add(r.loss), sums, counts };
  }

  // The expectation EMAs from the per-class confidence sums and counts (of the group, on several ranks).
  async function updateExpectations(stats: { sums: number[]; counts: number[] }[]): Promise<void> {
    let flat = stats.flatMap((st) => [...st.sums, ...st.counts]);
    if (group) flat = await group.allreduceNumbers(flat);
    stats.forEach((_, k) => {
      const sums = flat.slice(2 * k * C, (2 * k + 1) * C);
      const counts = flat.slice((2 * k + 1) * C, (2 * k + 2) * C);
      const means = sums.map((v, i) => (counts[i] > 0 ? v / counts[i] : 0));
      ema[k].expectation = emaOf(ema[k].expectation, means, c.marginalMomentum, counts.map((n) => n > 0), 1 / C);
    });
  }

  const nets2: [Network, Network] = [net1, net2];
  return {
    networks: { net1, net2 },
    main: 'net1',
    // coda.inference = 'mean' (spec 3.7): validation and inference average both networks' probabilities,
    // and best / final hold net2 too; 'net1' (default): network 1 alone
    inferenceNetworks: c.coda.inference === 'mean' ? () => ({ net2 }) : undefined,
    optimizer: () => optimizer,
    stages: [
      {
        name: 'train',
        iterations: c.iterations,
        labeledOnly: false,
        begin: async () => undefined,
        async step(batch, it) {
          const bag = new Bag();
          try {
            const B = batch.images.shape[0];
            const y = bag.add(batch.labels.narrow(0, 0, L));
            nets2.forEach((n) => n.train());
            // mixed precision (c.precision): autocast forwards, every loss on float32 logits
            const logits = [float32(bag, bag.add(await net1.forward(batch.images, fwd))), float32(bag, bag.add(await net2.forward(batch.images, fwd)))];
            const sup = logits.map((lg) => bag.add(ceDiceLoss(bag.add(lg.narrow(0, 0, L)), y, c.dice)));
            const probs = noGrad(() => logits.map((lg) => bag.add(bag.add(lg.detach()).softmax(1))));
            const [pl1, pu1, pl2, pu2] = await marginals(probs, bag);
            const q = noGrad(() => [align(0, probs[0], pl1, pu1, bag), align(1, probs[1], pl2, pu2, bag)]);
            const unl = logits.map((lg) => bag.add(lg.narrow(0, L, B - L)));
            const r1 = overExpectation(0, unl[1], q[0], bag); // net1's pseudo-labels teach net2
            const r2 = overExpectation(1, unl[0], q[1], bag);
            await updateExpectations([r1, r2]);
            const [oe1, oe2] = [r1.loss, r2.loss];
            const w = rampup(it - 1, c.consistency, c.rampup);
            const supervised = bag.add(sup[0].add(sup[1]));
            const cross = bag.add(bag.add(oe1.add(oe2)).mul(w));
            const total = bag.add(supervised.add(cross));
            const value = await optimizeStep(optimizer, total, it);
            return { loss: value, parts: { sup1: Number(sup[0].item()), sup2: Number(sup[1].item()), oe1: Number(oe1.item()), oe2: Number(oe2.item()), weight: w } };
          } finally {
            bag.free();
          }
        },
      },
    ],
    useGroup: (g) => {
      group = g;
    },
    state: () => ({ ema }),
    restore: (s) => {
      const saved = (s as { ema?: [Ema, Ema] }).ema;
      if (saved) [ema[0], ema[1]] = saved;
    },
    dispose: () => {
      net1.dispose();
      net2.dispose();
    },
  };
}
