/**
 * Whole-volume inference with the evaluation protocols of the reference code (spec 1.5).
 * - slidingWindowInference: the LA protocol (patch 112 x 112 x 80, strides 18 / 4, zero padding, softmax
 *   averaged over overlaps), windows batched natively; an optional Gaussian weighting is an extra.
 * - sliceInference: the ACDC protocol, each slice resized to 256 x 256 with scipy's zoom(order=0) rule,
 *   argmax(softmax), resized back, stacked.
 * Both run off the JS thread in one native call (windows or slices batched per forward, accumulators
 * allocated once), in eval mode and without gradients, with BatchNorm folded into the convolutions (a
 * cached copy of the network), in the requested `precision` (see precision.ts), and stop when `signal`
 * aborts.
 */
import { callSite, startNative } from './call.js';
import { padSlices, zoomNearest } from './data/augment.js';
import { native } from './native.js';
import { Network } from './nets/network.js';
import { noGrad, } from './runtime.js';
import { dispose, tidy } from './scope.js';
import { Tensor, tensorArg, wrap } from './tensor.js';
import { checkBool, checkInt, checkIntList, checkObject, typeError } from './validate.js';
import { ones, zeros } from './create.js';
import { pad, stack } from './functional.js';
import { checkPrecision, resolvePrecision, type Precision } from './precision.js';

export interface SlidingWindowOptions {
  patch?: number[];
  strides?: number[];
  /** Windows per forward pass (default 4). */
  batch?: number;
  gaussian?: boolean;
  /** Precision of the forwards (default 'float32'); probabilities are accumulated in float32. */
  precision?: Precision;
  /** Run the network as a cached copy with BatchNorm folded into the convolutions (default true). */
  foldBatchNorm?: boolean;
  signal?: AbortSignal;
}

/** Options of {@link sliceInference}. */
export interface SliceInferenceOptions {
  /** The slice size the network was trained at (default 256 x 256). */
  size?: [number, number];
  /**
   * true (default, the ACDC protocol): each slice resized to `size` and the labels resized back. false:
   * slices kept at their spacing, zero-padded (centred) to at least `size` and to multiples of 16, the
   * labels cut back (networks trained on crops at a plan's spacing).
   */
  resize?: boolean;
  /** Slices per forward pass (default 4: as fast as 8 on 2 CPU threads, 90 MiB less peak memory at 256 x 256). */
  batch?: number;
  /** Precision of the forwards (default 'float32'). */
  precision?: Precision;
  /** Run the network as a cached copy with BatchNorm folded into the convolutions (default true). */
  foldBatchNorm?: boolean;
  signal?: AbortSignal;
}

function checkNetwork(fn: string, net: unknown): Network {
  if (!(net instanceof Network)) throw typeError(fn, 'network', 'a Network', net);
  return net;
}

/** Runs `fn` with the network in eval mode, restoring its mode afterwards. */
async function inEval<T>(net: Network, fn: () => Promise<T>): Promise<T> {
  const wasTraining = net.training;
  if (wasTraining) net.eval();
  try {
    return await fn();
  } finally {
    if (wasTraining && !net.isDisposed) net.train();
  }
}

/** Averaged class probabilities (classes, ...spatial) of a (C, ...spatial) or (...spatial) image. */
export async function slidingWindowInference(network: Network, image: Tensor, options?: SlidingWindowOptions): Promise<Tensor> {
  const fn = 'slidingWindowInference';
  const net = checkNetwork(fn, network);
  const img = tensorArg(fn, 'image', image);
  const o = checkObject(fn, 'options', options);
  const d = net.kind === 'UNet2D' ? 2 : 3;
  const patch = o.patch === undefined ? (d === 3 ? [112, 112, 80] : [256, 256]) : checkIntList(fn, 'patch', o.patch, 1);
  const strides = o.strides === undefined ? (d === 3 ? [18, 18, 4] : [128, 128]) : checkIntList(fn, 'strides', o.strides, 1);
  if (patch.length !== d || strides.length !== d) throw new RangeError(`${fn}(): 'patch' and 'strides' need ${d} entries for a ${net.kind}`);
  const batch = o.batch === undefined ? 4 : checkInt(fn, 'batch', o.batch, 1, 1024);
  const gaussian = o.gaussian === undefined ? false : checkBool(fn, 'gaussian', o.gaussian);
  const precision = o.precision === undefined ? 'float32' : resolvePrecision(checkPrecision(fn, o.precision), net.device, fn);
  const fold = o.foldBatchNorm === undefined ? true : checkBool(fn, 'foldBatchNorm', o.foldBatchNorm);
  const signal = o.signal as AbortSignal | undefined;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError(fn, 'signal', 'an AbortSignal', signal);
  signal?.throwIfAborted();
  const token = new native.CancelToken();
  const onAbort = () => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await inEval(net, async () =>
      wrap(await startNative(() => noGrad(() => native.slidingWindow(net.handle(fn), img, { patch, strides, batch, gaussian, precision, fold }, token)), callSite(slidingWindowInference))),
    );
  } catch (err) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(`${fn}(): aborted`);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Labels from probabilities (classes first): argmax, or for two classes `p1 >= threshold` when given. */
export function probabilitiesToLabels(probabilities: Tensor, options?: { threshold?: number }): Tensor {
  const fn = 'probabilitiesToLabels';
  tensorArg(fn, 'probabilities', probabilities);
  const o = checkObject(fn, 'options', options);
  if (o.threshold === undefined) return probabilities.argmax(0);
  return tidy(() => probabilities.narrow(0, 1, 1).squeeze(0).ge(o.threshold as number).to('int64'));
}

/**
 * A (slices, H, W) volume as a 2-D network of slice size `size` takes it (float32): resized to `size`
 * (the ACDC protocol) or zero-padded (slices kept at their spacing); `restore` brings labels back to (H, W).
 */
export function fitSlices(volume: Tensor, size: number[], resize: boolean): { input: Tensor; restore: (labels: Tensor) => Tensor } {
  const [h, w] = volume.shape.slice(-2);
  if (resize) return { input: tidy(() => zoomNearest(volume, size).to('float32')), restore: (labels) => tidy(() => zoomNearest(labels, [h, w])) };
  const float = volume.dtype === 'float32' ? volume : volume.to('float32');
  try {
    const { padded, restore } = padSlices(float, size);
    return { input: padded, restore };
  } finally {
    if (float !== volume) float.dispose();
  }
}

/** The ACDC protocol on a (slices, H, W) volume: labels (slices, H, W), int64 (`resize: false`: see the option). */
export async function sliceInference(network: Network, volume: Tensor, options?: SliceInferenceOptions): Promise<Tensor> {
  const fn = 'sliceInference';
  const net = checkNetwork(fn, network);
  tensorArg(fn, 'volume', volume);
  if (volume.rank !== 3) throw new RangeError(`${fn}(): argument 'volume' must be 3-D (slices, H, W), got shape [${volume.shape.join(', ')}]`);
  const o = checkObject(fn, 'options', options);
  const size = (o.size === undefined ? [256, 256] : checkIntList(fn, 'size', o.size, 1)) as [number, number];
  const batch = o.batch === undefined ? 4 : checkInt(fn, 'batch', o.batch, 1, 1024);
  const precision = o.precision === undefined ? 'float32' : resolvePrecision(checkPrecision(fn, o.precision), net.device, fn);
  const fold = o.foldBatchNorm === undefined ? true : checkBool(fn, 'foldBatchNorm', o.foldBatchNorm);
  const resize = o.resize === undefined ? true : checkBool(fn, 'resize', o.resize);
  const signal = o.signal as AbortSignal | undefined;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError(fn, 'signal', 'an AbortSignal', signal);
  signal?.throwIfAborted();
  // the whole volume resized (or padded) at once (the rule is per slice, on the last two axes), one native
  // call for every slice's forward and argmax, then resized back (or cut back)
  const { input, restore } = fitSlices(volume, size, resize);
  const token = new native.CancelToken();
  const onAbort = () => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let labels: Tensor | undefined;
  try {
    labels = await inEval(net, async () =>
      wrap(await startNative(() => noGrad(() => native.sliceLabels(net.handle(fn), tensorArg(fn, 'volume', input), batch, precision, fold, token)), callSite(sliceInference))),
    );
    return restore(labels);
  } catch (err) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(`${fn}(): aborted`);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    dispose([input, labels]);
  }
}

/**
 * The sliding-window protocol of slidingWindowInference (same padding, window origins and averaging)
 * around any async `predict` from a batch of windows (B, C_in, ...patch) to class probabilities
 * (B, classes, ...patch): for models that are more than one Network (VerSemi's backbone + task head).
 * Runs on the JS side window batch by window batch; slower than the native one.
 */
export async function slidingWindowWith(
  predict: (windows: Tensor) => Promise<Tensor>,
  image: Tensor,
  options: { patch: number[]; strides: number[]; batch?: number; signal?: AbortSignal },
): Promise<Tensor> {
  const fn = 'slidingWindowWith';
  if (!(image instanceof Tensor)) throw typeError(fn, 'image', 'a Tensor', image);
  const img = image;
  const o = checkObject(fn, 'options', options);
  const patch = checkIntList(fn, 'patch', o.patch, 1);
  const strides = checkIntList(fn, 'strides', o.strides, 1);
  const d = patch.length;
  if (strides.length !== d || (img.shape.length !== d && img.shape.length !== d + 1))
    throw new RangeError(`${fn}(): 'patch' and 'strides' need one entry per spatial axis of the image (shape ${img.shape.join('x')})`);
  const batch = o.batch === undefined ? 4 : checkInt(fn, 'batch', o.batch, 1, 1024);
  const x = img.shape.length === d ? img.unsqueeze(0) : img;
  const size = x.shape.slice(1);
  const lo = size.map((n, k) => Math.floor(Math.max(patch[k] - n, 0) / 2));
  const hi = size.map((n, k) => Math.max(patch[k] - n, 0) - lo[k]);
  const full = size.map((n, k) => n + lo[k] + hi[k]);
  // constant pad takes (last axis left, right, ...)
  const padOf = (before: number[], after: number[]) => before.flatMap((_, i) => [before[d - 1 - i], after[d - 1 - i]]);
  const padded = pad(x, padOf(lo, hi));
  if (x !== img) x.dispose();
  const counts = full.map((f, k) => Math.floor((f - patch[k] + strides[k] - 1) / strides[k]) + 1);
  const starts: number[][] = [];
  const idx = new Array<number>(d).fill(0);
  for (let more = true; more; ) {
    starts.push(idx.map((i, k) => Math.min(strides[k] * i, full[k] - patch[k])));
    let k = d - 1;
    while (k >= 0 && ++idx[k] === counts[k]) idx[k--] = 0;
    more = k >= 0;
  }
  let score: Tensor | null = null;
  let count = zeros(full, { device: padded.device, dtype: padded.dtype });
  try {
    for (let first = 0; first < starts.length; first += batch) {
      (o.signal as AbortSignal | undefined)?.throwIfAborted();
      const group = starts.slice(first, first + batch);
      const windows = tidy(() => stack(group.map((s) => s.reduce((w, st, k) => w.narrow(1 + k, st, patch[k]), padded)), 0));
      const probs = await predict(windows).finally(() => windows.dispose());
      try {
        for (const [w, s] of group.entries()) {
          const around = padOf(s, s.map((st, k) => full[k] - patch[k] - st));
          const [nextScore, nextCount] = tidy(() => {
            const p = pad(probs.narrow(0, w, 1).squeeze(0), around);
            const covered = pad(ones(patch, { device: padded.device, dtype: padded.dtype }), around);
            return [score ? score.add(p) : p, count.add(covered)];
          });
          score?.dispose();
          count.dispose();
          [score, count] = [nextScore, nextCount];
        }
      } finally {
        probs.dispose();
      }
    }
    const total = score as unknown as Tensor;
    return tidy(() => lo.reduce((t, l, k) => t.narrow(1 + k, l, size[k]), total.div(count.unsqueeze(0))).contiguous());
  } finally {
    dispose([padded, count, score]);
  }
}
