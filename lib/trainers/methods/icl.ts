/**
 * ICL, Inherent Consistent Learning (spec 6): a 2-D U-Net with SSPA and USCL attached to its decoder
 * (up1, up2, up3: 128, 64 and 32 channels) during training only; no teacher.
 * - SSPA on the labeled features (its own class queries) gives maps that the labels supervise (L_aux),
 *   and on the unlabeled features gives maps that USCL must agree with (L_cons);
 * - USCL on the unlabeled features with SSPA's labeled queries (the batch mean of SSPA's updated
 *   queries at each scale) gives maps that must agree with the network's own unlabeled prediction
 *   (L_pse) and with SSPA's unlabeled maps (L_cons).
 * L = L_seg + L_aux + L_pse + w L_cons (w = 50 in the 2-D recipe); L_seg = CE + Dice on the labeled
 * logits, L_aux = CE + Dice of each SSPA labeled map upsampled to the input, L_pse = soft Dice between
 * the softmaxes of each upsampled USCL map and of the detached unlabeled logits, L_cons = MSE between
 * the softmaxes of USCL's and of the detached SSPA unlabeled maps; each averaged over the scales.
 * Only the U-Net goes into best.ckpt / final.ckpt, so the saved model is the plain U-Net; the modules'
 * parameters go into last.ckpt for resuming.
 */
import { interpolate } from '../../functional.js';
import { crossEntropy, diceLoss } from '../../losses.js';
import type { StateDict } from '../../named.js';
import { tidy } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import type { TrainConfig } from '../recipes.js';
import { Bag, makeNetwork, optimizeStep, makeOptimizer, type MethodRuntime } from './common.js';
import { ICL_SCALES, IclAdaptor } from './icl-modules.js';
import { prefixed } from './layers.js';

/** Soft Dice between probability maps: 1 - mean_c (2 sum(p q) + s) / (sum(p^2) + sum(q^2) + s). */
export function softDice(p: Tensor, q: Tensor, smooth = 1e-5): Tensor {
  return tidy(() => {
    const dims = [0, ...p.shape.slice(2).map((_, i) => i + 2)];
    const inter = p.mul(q).sum(dims);
    const denom = p.square().sum(dims).add(q.square().sum(dims));
    return inter.mul(2).add(smooth).div(denom.add(smooth)).mean().neg().add(1);
  });
}

/** The four ICL losses from the network's outputs and the two modules' maps (exported for tests). */
export function iclLosses(
  o: { logits: Tensor; labels: Tensor; labeled: number; sspaLabeled: Tensor[]; sspaUnlabeled: Tensor[]; usclUnlabeled: Tensor[] },
  c: Pick<TrainConfig, 'dice' | 'iclConsistency'>,
): { total: Tensor; seg: Tensor; aux: Tensor; pse: Tensor; cons: Tensor } {
  return tidy(() => {
    const [B, , ...size] = o.logits.shape;
    const L = o.labeled;
    const up = (m: Tensor) => interpolate(m, { size, mode: 'bilinear', alignCorners: false });
    const ceDice = (x: Tensor, y: Tensor) => crossEntropy(x, y).add(diceLoss(x, y, { ...c.dice, softmax: true }));
    const y = o.labels.narrow(0, 0, L);
    const seg = ceDice(o.logits.narrow(0, 0, L), y);
    const n = o.sspaLabeled.length;
    const mean = (terms: Tensor[]) => terms.reduce((a, t) => a.add(t)).div(n);
    const aux = mean(o.sspaLabeled.map((m) => ceDice(up(m), y)));
    const target = o.logits.narrow(0, L, B - L).detach().softmax(1);
    const pse = mean(o.usclUnlabeled.map((m) => softDice(up(m).softmax(1), target)));
    const cons = mean(o.usclUnlabeled.map((m, i) => m.softmax(1).sub(o.sspaUnlabeled[i].detach().softmax(1)).square().mean()));
    const total = seg.add(aux).add(pse).add(cons.mul(c.iclConsistency));
    return { total, seg, aux, pse, cons };
  });
}

export function icl(c: TrainConfig, inChannels: number): MethodRuntime {
  if (c.network !== 'UNet2D') throw new Error(`icl: the method attaches to the 2-D U-Net, not ${c.network}`);
  const net = makeNetwork(c, inChannels);
  const sspa = new IclAdaptor(c.classes, { queries: true, device: c.device });
  const uscl = new IclAdaptor(c.classes, { queries: false, device: c.device });
  const optimizer = makeOptimizer([{ params: net }, { params: [...sspa.parameters(), ...uscl.parameters()] }], c);
  const L = c.labeledBatch;
  const tensors = (): StateDict => prefixed({ sspa: sspa.params, uscl: uscl.params });
  return {
    networks: { net },
    main: 'net',
    optimizer: () => optimizer,
    tensors,
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
            net.train();
            const out = await net.forwardFeatures(batch.images);
            bag.add(out.logits);
            out.features.forEach((f) => bag.add(f));
            // Decoder outputs of up1..up3 (features 5..7): 128, 64 and 32 channels.
            const decoder = out.features.slice(5, 5 + ICL_SCALES.length);
            const half = (from: number, count: number) => decoder.map((f) => bag.add(f.narrow(0, from, count)));
            const labeledFeatures = half(0, L);
            const unlabeledFeatures = half(L, B - L);
            const sl = sspa.forward(labeledFeatures);
            const su = sspa.forward(unlabeledFeatures);
            [...sl.maps, ...sl.queries, ...su.maps, ...su.queries].forEach((t) => bag.add(t));
            const guide = sl.queries.map((q) => bag.add(q.mean(0)));
            const uu = uscl.forward(unlabeledFeatures, guide);
            [...uu.maps, ...uu.queries].forEach((t) => bag.add(t));
            const r = iclLosses(
              { logits: out.logits, labels: batch.labels, labeled: L, sspaLabeled: sl.maps, sspaUnlabeled: su.maps, usclUnlabeled: uu.maps },
              c,
            );
            Object.values(r).forEach((t) => bag.add(t));
            const value = await optimizeStep(optimizer, r.total, it);
            const num = (t: Tensor) => Number(t.item());
            return { loss: value, parts: { seg: num(r.seg), aux: num(r.aux), pse: num(r.pse), cons: num(r.cons) } };
          } finally {
            bag.free();
          }
        },
      },
    ],
    state: () => ({}),
    restore: () => undefined,
    dispose: () => {
      net.dispose();
      sspa.dispose();
      uscl.dispose();
    },
  };
}
