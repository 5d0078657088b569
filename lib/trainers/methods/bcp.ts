/**
 * BCP (spec 2). Pre-training: the labeled half split in a and b, a outside a zero box and b inside, with
 * the mixed labels (all weight 1). Self-training from the best pre-trained weights: teacher pseudo-labels
 * (largest connected component per class), both mixes of the fused bidirectional copy-paste, the fused
 * region-weighted CE + Dice on each, an SGD step and the EMA (fixed decay) of the teacher. With
 * bcp.keepOptimizer (the ACDC recipe) self-training also starts from pre-training's SGD state.
 */
import { ones } from '../../create.js';
import { cat, pad } from '../../functional.js';
import { loadCheckpoint } from '../../io/checkpoint.js';
import { largestConnectedComponent } from '../../metrics.js';
import { bidirectionalCopyPaste, regionWeightedCeDice, type Box } from '../../ops.js';
import { noGrad } from '../../runtime.js';
import { dispose, tidy } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import { emaUpdate } from '../../train/ema.js';
import type { Optimizer } from '../../train/optimizer.js';
import { prng } from '../../demo/synthetic.js';
import type { TrainConfig } from '../recipes.js';
import { Bag, makeNetwork, optimizeStep, setMode, makeOptimizer, type MethodRuntime } from './common.js';
import { forwardOptions } from './precision.js';

/** A box of floor(ratio * side) on every spatial side at a uniform position in [0, side - size). */
export function randomBox(spatial: number[], ratio: number, rand: () => number): Box {
  const size = spatial.map((s) => Math.floor(s * ratio));
  return { start: spatial.map((s, i) => Math.floor(rand() * Math.max(1, s - size[i]))), size };
}

/** A float mask of `spatial` with ones inside `box` (dtype and device of `like`). */
export function boxMask(spatial: number[], box: Box, like: Tensor): Tensor {
  const d = spatial.length;
  const around = spatial.flatMap((_, i) => {
    const k = d - 1 - i; // pad takes (left, right) pairs from the last axis backwards
    return [box.start[k], spatial[k] - box.size[k] - box.start[k]];
  });
  return tidy(() => pad(ones(box.size, { device: like.device as 'cpu', dtype: like.dtype as 'float32' }), around));
}

/** The box BCP uses at iteration `it` (1-based) of stage `stage` (0: pre-training, 1: self-training). */
export function bcpBox(c: TrainConfig, spatial: number[], it: number, stage: number): Box {
  return randomBox(spatial, c.boxRatio, prng((c.seed * 31 + stage * 1009 + it * 97) >>> 0));
}

export function bcp(c: TrainConfig, inChannels: number): MethodRuntime {
  const student = makeNetwork(c, inChannels);
  const teacher = student.clone();
  let optimizer: Optimizer = makeOptimizer(student, c);
  const L = c.labeledBatch;
  const K = L / 2;
  const dims = c.network === 'UNet2D' ? 2 : 3;
  const loss = (logits: Tensor, target: Tensor, weights: Tensor) =>
    regionWeightedCeDice(logits, target, { weights, dice: c.dice.squared ? 'squared' : 'linear', perSample: c.dice.perSample, smooth: c.dice.smooth, includeBackground: c.dice.includeBackground });
  const boxFor = (x: Tensor, it: number, stage: number) => bcpBox(c, x.shape.slice(2), it, stage);
  // mixed precision (c.precision): autocast forwards; the fused loss reads bfloat16 / float16 logits and
  // sums in float32
  const fwd = forwardOptions(c);

  // Teacher pseudo-labels of the unlabeled images, largest component kept per foreground class.
  async function pseudoLabels(u: Tensor): Promise<Tensor> {
    setMode(teacher, c.teacherMode);
    const logits = await noGrad(() => teacher.forward(u, fwd));
    try {
      return tidy(() => {
        const p = logits.to('float32').softmax(1);
        const labels = dims === 2 ? p.argmax(1) : p.narrow(1, 1, 1).squeeze(1).ge(c.threshold).to('int64');
        if (!c.largestComponent) return labels;
        const classes = Array.from({ length: c.classes - 1 }, (_, i) => i + 1);
        const kept = largestConnectedComponent(labels.to('cpu'), { classes, spatialDims: dims });
        return kept.to(labels.device);
      });
    } finally {
      logits.dispose();
    }
  }

  return {
    networks: { student, teacher },
    main: 'student',
    optimizer: () => optimizer,
    stages: [
      {
        name: 'pretrain',
        iterations: c.pretrainIterations,
        labeledOnly: true,
        // self-training takes over the optimizer state of the best pre-training checkpoint (ACDC recipe)
        bestKeepsOptimizer: c.bcp.keepOptimizer,
        begin: async () => undefined,
        async step(batch, it) {
          const bag = new Bag();
          try {
            const [a, b] = [bag.add(batch.images.narrow(0, 0, K)), bag.add(batch.images.narrow(0, K, K))];
            const [ya, yb] = [bag.add(batch.labels.narrow(0, 0, K)), bag.add(batch.labels.narrow(0, K, K))];
            const m = bidirectionalCopyPaste(a, ya, b, yb, boxFor(a, it, 0), { alpha: 1, pairing: 'same' });
            Object.values(m).forEach((t) => bag.add(t));
            student.train();
            const logits = bag.add(await student.forward(m.mixedOut, fwd));
            const l = bag.add(loss(logits, m.targetOut, m.weightOut));
            const value = await optimizeStep(optimizer, l, it);
            return { loss: value, parts: { mix: value } };
          } finally {
            bag.free();
          }
        },
      },
      {
        name: 'train',
        iterations: c.iterations,
        labeledOnly: false,
        async begin(resuming, bestOfPrevious) {
          optimizer = makeOptimizer(student, c);
          if (resuming) return;
          // bcp.keepOptimizer (the official ACDC code's load_net_opt): the pre-training SGD state too, so the
          // momentum buffers carry over; otherwise (its LA code) the weights only and a fresh optimizer
          if (bestOfPrevious) await loadCheckpoint(bestOfPrevious, { network: student, optimizer: c.bcp.keepOptimizer ? optimizer : undefined, restoreRng: false });
          const weights = student.stateDict();
          teacher.loadStateDict(weights);
          dispose(weights);
        },
        async step(batch, it) {
          const bag = new Bag();
          try {
            const l = bag.add(batch.images.narrow(0, 0, L));
            const y = bag.add(batch.labels.narrow(0, 0, L));
            const u = bag.add(batch.images.narrow(0, L, L));
            // As the official code: the teacher sees each unlabeled half, and the student each mix, in its
            // own forward pass (BatchNorm statistics per half).
            const plabA = bag.add(await pseudoLabels(bag.add(u.narrow(0, 0, K))));
            const plabB = bag.add(await pseudoLabels(bag.add(u.narrow(0, K, K))));
            const plab = bag.add(cat([plabA, plabB], 0));
            const m = bidirectionalCopyPaste(l, y, u, plab, boxFor(l, it, 1), { alpha: c.alpha, pairing: c.pairing });
            Object.values(m).forEach((t) => bag.add(t));
            student.train();
            const outIn = bag.add(await student.forward(m.mixedIn, fwd));
            const outOut = bag.add(await student.forward(m.mixedOut, fwd));
            const lin = bag.add(loss(outIn, m.targetIn, m.weightIn));
            const lout = bag.add(loss(outOut, m.targetOut, m.weightOut));
            const total = bag.add(lin.add(lout));
            const value = await optimizeStep(optimizer, total, it);
            emaUpdate(teacher, student, { alpha: c.emaAlpha, scope: c.emaScope });
            return { loss: value, parts: { in: Number(lin.item()), out: Number(lout.item()) } };
          } finally {
            bag.free();
          }
        },
      },
    ],
    state: () => ({}),
    restore: () => undefined,
    dispose: () => {
      student.dispose();
      teacher.dispose();
    },
  };
}
