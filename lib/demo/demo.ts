/**
 * The demo job: trains a small fully-convolutional network on synthetic cardiac-like slices with the Tensor
 * API (autograd + SGD with momentum written with tensor ops) and reports per-class Dice on held-out slices.
 * It stands in for `semiseg demo`'s BCP-vs-supervised comparison until the trainers exist.
 */
import { conv, noGrad, oneHot, randn, tensor, tidy, keep, manualSeed, zeros } from '../index.js';
import type { Tensor } from '../tensor.js';
import { prng, syntheticCardiac } from './synthetic.js';

export interface DemoOptions {
  iterations?: number;
  size?: number;
  batchSize?: number;
  seed?: number;
  learningRate?: number;
  /** Called every `logEvery` iterations and at the end. */
  onProgress?: (p: DemoProgress) => void;
  logEvery?: number;
  signal?: AbortSignal;
}

export interface DemoProgress {
  iteration: number;
  iterations: number;
  loss: number;
  elapsedSeconds: number;
}

export interface DemoResult {
  iterations: number;
  seconds: number;
  /** Dice of classes 1 (RV), 2 (myocardium), 3 (LV) on the held-out slices. */
  dice: number[];
  meanDice: number;
  firstLoss: number;
  lastLoss: number;
}

const CLASSES = 4;
const LAYERS: [number, number, number, number][] = [
  // [out, in, kernel, dilation]
  [16, 1, 3, 1],
  [16, 16, 3, 2],
  [16, 16, 3, 4],
  [16, 16, 3, 1],
  [CLASSES, 16, 1, 1],
];

interface Param {
  w: Tensor;
  b: Tensor;
  vw: Tensor;
  vb: Tensor;
}

/** He-initialised weights, zero biases and zero momentum buffers, kept out of any enclosing tidy. */
function initParams(): Param[] {
  return LAYERS.map(([out, inp, k]) => ({
    w: keep(tidy(() => randn([out, inp, k, k]).mul(Math.sqrt(2 / (inp * k * k))).setRequiresGrad())),
    b: keep(zeros([out], { requiresGrad: true })),
    vw: keep(zeros([out, inp, k, k])),
    vb: keep(zeros([out])),
  }));
}

function forward(params: Param[], x: Tensor): Tensor {
  let h = x;
  params.forEach((p, i) => {
    const [, , k, dilation] = LAYERS[i];
    h = conv(h, p.w, { bias: p.b, padding: dilation * ((k - 1) / 2), dilation });
    if (i < params.length - 1) h = h.relu();
  });
  return h;
}

function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const target = oneHot(labels, CLASSES).permute([0, 3, 1, 2]).to('float32');
  return logits.logSoftmax(1).mul(target).sum(1).mean().neg();
}

/** Per-class Dice (classes 1..C-1) of argmax predictions against labels. */
function dicePerClass(pred: Tensor, labels: Tensor): number[] {
  const out: number[] = [];
  for (let c = 1; c < CLASSES; c++) {
    const p = pred.eq(c);
    const l = labels.eq(c);
    const inter = p.logicalAnd(l).sum().item() as number;
    const total = (p.sum().item() as number) + (l.sum().item() as number);
    out.push(total === 0 ? 1 : (2 * inter) / total);
  }
  return out;
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const { iterations = 300, size = 64, batchSize = 8, seed = 1337, learningRate = 0.02, logEvery = 25 } = options;
  manualSeed(seed);
  const train = syntheticCardiac({ n: 64, size, seed });
  const test = syntheticCardiac({ n: 16, size, seed: seed + 1 });
  const trainX = tensor(train.images, { shape: [train.n, 1, size, size] });
  const trainY = tensor(train.labels, { shape: [train.n, size, size], dtype: 'int64' });
  const params = initParams();
  const pick = prng(seed);
  const started = Date.now();
  let firstLoss = NaN;
  let lastLoss = NaN;
  try {
    for (let it = 1; it <= iterations; it++) {
      options.signal?.throwIfAborted();
      const idx = new BigInt64Array(batchSize).map(() => BigInt(Math.floor(pick() * train.n)));
      lastLoss = tidy(() => {
        const index = tensor(idx);
        const loss = crossEntropy(forward(params, trainX.indexSelect(0, index)), trainY.indexSelect(0, index));
        loss.backward();
        return loss.item() as number;
      });
      if (!Number.isFinite(lastLoss)) throw new Error(`demo: the loss became ${lastLoss} at iteration ${it}`);
      if (it === 1) firstLoss = lastLoss;
      noGrad(() => sgdStep(params, learningRate));
      if (it % logEvery === 0 || it === iterations) {
        options.onProgress?.({ iteration: it, iterations, loss: lastLoss, elapsedSeconds: (Date.now() - started) / 1000 });
        await new Promise((r) => setImmediate(r)); // let the host's event loop turn
      }
    }
    const dice = tidy(() => {
      const x = tensor(test.images, { shape: [test.n, 1, size, size] });
      const y = tensor(test.labels, { shape: [test.n, size, size], dtype: 'int64' });
      return dicePerClass(noGrad(() => forward(params, x)).argmax(1), y);
    });
    return {
      iterations,
      seconds: (Date.now() - started) / 1000,
      dice,
      meanDice: dice.reduce((a, b) => a + b, 0) / dice.length,
      firstLoss,
      lastLoss,
    };
  } finally {
    for (const p of params) for (const t of [p.w, p.b, p.vw, p.vb]) t.dispose();
    trainX.dispose();
    trainY.dispose();
  }
}

/** SGD with momentum 0.9: v = 0.9 v + g; p = p - lr v. Parameters are replaced by new leaf tensors. */
function sgdStep(params: Param[], lr: number): void {
  for (const p of params) {
    for (const [key, vel] of [['w', 'vw'], ['b', 'vb']] as const) {
      const [next, v] = tidy(() => {
        const velocity = p[vel].mul(0.9).add(p[key].grad!);
        return [p[key].sub(velocity, lr).detach().setRequiresGrad(), velocity];
      });
      p[key].dispose();
      p[vel].dispose();
      p[key] = next;
      p[vel] = v;
    }
  }
}
