/**
 * A trained model ready for inference: the network of a checkpoint with the inference settings of the
 * recipe it was trained with. What `semiseg predict` and services embedding semiseg use.
 */
import { stat } from 'node:fs/promises';

import { callOpAsync } from './call.js';
import { loadCheckpoint, readCheckpointInfo, type CheckpointInfo } from './io/checkpoint.js';
import type { SpatialImage } from './data/image.js';
import { preprocessWithPlan, restoreLabels, type Preprocessed } from './data/preprocess.js';
import { preprocessingOf, resampledShape, type Plan } from './plan/plan.js';
import { nets } from './nets/index.js';
import { checkPrecision, resolvePrecision, type Precision, type ResolvedPrecision } from './precision.js';
import { checkInt, checkKnownKeys, checkObject, checkPath, describe, relabel, typeError } from './validate.js';
import { networkTask, setNetworkTask } from './nets/versemi.js';
import { loadVerSemiNetwork } from './trainers/methods/versemi.js';
import type { Network } from './nets/network.js';
import { tidy } from './scope.js';
import { Tensor, tensorArg, wrap } from './tensor.js';
import type { TrainConfig } from './trainers/recipes.js';
import { planInference, predictVolume, type InferenceSettings } from './trainers/validate.js';

/**
 * The network of a checkpoint, and how to run inference with it (from the recipe it was trained with).
 * A VerSemi checkpoint gives the native VerSemi network (backbone, controller and head; kind 'VerSemi')
 * segmenting `options.task` (default 0); other checkpoints take no task.
 */
export async function networkFromCheckpoint(path: string, options?: { task?: number }): Promise<CheckpointNetwork> {
  try {
    return await readNetwork(path, options);
  } catch (err) {
    // the readers' errors name this function (a user called it, not them)
    throw relabel(err, 'networkFromCheckpoint', CHECKPOINT_READERS);
  }
}

const CHECKPOINT_READERS = ['readCheckpointInfo', 'loadCheckpoint', 'loadVerSemi'];

type CheckpointNetwork = { net: Network; info: CheckpointInfo; settings: InferenceSettings; preprocessing: Plan | null };

async function readNetwork(path: string, options?: { task?: number }): Promise<CheckpointNetwork> {
  const fn = 'networkFromCheckpoint';
  const task = options?.task === undefined ? undefined : checkInt(fn, 'task', options.task, 0);
  await checkCheckpointFile(fn, path);
  const info = await readCheckpointInfo(path);
  const c = (info.extra?.config ?? {}) as Partial<TrainConfig>;
  if (c.method === 'versemi') {
    // VerSemi (spec 4): one native network serves the checkpoint's backbone and task head
    const net = await loadVerSemiNetwork(path);
    try {
      if (task !== undefined) setNetworkTask(net, task);
      const settings: InferenceSettings = { size: c.size ?? [96, 96, 96], classes: 2, largestComponent: false, task: networkTask(net).task };
      return { net, info, settings, preprocessing: preprocessingOf(c) };
    } catch (err) {
      net.dispose();
      throw err;
    }
  }
  if (task !== undefined) throw new RangeError(`${fn}(): '${path}' is not a VerSemi model, so it takes no task id (got task ${task})`);
  let net: Network;
  try {
    net = nets.fromOptions(info.kind, info.options);
  } catch (err) {
    // a checkpoint of another program, or of a newer semiseg: say which file
    throw err instanceof RangeError ? new RangeError(`${fn}(): '${path}': ${err.message.replace(/^[\w.]+\(\): /, '')}`) : err;
  }
  // Co-DA's coda.inference = 'mean' (spec 3.7): the checkpoint holds network 2 too, and inference averages both
  const partner = c.method === 'coda' && c.coda?.inference === 'mean' ? nets.fromOptions(info.kind, info.options) : null;
  try {
    await loadCheckpoint(path, { network: net, networks: partner ? { net2: partner } : undefined, restoreRng: false });
  } catch (err) {
    net.dispose();
    partner?.dispose();
    throw err;
  }
  const classes = Number(info.options.outChannels ?? c.classes ?? (info.kind === 'UNet2D' ? 4 : 2));
  const settings: InferenceSettings = {
    size: c.size ?? (info.kind === 'UNet2D' ? [256, 256] : [112, 112, 80]),
    classes,
    largestComponent: info.kind === 'VNet3D' && c.method === 'bcp',
    ...planInference(c.plan, info.kind),
  };
  let preprocessing: Plan | null;
  try {
    preprocessing = preprocessingOf(c);
  } catch (err) {
    net.dispose();
    partner?.dispose();
    throw new Error(`'${path}': ${(err as Error).message}`);
  }
  if (partner) {
    settings.ensemble = [partner];
    // the network owns the ones its settings average with it: every caller's net.dispose() frees them too
    const disposeNet = net.dispose.bind(net);
    net.dispose = () => {
      disposeNet();
      partner.dispose();
    };
  }
  return { net, info, settings, preprocessing };
}

/** A checkpoint path must name a file: a folder is refused here, naming it, rather than by LibTorch's reader. */
async function checkCheckpointFile(fn: string, path: unknown, name = 'path'): Promise<void> {
  const p = checkPath(fn, path, name);
  const s = await stat(p).catch(() => null); // a missing file: the checkpoint reader's own error names it
  if (s?.isDirectory()) throw new Error(`${fn}(): cannot open '${p}': it is a directory, not a checkpoint file (e.g. best.ckpt or final.ckpt)`);
}

/** The default of `Segmenter.load`'s `maxVoxels`: 2^27 voxels, a 512^3 volume (512 MiB as float32). */
export const DEFAULT_MAX_VOXELS = 2 ** 27;

/**
 * What {@link Segmenter.segmentImage} throws for an image that would be larger than the Segmenter's
 * `maxVoxels` once resampled to the model's spacing: a RangeError with `code` 'ERR_IMAGE_TOO_LARGE'
 * (a service answers 413 for it).
 */
export class ImageTooLargeError extends RangeError {
  readonly code = 'ERR_IMAGE_TOO_LARGE';
  constructor(
    message: string,
    /** The shape the image would have on the model's grid. */
    readonly resampledShape: number[],
    /** The limit it passes (`maxVoxels`). */
    readonly limit: number,
  ) {
    super(message);
    this.name = 'ImageTooLargeError';
  }
}

/**
 * Where the channels of an image of `shape` are for a model of `channels` input channels: -1 for a 3-D
 * image (I, J, K) of one channel, 0 for (C, I, J, K), 3 for (I, J, K, C) (NIfTI's and the Decathlon's
 * layout, as readNifti returns it; a single-channel NIfTI with a trailing 1 too). Channels first win where
 * both fit. Anything else is a RangeError saying what is needed.
 */
export function channelAxisOf(fn: string, shape: readonly number[], channels: number, names?: readonly string[]): -1 | 0 | 3 {
  const what = channels > 1 ? `the model takes ${channels} channels${names?.length ? ` (${names.join(', ')})` : ''}` : 'the model takes one channel';
  if (shape.length === 3) {
    if (channels > 1) throw new RangeError(`${fn}(): ${what}; the image of shape ${shape.join('x')} has one`);
    return -1;
  }
  if (shape.length === 4) {
    if (shape[0] === channels) return 0;
    if (shape[3] === channels) return 3;
  }
  const forms = `(${channels}, I, J, K) or (I, J, K, ${channels})`;
  throw new RangeError(
    `${fn}(): the image has shape ${shape.join('x')}; ${what}: ${channels === 1 ? `a 3-D image (I, J, K) is needed, or a 4-D one of shape ${forms}` : `a 4-D image of shape ${forms} is needed`}`,
  );
}

async function asyncOp(name: string, ...args: Parameters<typeof callOpAsync>[1]): Promise<Tensor> {
  return wrap(await callOpAsync(name, args));
}

/** True when `x` (floating) holds a NaN or an infinity: x * 0 sums to NaN then. On the compute thread. */
async function hasNonFinite(x: Tensor): Promise<boolean> {
  const zero = await asyncOp('mul', tensorArg('segmentImage', 'image', x), 0);
  try {
    const sum = await asyncOp('sum', tensorArg('segmentImage', 'image', zero));
    try {
      return !Number.isFinite(sum.item() as number);
    } finally {
      sum.dispose();
    }
  } finally {
    zero.dispose();
  }
}

/** The bounding box (start, shape) of the voxels non-zero in any channel of `x` (C, I, J, K), as the native crop takes it. */
async function nonzeroBox(x: Tensor): Promise<{ start: number[]; shape: number[] }> {
  const spatial = x.shape.slice(1);
  const mask = await asyncOp('ne', tensorArg('segmentImage', 'image', x), 0);
  const start: number[] = [];
  const shape: number[] = [];
  try {
    for (let k = 0; k < 3; k++) {
      const others = [0, 1, 2, 3].filter((d) => d !== k + 1);
      const counts = await asyncOp('sum', tensorArg('segmentImage', 'mask', mask), others, false);
      let first = -1;
      let last = -1;
      try {
        const c = counts.data() as BigInt64Array;
        for (let i = 0; i < c.length; i++) {
          if (c[i] === 0n) continue;
          if (first < 0) first = i;
          last = i;
        }
      } finally {
        counts.dispose();
      }
      if (first < 0) return { start: [0, 0, 0], shape: spatial }; // nothing non-zero: the native crop keeps all
      start.push(first);
      shape.push(last - first + 1);
    }
  } finally {
    mask.dispose();
  }
  return { start, shape };
}

function checkSignal(fn: string, signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError(fn, 'signal', 'an AbortSignal (or undefined)', signal);
}

/** A {@link SpatialImage}: `{ data: Tensor, spacing: number[], affine: number[][] }`, not a bare tensor or file bytes. */
function checkSpatialImage(fn: string, image: unknown): asserts image is SpatialImage {
  const expected = 'a SpatialImage { data: Tensor, spacing: number[], affine: number[][] } (as parseNifti, readNifti or readDicomSeries return it)';
  if (typeof image !== 'object' || image === null || image instanceof Tensor || ArrayBuffer.isView(image)) throw typeError(fn, 'image', expected, image);
  const o = image as Record<string, unknown>;
  if (!(o.data instanceof Tensor)) throw new TypeError(`${fn}(): argument 'image' must be ${expected}; its 'data' is ${describe(o.data)}`);
  if (!Array.isArray(o.spacing) || o.spacing.length < 3 || o.spacing.some((v) => typeof v !== 'number'))
    throw new TypeError(`${fn}(): argument 'image' must be ${expected}; its 'spacing' is ${describe(o.spacing)}, not 3 or more numbers`);
  if (!Array.isArray(o.affine) || o.affine.length < 3 || o.affine.some((r) => !Array.isArray(r)))
    throw new TypeError(`${fn}(): argument 'image' must be ${expected}; its 'affine' is ${describe(o.affine)}, not a 4 x 4 matrix`);
  if (o.data.isDisposed) throw new TypeError(`${fn}(): argument 'image' holds a disposed tensor`);
}

const voxels = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const mm = (v: readonly number[]) => v.map((x) => +x.toPrecision(6)).join('x');

/** Segments whole volumes with a trained checkpoint (slice-wise for a 2-D U-Net, sliding window for a 3-D V-Net). */
export class Segmenter {
  private constructor(
    /** The network, in evaluation mode. */
    readonly network: Network,
    /** What the checkpoint says of itself. */
    readonly info: CheckpointInfo,
    /** Patch or slice size, classes, post-processing. */
    readonly settings: InferenceSettings,
    /**
     * What images are turned into before the network sees them (normalisation, spacing, crop): the
     * checkpoint's plan, or for the published recipes the normalisation their data had; null: none.
     */
    readonly preprocessing: Plan | null,
    /** The most voxels an image may have on the model's grid (`maxVoxels` of {@link Segmenter.load}). */
    readonly maxVoxels: number,
  ) {}

  /**
   * Loads a semiseg checkpoint (best.ckpt, final.ckpt) once; reuse the Segmenter for many volumes.
   *
   * Options (an unknown key is a RangeError naming it, so a misspelt option does not pass silently):
   * - `precision` (default 'float32'; 'auto' picks bfloat16 where the CPU or GPU runs it natively) is
   *   resolved here: {@link Segmenter.precision} says what was chosen.
   * - `task`: for a VerSemi checkpoint, the task (dataset) to segment, 0..T (default 0); other checkpoints
   *   refuse one.
   * - `maxVoxels` (default {@link DEFAULT_MAX_VOXELS}, 2^27: a 512^3 volume): the most voxels an image may
   *   have once cropped and resampled to the model's spacing. {@link Segmenter.segmentImage} checks it from
   *   the image's shape and spacing before any preprocessing and throws an {@link ImageTooLargeError}
   *   (a RangeError) past it, so a small image with a large voxel size in its header cannot make the
   *   resampling allocate gigabytes. A service should set it from its memory budget: inference needs
   *   several float32 copies of the resampled volume (and, in 3-D, of its class probabilities).
   *
   * The checkpoint must be a file; a folder, a missing or damaged file is an Error naming the path.
   */
  static async load(checkpoint: string, options?: { precision?: Precision; task?: number; maxVoxels?: number }): Promise<Segmenter> {
    const fn = 'Segmenter.load';
    const o = checkObject(fn, 'options', options);
    checkKnownKeys(fn, 'options', o, ['precision', 'task', 'maxVoxels']);
    const requested = o.precision === undefined ? 'float32' : checkPrecision(fn, o.precision);
    const task = o.task === undefined ? undefined : checkInt(fn, 'task', o.task, 0);
    const maxVoxels = o.maxVoxels === undefined ? DEFAULT_MAX_VOXELS : checkInt(fn, 'maxVoxels', o.maxVoxels, 1, Number.MAX_SAFE_INTEGER);
    await checkCheckpointFile(fn, checkpoint, 'checkpoint');
    let loaded: CheckpointNetwork;
    try {
      loaded = await readNetwork(checkpoint, { task });
    } catch (err) {
      throw relabel(err, fn, ['networkFromCheckpoint', ...CHECKPOINT_READERS]);
    }
    const { net, info, settings, preprocessing } = loaded;
    try {
      settings.precision = resolvePrecision(requested, net.device, fn);
    } catch (err) {
      net.dispose();
      throw err;
    }
    net.eval();
    return new Segmenter(net, info, settings, preprocessing, maxVoxels);
  }

  /** The precision the forwards run in (what 'auto' chose). */
  get precision(): ResolvedPrecision {
    return (this.settings.precision ?? 'float32') as ResolvedPrecision;
  }

  /** Label map (int64) of a volume in the dataset layout: [D, H, W] slices first for 2-D networks, [H, W, D] for 3-D. */
  segment(volume: Tensor, signal?: AbortSignal): Promise<Tensor> {
    checkSignal('Segmenter.segment', signal);
    return predictVolume(this.network, volume, this.settings, signal);
  }

  /** Label map (int64) of a NIfTI image on its own grid: {@link Segmenter.segmentImage}. */
  segmentNifti(image: SpatialImage, signal?: AbortSignal): Promise<Tensor> {
    return this.segmentSpatial('Segmenter.segmentNifti', image, signal);
  }

  /**
   * Label map (int64, (I, J, K)) of an image (NIfTI, DICOM series, ...) on its own grid (nibabel axis
   * order), ready for writeNiftiLabels / encodeNiftiLabels or a DICOM SEG. The checkpoint's preprocessing
   * is applied first (normalisation; for a planned dataset also the crop and the resampling to its
   * spacing, undone on the labels), so raw scanner intensities give the labels the network was trained to
   * give. A 2-D network runs on the slices along the plan's slice axis (the last axis without a plan).
   *
   * `image` is a {@link SpatialImage} (`{ data, spacing, affine }`, as parseNifti / readNifti /
   * readDicomSeries return it); its `data` may be
   * - (I, J, K) for a single-channel model;
   * - (C, I, J, K), channels first, with C the model's channels;
   * - (I, J, K, C), channels last, as readNifti returns a 4-D NIfTI (the Decathlon's multi-modal layout;
   *   a single-channel NIfTI stored with a trailing 1 too). Where both fit, channels first win.
   *
   * Only the first three entries of `spacing` (mm along i, j, k) are used.
   *
   * Refused up front, as errors naming what is wrong: a value that is not a SpatialImage or a `signal`
   * that is not an AbortSignal (TypeError); another shape, NaN or infinite intensities, a spacing that is
   * not three sizes > 0 when the model resamples (RangeError); an image larger than the Segmenter's
   * `maxVoxels` once cropped and resampled to the model's spacing ({@link ImageTooLargeError}, a
   * RangeError), checked from shape and spacing before any preprocessing.
   */
  segmentImage(image: SpatialImage, signal?: AbortSignal): Promise<Tensor> {
    return this.segmentSpatial('Segmenter.segmentImage', image, signal);
  }

  private async segmentSpatial(fn: string, image: SpatialImage, signal: AbortSignal | undefined): Promise<Tensor> {
    checkSpatialImage(fn, image);
    checkSignal(fn, signal);
    const plan = this.preprocessing;
    const channels = plan?.channels.length ?? 1;
    const channelAxis = channelAxisOf(fn, image.data.shape, channels, plan?.channels);
    const spacing = image.spacing.slice(0, 3);
    const resample = plan?.spacing !== null && plan?.spacing !== undefined;
    if (resample && spacing.some((v) => !(v > 0 && Number.isFinite(v))))
      throw new RangeError(`${fn}(): the image's spacing must be three voxel sizes > 0 (mm), got ${JSON.stringify(image.spacing)}`);
    const twoD = this.network.kind === 'UNet2D';
    // sliceInference takes single-channel volumes (slices, H, W)
    if (twoD && channels > 1) throw new RangeError(`${fn}(): 2-D models of several channels (${plan!.channels.join(', ')}) cannot segment images yet; 3-D ones can`);
    const axis = plan?.network === 'UNet2D' ? plan.sliceAxis : 2;
    const order = [axis, ...[0, 1, 2].filter((k) => k !== axis)];
    const inverse = order.map((_, k) => order.indexOf(k));
    // the size on the model's grid, from the shape alone: before any copy, conversion or resampling
    const spatial = channelAxis === -1 ? image.data.shape : channelAxis === 0 ? image.data.shape.slice(1) : image.data.shape.slice(0, 3);
    const measureCrop = this.checkSize(fn, spatial, spacing, null);
    const input = tidy(() => {
      const d = image.data;
      const cf = channelAxis === -1 ? d.unsqueeze(0) : channelAxis === 3 ? d.permute([3, 0, 1, 2]).contiguous() : d;
      return cf.to('float32');
    });
    let pre: Preprocessed | undefined;
    let volume: Tensor | undefined;
    let pred: Tensor | undefined;
    try {
      // past the limit uncropped, but the plan crops to the non-zero region: measure the crop
      if (measureCrop) this.checkSize(fn, spatial, spacing, (await nonzeroBox(input)).shape);
      if (await hasNonFinite(input)) throw new RangeError(`${fn}(): the image holds NaN or infinite intensities`);
      signal?.throwIfAborted();
      pre = plan
        ? await preprocessWithPlan(input, undefined, spacing, plan)
        : { image: input.clone(), cropStart: [0, 0, 0], cropShape: input.shape.slice(1), inputShape: input.shape.slice(1) };
      const p = pre;
      volume = tidy(() => {
        const v = channels === 1 ? p.image.squeeze(0) : p.image;
        return twoD ? v.permute(order).contiguous() : v;
      });
      pred = await this.segment(volume, signal);
      const labels = pred;
      if (twoD) pred = tidy(() => labels.permute(inverse).contiguous());
      if (twoD) labels.dispose();
      return await restoreLabels(pred, pre);
    } finally {
      input.dispose();
      pre?.image.dispose();
      volume?.dispose();
      pred?.dispose();
    }
  }

  /**
   * Refuses an image of spatial `shape` (cropped to `cropped` when given) whose size on the model's grid
   * (resampled to the plan's spacing, the 2-D slice axis kept) passes `maxVoxels`. Returns true, instead
   * of refusing, when only the uncropped shape passes it and the plan crops: the crop must be measured.
   */
  private checkSize(fn: string, shape: number[], spacing: number[], cropped: number[] | null): boolean {
    const plan = this.preprocessing;
    const target = plan?.spacing ?? null;
    const keep = plan?.network === 'UNet2D' ? plan.sliceAxis : -1;
    const out = resampledShape(cropped ?? shape, spacing, target, keep);
    if (voxels(out) <= this.maxVoxels) return false;
    if (!cropped && plan?.crop) return true;
    const crop = cropped && cropped.join() !== shape.join() ? `, cropped to its non-zero region ${cropped.join('x')},` : '';
    const grid = target
      ? `resamples to ${out.join('x')} (${voxels(out)} voxels) at the model's spacing of ${mm(target)} mm`
      : `is ${out.join('x')} (${voxels(out)} voxels; the model does not resample)`;
    throw new ImageTooLargeError(
      `${fn}(): the image of shape ${shape.join('x')} at spacing ${mm(spacing)} mm${crop} ${grid}: more than the limit of ${this.maxVoxels} voxels (maxVoxels)`,
      out,
      this.maxVoxels,
    );
  }

  /** Frees the network's tensors. */
  dispose(): void {
    this.network.dispose();
  }
}
