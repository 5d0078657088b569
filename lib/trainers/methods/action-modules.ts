/**
 * ACTION's training-only pieces (spec 5), checked against the official code (charlesyou999648/ACTION):
 * - ContrastQueue: K keys of the teacher (K = 36), initialised N(0, 1) and normalised along dim 0 as the
 *   official code does; keys go in unnormalised, after the loss of the step, through a ring pointer
 *   (in place, one native op: queueEnqueue).
 * - distillationLoss: cosine similarities of student and teacher embeddings to the queue, temperatures
 *   0.1 / 0.01, KL(softmax(t) || softmax(s)) with batchmean.
 * - GlobalHead: global average pool -> Linear 256 -> 256 -> Linear 256 -> 512 (no activation, as the
 *   official MLP); Predictor: Linear 512 -> 512 -> 512.
 * - LocalHead: windows of the output logits (64 wide, stride 32, every window including the last
 *   position), each average-pooled to 8 per axis, then 1x1 convs C -> 2C -> C (the predictor: C -> C -> C),
 *   flattened to one vector per window.
 * - RepresentationHead: the bottleneck and the decoder features upsampled (bilinear, align corners) to
 *   one size and concatenated, 3x3 conv (no bias) -> `channels`, 1x1 conv -> `channels`.
 * - ancoLoss: ReCo-style pixel-to-prototype InfoNCE with hard queries and negatives drawn in proportion
 *   to softmax(cos(proto_c, proto_j) / T); the draws are native (ancoSample op, seeded from the method's
 *   generator) and separate from the loss (ancoLossWith), so a test can hand both sides the same draws.
 */
import { randn, tensor } from '../../create.js';
import { callOp } from '../../call.js';
import type { NativeTensorHandle } from '../../native.js';
import { cat, conv, interpolate, oneHot, stack } from '../../functional.js';
import type { StateDict } from '../../named.js';
import { noGrad } from '../../runtime.js';
import { dispose, tidy } from '../../scope.js';
import { wrap, type Tensor } from '../../tensor.js';
import { addLinear, linear } from './layers.js';

/** x / max(||x||_2, 1e-12) along `dim` (torch.nn.functional.normalize). */
export function normalize(x: Tensor, dim: number): Tensor {
  return tidy(() => x.div(x.square().sum(dim, true).sqrt().clamp(1e-12)));
}

export class ContrastQueue {
  readonly keys: Tensor;
  ptr = 0;
  constructor(
    readonly size: number,
    readonly dim: number,
    device = 'cpu',
  ) {
    this.keys = tidy(() => normalize(randn([size, dim], { device: device as 'cpu' }), 0));
  }

  /** Writes `batch` (n, dim) at the pointer, wrapping around, and moves the pointer on (one native op). */
  enqueue(batch: Tensor): void {
    if (batch.shape.length !== 2 || batch.shape[1] !== this.dim) throw new Error(`ContrastQueue: keys of ${batch.shape[1]} values, the queue holds ${this.dim}`);
    this.ptr = Number(callOp('queueEnqueue', [this.keys.handle('enqueue'), batch.handle('enqueue'), this.ptr]));
  }

  dispose(): void {
    this.keys.dispose();
  }
}

/** KL(softmax(t) || softmax(s)), batchmean, of the cosine similarities to the queue's keys. */
export function distillationLoss(student: Tensor, teacher: Tensor, keys: Tensor, o: { studentTemperature: number; teacherTemperature: number }): Tensor {
  return tidy(() => {
    const k = normalize(keys, 1).transpose(0, 1);
    const s = normalize(student, 1).matmul(k).div(o.studentTemperature);
    const t = normalize(teacher, 1).matmul(k).div(o.teacherTemperature);
    const logT = t.logSoftmax(1);
    return logT.exp().mul(logT.sub(s.logSoftmax(1))).sum().div(student.shape[0]);
  });
}

/** Parameters of a module, by name, with its forward. */
abstract class Module {
  readonly params: StateDict = {};
  parameters(): Tensor[] {
    return Object.values(this.params);
  }
  dispose(): void {
    dispose(Object.values(this.params));
  }
}

/** Global pool of the bottleneck, then Linear in -> in -> out (no activation, as the official MLP). */
export class GlobalHead extends Module {
  constructor(inChannels: number, out: number, device = 'cpu') {
    super();
    addLinear(this.params, 'fc1', inChannels, inChannels, device);
    addLinear(this.params, 'fc2', inChannels, out, device);
  }
  forward(bottleneck: Tensor): Tensor {
    return tidy(() => {
      const pooled = bottleneck.mean(bottleneck.shape.slice(2).map((_, i) => i + 2));
      return linear(linear(pooled, this.params['fc1.weight'], this.params['fc1.bias']), this.params['fc2.weight'], this.params['fc2.bias']);
    });
  }
}

/** Two Linear dim -> dim layers (no activation): the student's predictor. */
export class Predictor extends Module {
  constructor(dim: number, device = 'cpu') {
    super();
    addLinear(this.params, 'fc1', dim, dim, device);
    addLinear(this.params, 'fc2', dim, dim, device);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => linear(linear(x, this.params['fc1.weight'], this.params['fc1.bias']), this.params['fc2.weight'], this.params['fc2.bias']));
  }
}

/** Window origins along one axis: 0, stride, ... and the last position (side - window), each once. */
export function windowStarts(side: number, window: number, stride: number): number[] {
  if (side < window) throw new Error(`LocalHead: the ${window}-wide window does not fit a side of ${side}`);
  const out: number[] = [];
  for (let s = 0; s + window <= side; s += stride) out.push(s);
  if (out[out.length - 1] !== side - window) out.push(side - window);
  return out;
}

/**
 * The local embeddings of ACTION's stage 2: windows of the logits (B, C, ...spatial), average-pooled to
 * `pool` per axis, projected by 1x1 convs C -> 2C -> C (`predictor`: C -> C -> C on top), flattened:
 * (B * windows, C * pool^dims).
 */
export class LocalHead extends Module {
  constructor(
    readonly classes: number,
    readonly dims: 2 | 3,
    readonly options: { window: number; stride: number; pool: number; predictor: boolean; device?: string } = { window: 64, stride: 32, pool: 8, predictor: false },
  ) {
    super();
    const dev = options.device ?? 'cpu';
    const k = new Array<number>(dims).fill(1);
    addLinear(this.params, 'conv1', classes, 2 * classes, dev, k);
    addLinear(this.params, 'conv2', 2 * classes, classes, dev, k);
    if (options.predictor) {
      addLinear(this.params, 'pred1', classes, classes, dev, k);
      addLinear(this.params, 'pred2', classes, classes, dev, k);
    }
  }

  /** The pooled windows (B * windows, C, pool, ...) of `logits`, windows row-major over the axes. */
  windows(logits: Tensor): Tensor {
    const { window, stride, pool } = this.options;
    if (window % pool !== 0) throw new Error(`LocalHead: a ${window}-wide window does not pool evenly to ${pool}`);
    const [B, C, ...sp] = logits.shape;
    const starts = sp.map((s) => windowStarts(s, window, stride));
    const origins: number[][] = [[]];
    for (const axis of starts) origins.splice(0, origins.length, ...origins.flatMap((o) => axis.map((s) => [...o, s])));
    const f = window / pool;
    return tidy(() => {
      const crops = origins.map((o) => o.reduce((t, s, k) => t.narrow(2 + k, s, window), logits));
      const all = stack(crops, 1).reshape([B * origins.length, C, ...new Array<number>(this.dims).fill(window)]);
      // average pooling by f per axis: split every axis into (pool, f) and average the f's
      const split = all.reshape([B * origins.length, C, ...new Array<number>(this.dims).fill(0).flatMap(() => [pool, f])]);
      return split.mean(new Array<number>(this.dims).fill(0).map((_, i) => 3 + 2 * i));
    });
  }

  forward(logits: Tensor): Tensor {
    return tidy(() => {
      const p = this.params;
      let x = conv(conv(this.windows(logits), p['conv1.weight'], { bias: p['conv1.bias'] }), p['conv2.weight'], { bias: p['conv2.bias'] });
      if (this.options.predictor) x = conv(conv(x, p['pred1.weight'], { bias: p['pred1.bias'] }), p['pred2.weight'], { bias: p['pred2.bias'] });
      return x.reshape([x.shape[0], -1]);
    });
  }
}

/**
 * Stage 3's representation head: features (bottleneck and decoder outputs) upsampled bilinearly (align
 * corners) to `size` and concatenated, 3x3 conv (no bias) -> channels, 1x1 conv -> channels.
 */
export class RepresentationHead extends Module {
  constructor(
    readonly inChannels: number,
    readonly channels: number,
    readonly dims: 2 | 3,
    device = 'cpu',
  ) {
    super();
    const k1 = new Array<number>(dims).fill(1);
    addLinear(this.params, 'conv1', inChannels, channels, device, new Array<number>(dims).fill(3), false);
    addLinear(this.params, 'conv2', channels, channels, device, k1);
  }
  forward(features: Tensor[], size: number[]): Tensor {
    return tidy(() => {
      const mode = this.dims === 2 ? 'bilinear' : 'trilinear';
      const up = features.map((f) => (f.shape.slice(2).join() === size.join() ? f : interpolate(f, { size, mode, alignCorners: true })));
      const x = cat(up, 1);
      if (x.shape[1] !== this.inChannels) throw new Error(`RepresentationHead: ${x.shape[1]} feature channels, built for ${this.inChannels}`);
      const h = conv(x, this.params['conv1.weight'], { padding: 1 });
      return conv(h, this.params['conv2.weight'], { bias: this.params['conv2.bias'] });
    });
  }
}

export interface AncoOptions {
  temperature: number;
  queries: number;
  negatives: number;
  /** A pixel of class c is hard when the student's probability of c is below this. */
  hardThreshold: number;
}

/** Uniform draws in [0, 1). */
export type Draw = () => number;

/** The draws of one ancoLoss call: per present class with hard pixels, its queries and their negatives. */
export interface AncoSamples {
  /** Present classes (with valid pixels), ascending. */
  present: number[];
  perClass: { cls: number; queries: number[]; negatives: number[] }[];
}

/** Row-major (B * ...spatial, D) view of (B, D, ...spatial) representations. */
function flatten(rep: Tensor): Tensor {
  const [B, D, ...sp] = rep.shape;
  return rep.permute([0, ...sp.map((_, i) => i + 2), 1]).reshape([B * sp.reduce((a, s) => a * s, 1), D]);
}

/** Mean representation of every class over its valid pixels, (classes, D), and each class's count (detached). */
function classMeans(flat: Tensor, labels: Tensor, valid: Tensor, classes: number): { means: Tensor; counts: number[] } {
  return noGrad(() =>
    tidy(() => {
      const P = flat.shape[0];
      const mask = oneHot(labels.reshape([P]), classes).to(flat.dtype as 'float32').mul(valid.reshape([P, 1]).to(flat.dtype as 'float32'));
      const countT = mask.sum(0);
      const counts = Array.from(countT.toArray() as Float32Array);
      const means = mask.transpose(0, 1).matmul(flat).div(countT.clamp(1).unsqueeze(1));
      return { means, counts };
    }),
  );
}

// The draws of ancoSample from flattened representations and their class means (ancoLoss computes both once).
function sampleFrom(means: Tensor, counts: number[], labels: Tensor, valid: Tensor, probs: Tensor, o: AncoOptions, draw: Draw): AncoSamples {
  const C = probs.shape[1];
  const present = counts.map((n, c) => (n > 0 ? c : -1)).filter((c) => c >= 0);
  const seed = Math.floor(draw() * 2 ** 31);
  if (present.length <= 1) return { present, perClass: [] };
  const native = tidy(() => {
    const sp = probs.shape.slice(2);
    const P = labels.shape.reduce((a, s) => a * s, 1);
    const probOfLabel = probs
      .permute([0, ...sp.map((_, i) => i + 2), 1])
      .reshape([P, C])
      .gather(1, labels.reshape([P, 1]))
      .reshape([P]);
    const protoN = normalize(means.indexSelect(0, tensor(present, { dtype: 'int64', device: means.device as 'cpu' })), 1);
    const sims = protoN.matmul(protoN.transpose(0, 1)).div(o.temperature);
    const out = callOp('ancoSample', [labels.reshape([P]).handle(), valid.reshape([P]).handle(), probOfLabel.handle(), present, sims.handle(), o.queries, o.negatives, o.hardThreshold, seed]);
    return (out as NativeTensorHandle[]).map((h) => wrap(h));
  });
  try {
    const classes = Array.from(native[0].toArray() as BigInt64Array, Number);
    const ints = (t: Tensor) => Array.from(t.toArray() as BigInt64Array, Number);
    return { present, perClass: classes.map((cls, i) => ({ cls, queries: ints(native[1 + 2 * i]), negatives: ints(native[2 + 2 * i]) })) };
  } finally {
    dispose(native);
  }
}

// The loss of given draws from flattened representations and their class means.
function lossFrom(flat: Tensor, means: Tensor, samples: AncoSamples, o: Pick<AncoOptions, 'temperature'>): Tensor {
  return tidy(() => {
    if (samples.perClass.length === 0 || samples.present.length <= 1) return flat.sum().mul(0);
    const idx = (xs: number[]) => tensor(xs, { dtype: 'int64', device: flat.device as 'cpu' });
    const protos = means.indexSelect(0, idx(samples.present));
    const D = flat.shape[1];
    let total: Tensor | null = null;
    for (const { cls, queries, negatives } of samples.perClass) {
      const Q = queries.length;
      const N = negatives.length / Q;
      const anchors = normalize(flat.indexSelect(0, idx(queries)), 1); // (Q, D)
      const negs = noGrad(() => normalize(flat.indexSelect(0, idx(negatives)), 1).reshape([Q, N, D]));
      const pos = normalize(protos.narrow(0, samples.present.indexOf(cls), 1), 1); // (1, D)
      const posLogit = anchors.matmul(pos.transpose(0, 1)); // (Q, 1)
      const negLogit = negs.matmul(anchors.unsqueeze(2)).squeeze(2); // (Q, N)
      const ce = cat([posLogit, negLogit], 1).div(o.temperature).logSoftmax(1).narrow(1, 0, 1).mean().neg();
      total = total ? total.add(ce) : ce;
    }
    return (total as Tensor).div(samples.present.length);
  });
}

/**
 * ancoLoss's draws (native: semiseg's ancoSample op, seeded from `draw`): for each present class with
 * hard pixels, `queries` hard pixels with replacement, and for each query `negatives` other present
 * classes drawn from softmax(cos(proto_c, proto_j) / T), each a valid pixel of that class drawn uniformly
 * with replacement.
 */
export function ancoSample(rep: Tensor, labels: Tensor, valid: Tensor, probs: Tensor, o: AncoOptions, draw: Draw): AncoSamples {
  const flat = flatten(rep);
  const { means, counts } = classMeans(flat, labels, valid, probs.shape[1]);
  try {
    return sampleFrom(means, counts, labels, valid, probs, o, draw);
  } finally {
    dispose([flat, means]);
  }
}

/**
 * The loss of given draws: for each sampled class, CE of cos(query, [proto_c, negatives...]) / T with
 * target 0 (prototype and negatives detached); the sum divided by the number of present classes.
 */
export function ancoLossWith(rep: Tensor, labels: Tensor, valid: Tensor, samples: AncoSamples, o: Pick<AncoOptions, 'temperature'>): Tensor {
  return tidy(() => {
    const flat = flatten(rep);
    if (samples.perClass.length === 0 || samples.present.length <= 1) return flat.sum().mul(0);
    const classes = Math.max(Math.max(...samples.present), Number(labels.max().item())) + 1;
    return lossFrom(flat, classMeans(flat, labels, valid, classes).means, samples, o);
  });
}

/**
 * The pixel-to-prototype InfoNCE of ACTION (ReCo's compute_reco_loss). `rep` (B, D, ...spatial);
 * `labels` (B, ...spatial) int64; `valid` (B, ...spatial) bool; `probs` (B, C, ...spatial) the student's
 * softmax (a pixel of class c is hard when its probability of c is below `hardThreshold`). 0 with at
 * most one present class. The flattened representations and class means are computed once for both
 * the draws and the loss.
 */
export function ancoLoss(rep: Tensor, labels: Tensor, valid: Tensor, probs: Tensor, o: AncoOptions, draw: Draw): Tensor {
  return tidy(() => {
    const flat = flatten(rep);
    const { means, counts } = classMeans(flat, labels, valid, probs.shape[1]);
    return lossFrom(flat, means, sampleFrom(means, counts, labels, valid, probs, o, draw), o);
  });
}
