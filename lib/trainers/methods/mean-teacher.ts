/**
 * Mean Teacher (spec 1.3, 7): supervised 0.5 * (CE + Dice) on the labeled half; the teacher (an EMA of
 * the student, in train mode by default) sees the unlabeled half with clamped Gaussian noise; the
 * consistency is the MSE of the two softmaxes, weighted by the ramp-up (0 before `consistencyStart`).
 */
import { randn } from '../../create.js';
import { ceDiceLoss, softmaxMse } from '../../losses.js';
import { noGrad } from '../../runtime.js';
import { tidy } from '../../scope.js';
import { emaUpdate } from '../../train/ema.js';
import type { TrainConfig } from '../recipes.js';
import { Bag, makeNetwork, optimizeStep, rampup, setMode, makeOptimizer, type MethodRuntime } from './common.js';
import { float32, forwardOptions } from './precision.js';

export function meanTeacher(c: TrainConfig, inChannels: number): MethodRuntime {
  const student = makeNetwork(c, inChannels);
  const teacher = student.clone();
  const optimizer = makeOptimizer(student, c);
  const L = c.labeledBatch;
  const fwd = forwardOptions(c); // mixed precision (c.precision): autocast forwards, losses on float32 logits
  return {
    networks: { student, teacher },
    main: 'student',
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
            const u = bag.add(batch.images.narrow(0, L, B - L));
            const noise = bag.add(tidy(() => randn(u.shape, { device: u.device }).mul(0.1).clamp(-0.2, 0.2)));
            const teacherIn = bag.add(u.add(noise));
            student.train();
            const logits = float32(bag, bag.add(await student.forward(batch.images, fwd)));
            setMode(teacher, c.teacherMode);
            const teacherLogits = float32(bag, bag.add(await noGrad(() => teacher.forward(teacherIn, fwd))));
            const sup = bag.add(ceDiceLoss(bag.add(logits.narrow(0, 0, L)), bag.add(batch.labels.narrow(0, 0, L)), c.dice));
            const w = it - 1 < c.consistencyStart ? 0 : rampup(it - 1, c.consistency, c.rampup);
            const cons = bag.add(softmaxMse(bag.add(logits.narrow(0, L, B - L)), teacherLogits));
            const loss = bag.add(sup.add(bag.add(cons.mul(w))));
            const value = await optimizeStep(optimizer, loss, it);
            emaUpdate(teacher, student, { alpha: c.emaAlpha, iteration: it - 1, scope: c.emaScope });
            return { loss: value, parts: { sup: Number(sup.item()), consistency: Number(cons.item()), weight: w } };
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
