/**
 * ACTION (spec 5): three stages on the U-Net (2-D) or V-Net (3-D) with an EMA teacher (m = 0.99); the
 * extra heads exist during training only, so best.ckpt / final.ckpt hold the plain network.
 * 1. 'global' (the whole batch): the student's GlobalHead + Predictor embedding of the pooled bottleneck
 *    and the teacher's own GlobalHead embedding are compared to a queue of teacher keys
 *    (distillationLoss); the teacher keys are enqueued after the step.
 * 2. 'local': the same on windows of the output logits (LocalHead, its own queue), plus 0.5 (CE + Dice)
 *    on the labeled half.
 * 3. 'train' (anatomical contrast): teacher pseudo-labels and confidences of the unlabeled half, CutMix of
 *    the unlabeled images (a box of half the area from image i + 1 pasted into image i, images, labels and
 *    confidences alike), L_unsup = CE against the mixed pseudo-labels weighted per image by the fraction of
 *    pixels with confidence >= 0.97, and L_anco (ancoLoss) on the RepresentationHead of the bottleneck and
 *    decoder features: labeled pixels and unlabeled pixels with confidence >= 0.7 valid.
 *    L = 0.5 (CE + Dice) + L_unsup + 0.01 L_anco.
 * Where the spec is silent the official code decides (the teacher's heads are trained through the
 * undetached KL target; the queue starts N(0, 1) normalised along dim 0); where the code has quirks the
 * spec decides (every window position, including the last; one embedding per window; one EMA per step).
 */
import { prng } from '../../demo/synthetic.js';
import { cat, interpolate, where } from '../../functional.js';
import { crossEntropy, ceDiceLoss } from '../../losses.js';
import type { StateDict } from '../../named.js';
import type { Network } from '../../nets/network.js';
import { noGrad } from '../../runtime.js';
import { tidy } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import { emaUpdate } from '../../train/ema.js';
import type { TrainConfig } from '../recipes.js';
import type { ProcessGroup } from '../../dist.js';
import { ancoLoss, ContrastQueue, distillationLoss, GlobalHead, LocalHead, Predictor, RepresentationHead } from './action-modules.js';
import { boxMask } from './bcp.js';
import { prefixed } from './layers.js';
import { Bag, makeNetwork, optimizeStep, makeOptimizer, setMode, type MethodRuntime, type Stage } from './common.js';

/** CutMix of ACTION's stage 3: a box of half the area (volume) at a random place, 1 inside. */
export function halfBox(spatial: number[], rand: () => number, like: Tensor): Tensor {
  const d = spatial.length;
  let size: number[];
  if (d === 2) {
    const [H, W] = spatial;
    const area = (H * W) / 2;
    const w = Math.floor(W / 2) + 1 + Math.floor(rand() * Math.max(1, W - Math.floor(W / 2) - 1));
    size = [Math.min(H, Math.max(1, Math.round(area / w))), Math.min(W, w)];
  } else {
    size = spatial.map((s) => Math.max(1, Math.round(s * Math.pow(0.5, 1 / d))));
  }
  const start = spatial.map((s, i) => Math.floor(rand() * Math.max(1, s - size[i] + 1)));
  return boxMask(spatial, { start, size }, like);
}

export function action(c: TrainConfig, inChannels: number): MethodRuntime {
  const a = c.action;
  const dims = c.network === 'UNet2D' ? 2 : 3;
  const student = makeNetwork(c, inChannels);
  const teacher = student.clone();
  const dev = c.device;
  const embed = 512;
  const bottleneck = 256;
  const globalStudent = new GlobalHead(bottleneck, embed, dev);
  const globalPredictor = new Predictor(embed, dev);
  const globalTeacher = new GlobalHead(bottleneck, embed, dev);
  const localOptions = { window: a.window, stride: a.window / 2, pool: a.pool, device: dev };
  const localStudent = new LocalHead(c.classes, dims, { ...localOptions, predictor: true });
  const localTeacher = new LocalHead(c.classes, dims, { ...localOptions, predictor: false });
  const representation = new RepresentationHead(256 + 128 + 64 + 32 + 16, a.representation, dims, dev);
  const globalQueue = new ContrastQueue(a.queue, embed, dev);
  const localQueue = new ContrastQueue(a.queue, c.classes * Math.pow(a.pool, dims), dev);
  const heads = [globalStudent, globalPredictor, globalTeacher, localStudent, localTeacher, representation];
  const optimizer = makeOptimizer([{ params: student }, { params: heads.flatMap((h) => h.parameters()) }], c);
  const L = c.labeledBatch;
  const temps = { studentTemperature: a.studentTemperature, teacherTemperature: a.teacherTemperature };

  // Data-parallel: every rank enqueues the whole group's keys (rank order), so the queues stay identical.
  let group: ProcessGroup | undefined;
  const gathered = async (keys: Tensor, bag: Bag): Promise<Tensor> => (group ? bag.add(await group.allGather(keys)) : keys);
  const afterStep = async (loss: Tensor, it: number) => {
    const value = await optimizeStep(optimizer, loss, it);
    emaUpdate(teacher, student, { alpha: c.emaAlpha, scope: c.emaScope });
    return value;
  };

  async function teacherOut(x: Tensor): Promise<{ logits: Tensor; features: Tensor[] }> {
    setMode(teacher, c.teacherMode);
    return noGrad(() => teacher.forwardFeatures(x));
  }

  async function teacherLogits(x: Tensor): Promise<Tensor> {
    setMode(teacher, c.teacherMode);
    return noGrad(() => teacher.forward(x));
  }

  const globalStage: Stage = {
    name: 'global',
    iterations: a.globalIterations,
    labeledOnly: false,
    begin: async () => undefined,
    async step(batch, it) {
      const bag = new Bag();
      try {
        student.train();
        const s = await student.forwardFeatures(batch.images);
        [s.logits, ...s.features].forEach((t) => bag.add(t));
        const t = await teacherOut(batch.images);
        [t.logits, ...t.features].forEach((x) => bag.add(x));
        const sEmb = bag.add(globalPredictor.forward(bag.add(globalStudent.forward(s.features[4]))));
        const tEmb = bag.add(globalTeacher.forward(t.features[4]));
        const loss = bag.add(distillationLoss(sEmb, tEmb, globalQueue.keys, temps));
        const value = await afterStep(loss, it);
        globalQueue.enqueue(await gathered(bag.add(tEmb.detach()), bag));
        return { loss: value, parts: { global: value } };
      } finally {
        bag.free();
      }
    },
  };

  const localStage: Stage = {
    name: 'local',
    iterations: a.localIterations,
    labeledOnly: false,
    begin: async () => undefined,
    async step(batch, it) {
      const bag = new Bag();
      try {
        student.train();
        const logits = bag.add(await student.forward(batch.images));
        const tLogits = bag.add(await teacherLogits(batch.images));
        const sEmb = bag.add(localStudent.forward(logits));
        const tEmb = bag.add(localTeacher.forward(tLogits));
        const local = bag.add(distillationLoss(sEmb, tEmb, localQueue.keys, temps));
        const sup = bag.add(ceDiceLoss(bag.add(logits.narrow(0, 0, L)), bag.add(batch.labels.narrow(0, 0, L)), c.dice));
        const loss = bag.add(local.add(sup));
        const value = await afterStep(loss, it);
        localQueue.enqueue(await gathered(bag.add(tEmb.detach()), bag));
        return { loss: value, parts: { local: Number(local.item()), sup: Number(sup.item()) } };
      } finally {
        bag.free();
      }
    },
  };

  const contrastStage: Stage = {
    name: 'train',
    iterations: c.iterations,
    labeledOnly: false,
    async begin(resuming) {
      // the teacher restarts from the student that stages 1 and 2 produced (the official stage-3 start)
      if (!resuming) emaUpdate(teacher, student, { alpha: 0, scope: 'all' });
    },
    async step(batch, it) {
      const bag = new Bag();
      try {
        const B = batch.images.shape[0];
        const U = B - L;
        const spatial = batch.images.shape.slice(2);
        const rand = prng((c.seed * 7 + 3 * 7919 + it * 15485863) >>> 0);
        const u = bag.add(batch.images.narrow(0, L, U));
        const tLogits = bag.add(await teacherLogits(u));
        const [conf, pseudo] = noGrad(() => tidy(() => {
          const p = tLogits.softmax(1);
          return [p.max(1), p.argmax(1)];
        }));
        bag.add(conf);
        bag.add(pseudo);
        // CutMix: image i keeps its outside, takes image i + 1's box
        const boxes = Array.from({ length: U }, () => bag.add(halfBox(spatial, rand, u)));
        const next = (t: Tensor, i: number) => t.narrow(0, (i + 1) % U, 1);
        const mixOf = (t: Tensor) => bag.add(tidy(() => cat(boxes.map((m, i) => where(m.gt(0.5), next(t, i), t.narrow(0, i, 1))), 0)));
        const uMix = mixOf(u);
        const yMix = mixOf(pseudo);
        const confMix = mixOf(conf);
        student.train();
        const s = await student.forwardFeatures(bag.add(cat([bag.add(batch.images.narrow(0, 0, L)), uMix], 0)));
        [s.logits, ...s.features].forEach((t) => bag.add(t));
        const yL = bag.add(batch.labels.narrow(0, 0, L));
        const sup = bag.add(ceDiceLoss(bag.add(s.logits.narrow(0, 0, L)), yL, c.dice));
        const unsup = bag.add(
          tidy(() => {
            const logitsU = s.logits.narrow(0, L, U);
            const perImage = Array.from({ length: U }, (_, i) => {
              const w = confMix.narrow(0, i, 1).ge(a.confidence).to('float32').mean();
              return crossEntropy(logitsU.narrow(0, i, 1), yMix.narrow(0, i, 1)).mul(w);
            });
            return perImage.reduce((x, y) => x.add(y)).div(U);
          }),
        );
        const size = spatial.map((x) => Math.max(1, Math.round(x * a.representationScale)));
        const rep = bag.add(representation.forward(s.features.slice(4), size));
        const anco = bag.add(
          tidy(() => {
            const resize = (t: Tensor) => (size.join() === spatial.join() ? t : interpolate(t.unsqueeze(1).to('float32'), { size, mode: 'nearest' }).squeeze(1));
            const labels = resize(cat([yL, yMix], 0)).to('int64');
            const validU = confMix.ge(a.valid);
            const valid = resize(cat([yL.ge(0), validU], 0).to('float32')).gt(0.5);
            const probs = noGrad(() => {
              const p = s.logits.detach().softmax(1);
              return size.join() === spatial.join() ? p : interpolate(p, { size, mode: dims === 2 ? 'bilinear' : 'trilinear', alignCorners: true });
            });
            return ancoLoss(rep, labels, valid, probs, { temperature: a.temperature, queries: a.queries, negatives: a.negatives, hardThreshold: a.confidence }, rand);
          }),
        );
        const loss = bag.add(tidy(() => sup.add(unsup).add(anco.mul(a.weight))));
        const value = await afterStep(loss, it);
        return { loss: value, parts: { sup: Number(sup.item()), unsup: Number(unsup.item()), anco: Number(anco.item()) } };
      } finally {
        bag.free();
      }
    },
  };

  const tensors = (): StateDict => ({
    ...prefixed({
      globalStudent: globalStudent.params,
      globalPredictor: globalPredictor.params,
      globalTeacher: globalTeacher.params,
      localStudent: localStudent.params,
      localTeacher: localTeacher.params,
      representation: representation.params,
    }),
    'globalQueue.keys': globalQueue.keys,
    'localQueue.keys': localQueue.keys,
  });

  const nets: Record<string, Network> = { student, teacher };
  return {
    networks: nets,
    main: 'student',
    optimizer: () => optimizer,
    tensors,
    stages: [globalStage, localStage, contrastStage],
    useGroup: (g) => {
      group = g;
    },
    state: () => ({ globalPtr: globalQueue.ptr, localPtr: localQueue.ptr }),
    restore: (st) => {
      const s = st as { globalPtr?: number; localPtr?: number };
      globalQueue.ptr = s.globalPtr ?? 0;
      localQueue.ptr = s.localPtr ?? 0;
    },
    dispose: () => {
      student.dispose();
      teacher.dispose();
      heads.forEach((h) => h.dispose());
      globalQueue.dispose();
      localQueue.dispose();
    },
  };
}
