/**
 * VerSemi (spec 4): one V-Net (InstanceNorm, no block_nine, no final skip) and a task-prompted dynamic
 * head (versemi-modules.ts) trained across T tasks (datasets), each binary, plus a synthetic CutMix task T.
 * - Stage 1 ('pretrain', labeled only): L_sup (CE + foreground Dice of each sample under its own task)
 *   + L_synth (the synthetic task on x_mix = x_a M + x_b (1 - M), a per-sample cube of floor(2/3 side),
 *   must predict y_mix) + (L_a + L_b) / 2 (task a's head predicts y_a M, task b's y_b (1 - M); both y_mix
 *   when the tasks agree).
 * - Stage 2 ('train', adds unlabeled): the stage-1 terms on the labeled half, and on x_u' = x_l M' +
 *   x_u (1 - M') (a labeled cube of ratio r ~ U(0.3, 0.6) pasted into an unlabeled image) the synthetic
 *   task's foreground s must agree (soft Dice) with the element-wise max over the T task heads'
 *   foregrounds (detached) and, inside the cube, with the labeled ground truth (label-shaped mask).
 * The head's task-independent part (controller BatchNorm + pooling, pre-head BatchNorm + conv) runs once
 * per step on the whole batch, so its running statistics advance once per forward of the backbone; only
 * the task code varies between the heads a step asks for.
 * Validation runs each volume under its task with the LA sliding-window protocol, natively, on the native
 * VerSemi network (nets.VerSemi: backbone, controller and head as one network) refreshed from the trained
 * weights. best.ckpt / final.ckpt hold the backbone and, as named tensors, the head: loadVerSemi reads
 * them as the TypeScript model, loadVerSemiNetwork (and Segmenter, semiseg predict / evaluate --task) as
 * the native network.
 */
import { prng } from '../../demo/synthetic.js';
import { cat, stack, where } from '../../functional.js';
import { tensor } from '../../create.js';
import { slidingWindowWith } from '../../infer.js';
import { loadCheckpoint, readCheckpointInfo } from '../../io/checkpoint.js';
import { crossEntropy, diceLoss } from '../../losses.js';
import { binaryMetrics } from '../../metrics.js';
import type { StateDict } from '../../named.js';
import { nets } from '../../nets/index.js';
import type { Network } from '../../nets/network.js';
import { noGrad } from '../../runtime.js';
import { dispose, tidy } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import type { TrainData, Volume } from '../data.js';
import type { TrainConfig } from '../recipes.js';
import { predictVolume, windowStrides, type InferenceSettings, type PredictionHook, type ValidationResult } from '../validate.js';
import type { VerSemiOptions } from '../../nets/versemi.js';
import { boxMask, randomBox } from './bcp.js';
import { Bag, makeNetwork, makeOptimizer, optimizeStep, type MethodRuntime } from './common.js';
import { softDice } from './icl.js';
import { prefixed } from './layers.js';
import { DynamicHead, headRows, type HeadInputs } from './versemi-modules.js';


/** A (B, 1, ...spatial) float mask of one cube per sample: side floor(ratio_i * side), uniform position. */
function cubeMasks(spatial: number[], ratios: number[], rand: () => number, like: Tensor): Tensor {
  return tidy(() => stack(ratios.map((r) => boxMask(spatial, randomBox(spatial, r, rand), like).unsqueeze(0)), 0));
}

/** The backbone's bottleneck (x5) and last decoder feature of `x`. */
async function backboneFeatures(net: Network, x: Tensor): Promise<{ bottleneck: Tensor; last: Tensor; all: Tensor[] }> {
  const out = await net.forwardFeatures(x);
  const all = [out.logits, ...out.features];
  return { bottleneck: out.features[4], last: out.features[8], all };
}

/** Foreground probabilities (B, 1, ...spatial) of the head's logits. */
function foreground(logits: Tensor): Tensor {
  return tidy(() => logits.softmax(1).narrow(1, 1, 1));
}

export function versemi(c: TrainConfig, inChannels: number): MethodRuntime {
  if (c.network !== 'VNet3D') throw new Error(`versemi: the method trains the 3-D V-Net, not ${c.network}`);
  if (c.classes !== 2) throw new Error(`versemi: every task is binary (classes 2), got ${c.classes}`);
  const T = c.tasks;
  const net = makeNetwork(c, inChannels);
  const head = new DynamicHead(T, { device: c.device });
  const optimizer = makeOptimizer([{ params: net }, { params: head.parameters() }], c);
  const L = c.labeledBatch;
  const K = Math.floor(L / 2);
  let taskOf: (index: number) => number = () => 0;
  const sup = (logits: Tensor, y: Tensor) =>
    tidy(() => crossEntropy(logits, y).add(diceLoss(logits, y, { ...c.dice, includeBackground: false, softmax: true })));

  // Stage 1's terms on the labeled samples (encoded rows [0, L) for x, [L, L + K) for the CutMix of a / b).
  function labeledTerms(enc: HeadInputs, y: Tensor, tasks: number[], M: Tensor) {
    return tidy(() => {
      const lSup = sup(head.decode(headRows(enc, 0, L), tasks), y);
      if (K === 0) return { sup: lSup, synth: lSup.mul(0) };
      const mix = headRows(enc, L, K);
      const My = M.squeeze(1).gt(0.5);
      const ya = y.narrow(0, 0, K);
      const yb = y.narrow(0, K, K);
      const yMix = where(My, ya, yb);
      const ta = tasks.slice(0, K);
      const tb = tasks.slice(K, 2 * K);
      // task a's head predicts y_a inside the cube, task b's y_b outside; both y_mix where the tasks agree
      const sameTask = tensor(ta.map((t, i) => t === tb[i]), { shape: [K, ...My.shape.slice(1).map(() => 1)], device: My.device as 'cpu' });
      const targetA = where(sameTask, yMix, where(My, ya, 0));
      const targetB = where(sameTask, yMix, where(My, 0, yb));
      const lSynth = sup(head.decode(mix, new Array<number>(K).fill(T)), yMix);
      const lA = sup(head.decode(mix, ta), targetA);
      const lB = sup(head.decode(mix, tb), targetB);
      return { sup: lSup, synth: lSynth.add(lA.add(lB).div(2)) };
    });
  }

  function stage(name: 'pretrain' | 'train', iterations: number, withUnlabeled: boolean) {
    const stageIndex = withUnlabeled ? 1 : 0;
    return {
      name,
      iterations,
      labeledOnly: !withUnlabeled,
      begin: async () => undefined,
      async step(batch: { images: Tensor; labels: Tensor; indices: number[] }, it: number) {
        const bag = new Bag();
        try {
          const B = batch.images.shape[0];
          const spatial = batch.images.shape.slice(2);
          const rand = prng((c.seed * 131 + stageIndex * 7919 + it * 104729) >>> 0);
          const tasks = batch.indices.slice(0, L).map((i) => taskOf(i));
          const x = bag.add(batch.images.narrow(0, 0, L));
          const y = bag.add(batch.labels.narrow(0, 0, L));
          const M = bag.add(cubeMasks(spatial, new Array<number>(K).fill(c.boxRatio), rand, x));
          const parts: Tensor[] = [x];
          if (K > 0) {
            parts.push(bag.add(tidy(() => x.narrow(0, 0, K).mul(M).add(x.narrow(0, K, K).mul(M.mul(-1).add(1))))));
          }
          const U = withUnlabeled ? B - L : 0;
          let Mu: Tensor | null = null;
          if (U > 0) {
            const ratios = Array.from({ length: U }, () => 0.3 + 0.3 * rand());
            Mu = bag.add(cubeMasks(spatial, ratios, rand, x));
            const u = batch.images.narrow(0, L, U);
            const pairedL = stack(Array.from({ length: U }, (_, j) => x.narrow(0, j % L, 1).squeeze(0)), 0);
            parts.push(bag.add(tidy(() => pairedL.mul(Mu as Tensor).add(u.mul((Mu as Tensor).mul(-1).add(1))))));
            dispose([u, pairedL]);
          }
          net.train();
          const f = await backboneFeatures(net, bag.add(cat(parts, 0)));
          f.all.forEach((t) => bag.add(t));
          // the head's task-independent part once for the whole batch: its BatchNorms advance once a step
          const enc = head.encode(f.bottleneck, f.last, true);
          bag.add(enc.pooled);
          bag.add(enc.pre);
          const lab = labeledTerms(enc, y, tasks, M);
          bag.add(lab.sup);
          bag.add(lab.synth);
          let total = bag.add(lab.sup.add(lab.synth));
          const logged: Record<string, number> = { sup: Number(lab.sup.item()), synth: Number(lab.synth.item()) };
          if (U > 0 && Mu) {
            const [cons, cube] = tidy(() => {
              const mixed = headRows(enc, L + K, U);
              const s = foreground(head.decode(mixed, new Array<number>(U).fill(T)));
              const heads = Array.from({ length: T }, (_, k) => foreground(head.decode(mixed, new Array<number>(U).fill(k))).detach());
              const pmax = heads.reduce((m, p) => m.maximum(p));
              const yl = stack(Array.from({ length: U }, (_, j) => y.narrow(0, j % L, 1).squeeze(0)), 0).unsqueeze(1).to(s.dtype as 'float32');
              return [softDice(s, pmax), softDice(s.mul(Mu as Tensor), yl.mul(Mu as Tensor))];
            });
            bag.add(cons);
            bag.add(cube);
            total = bag.add(total.add(cons).add(cube));
            logged.consistency = Number(cons.item());
            logged.cube = Number(cube.item());
          }
          const value = await optimizeStep(optimizer, total, it);
          return { loss: value, parts: logged };
        } finally {
          bag.free();
        }
      },
    };
  }

  const inferenceTensors = () => headTensors(head);
  // The native network (backbone + head as one) that validation runs: made here, with the others, so its
  // initial draws from the generator come at the same point in a resumed run as in an uninterrupted one.
  const native = verSemiNetwork(net, head);

  return {
    networks: { net },
    main: 'net',
    optimizer: () => optimizer,
    tensors: inferenceTensors,
    inferenceTensors,
    buffers: () => head.buffers,
    attach(data: TrainData) {
      const tasks = data.tasks ?? 1;
      if (tasks !== T) throw new Error(`versemi: the data has ${tasks} task(s) but the config trains ${T} (set 'tasks')`);
      if (data.taskOf) taskOf = data.taskOf.bind(data);
    },
    validate: (volumes, settings, signal, onPrediction) => {
      // the native network (backbone + head) serves validation: refreshed from the trained weights each time
      return validateVerSemi(net, head, volumes, settings, signal, native, onPrediction);
    },
    stages: [stage('pretrain', c.pretrainIterations, false), stage('train', c.iterations, true)],
    state: () => ({}),
    restore: () => undefined,
    dispose: () => {
      net.dispose();
      head.dispose();
      native.dispose();
    },
  };
}

/** The head's parameters and running statistics under their checkpoint names ('head.<name>'). */
function headTensors(head: DynamicHead): StateDict {
  return prefixed({ head: { ...head.params, ...head.buffers } });
}

/** Foreground labels of one volume under task `task`: sliding window, p1 >= 0.5. */
export async function predictVerSemi(net: Network, head: DynamicHead, image: Tensor, task: number, s: InferenceSettings, signal?: AbortSignal): Promise<Tensor> {
  const wasTraining = net.training;
  net.eval();
  try {
    const probs = await slidingWindowWith(
      async (windows) => {
        const f = await noGrad(() => backboneFeatures(net, windows));
        try {
          return tidy(() => noGrad(() => head.forward(f.bottleneck, f.last, new Array<number>(windows.shape[0]).fill(task), false).softmax(1)));
        } finally {
          dispose(f.all);
        }
      },
      image,
      { patch: s.size, strides: windowStrides(s), signal },
    );
    try {
      return tidy(() => probs.narrow(0, 1, 1).squeeze(0).ge(0.5).to('int64'));
    } finally {
      probs.dispose();
    }
  } finally {
    if (wasTraining) net.train();
  }
}

/**
 * The native VerSemi network (nets.VerSemi: backbone, controller and head as one network) holding the
 * current weights and running statistics of `net` and `head`; copied into `into` when given.
 */
export function verSemiNetwork(net: Network, head: DynamicHead, into?: Network): Network {
  const target = into ?? nets.VerSemi({ ...(net.options as VerSemiOptions), tasks: head.tasks }).to(net.device);
  const weights = net.stateDict();
  try {
    target.loadStateDict({ ...weights, ...headTensors(head) });
  } catch (err) {
    if (!into) target.dispose();
    throw err;
  } finally {
    dispose(weights);
  }
  return target;
}

/**
 * Mean foreground Dice over the volumes, each under its own task, with the native sliding window on the
 * native VerSemi network (`model`, refreshed from `net` and `head`; a temporary one when absent).
 */
export async function validateVerSemi(
  net: Network,
  head: DynamicHead,
  volumes: Volume[],
  s: InferenceSettings,
  signal?: AbortSignal,
  model?: Network,
  onPrediction?: PredictionHook,
): Promise<ValidationResult> {
  const native = verSemiNetwork(net, head, model);
  try {
    let sum = 0;
    for (const [i, v] of volumes.entries()) {
      const pred = await predictVolume(native, v.image, { ...s, classes: 2, largestComponent: false, ensemble: undefined, task: v.task ?? 0 }, signal);
      try {
        onPrediction?.(v, pred, i);
        const [p, g] = tidy(() => [pred.eq(1), v.label.eq(1)]);
        sum += binaryMetrics(p, g, {}, false).dice;
        dispose([p, g]);
      } finally {
        pred.dispose();
      }
    }
    const dice = sum / Math.max(1, volumes.length);
    return { dice, perClass: [dice] };
  } finally {
    if (!model) native.dispose();
  }
}

/**
 * A VerSemi best.ckpt / final.ckpt as the native VerSemi network (kind 'VerSemi'; its state dict is the
 * checkpoint's backbone keys and head tensors), segmenting task 0 until setNetworkTask says otherwise.
 */
export async function loadVerSemiNetwork(path: string): Promise<Network> {
  const model = await loadVerSemi(path);
  try {
    return verSemiNetwork(model.net, model.head);
  } finally {
    model.dispose();
  }
}

/** A VerSemi model from a best.ckpt / final.ckpt: the backbone, the head and a per-task predictor. */
export async function loadVerSemi(path: string): Promise<{
  net: Network;
  head: DynamicHead;
  tasks: number;
  predict(image: Tensor, task: number, settings: InferenceSettings, signal?: AbortSignal): Promise<Tensor>;
  dispose(): void;
}> {
  const info = await readCheckpointInfo(path);
  const config = (info.extra?.config ?? {}) as Partial<TrainConfig>;
  if (config.method !== 'versemi') throw new Error(`loadVerSemi(): '${path}' was not written by a VerSemi run`);
  const net = nets.fromOptions(info.kind, info.options);
  const head = new DynamicHead(config.tasks ?? 1);
  try {
    await loadCheckpoint(path, { network: net, tensors: headTensors(head), restoreRng: false });
  } catch (err) {
    net.dispose();
    head.dispose();
    throw err;
  }
  return {
    net,
    head,
    tasks: config.tasks ?? 1,
    predict: (image, task, settings, signal) => predictVerSemi(net, head, image, task, settings, signal),
    dispose: () => {
      net.dispose();
      head.dispose();
    },
  };
}

