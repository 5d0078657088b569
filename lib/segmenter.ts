/**
 * A trained model ready for inference: the network of a checkpoint with the inference settings of the
 * recipe it was trained with. What `semiseg predict` and services embedding semiseg use.
 */
import { loadCheckpoint, readCheckpointInfo, type CheckpointInfo } from './io/checkpoint.js';
import type { SpatialImage } from './data/image.js';
import { preprocessWithPlan, restoreLabels, type Preprocessed } from './data/preprocess.js';
import { preprocessingOf, type Plan } from './plan/plan.js';
import { nets } from './nets/index.js';
import { checkPrecision, resolvePrecision, type Precision, type ResolvedPrecision } from './precision.js';
import { checkInt, checkObject } from './validate.js';
import { networkTask, setNetworkTask } from './nets/versemi.js';
import { loadVerSemiNetwork } from './trainers/methods/versemi.js';
import type { Network } from './nets/network.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';
import type { TrainConfig } from './trainers/recipes.js';
import { predictVolume, type InferenceSettings } from './trainers/validate.js';

/**
 * The network of a checkpoint, and how to run inference with it (from the recipe it was trained with).
 * A VerSemi checkpoint gives the native VerSemi network (backbone, controller and head; kind 'VerSemi')
 * segmenting `options.task` (default 0); other checkpoints take no task.
 */
export async function networkFromCheckpoint(
  path: string,
  options?: { task?: number },
): Promise<{ net: Network; info: CheckpointInfo; settings: InferenceSettings; preprocessing: Plan | null }> {
  const fn = 'networkFromCheckpoint';
  const task = options?.task === undefined ? undefined : checkInt(fn, 'task', options.task, 0);
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
  const net = nets.fromOptions(info.kind, info.options);
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
    ...(c.plan && info.kind === 'VNet3D' ? { strides: c.plan.strides } : {}),
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
  ) {}

  /**
   * Loads a semiseg checkpoint (best.ckpt, final.ckpt) once; reuse the Segmenter for many volumes.
   * `precision` (default 'float32'; 'auto' picks bfloat16 where the CPU or GPU runs it natively) is
   * resolved here: {@link Segmenter.precision} says what was chosen. `task`: for a VerSemi checkpoint,
   * the task (dataset) to segment, 0..T (default 0); other checkpoints refuse one.
   */
  static async load(checkpoint: string, options?: { precision?: Precision; task?: number }): Promise<Segmenter> {
    const o = checkObject('Segmenter.load', 'options', options);
    const requested = o.precision === undefined ? 'float32' : checkPrecision('Segmenter.load', o.precision);
    const task = o.task === undefined ? undefined : checkInt('Segmenter.load', 'task', o.task, 0);
    const { net, info, settings, preprocessing } = await networkFromCheckpoint(checkpoint, { task });
    try {
      settings.precision = resolvePrecision(requested, net.device, 'Segmenter.load');
    } catch (err) {
      net.dispose();
      throw err;
    }
    net.eval();
    return new Segmenter(net, info, settings, preprocessing);
  }

  /** The precision the forwards run in (what 'auto' chose). */
  get precision(): ResolvedPrecision {
    return (this.settings.precision ?? 'float32') as ResolvedPrecision;
  }

  /** Label map (int64) of a volume in the dataset layout: [D, H, W] slices first for 2-D networks, [H, W, D] for 3-D. */
  segment(volume: Tensor, signal?: AbortSignal): Promise<Tensor> {
    return predictVolume(this.network, volume, this.settings, signal);
  }

  /** Label map (int64) of a 3-D NIfTI image on its own grid: {@link Segmenter.segmentImage}. */
  segmentNifti(image: SpatialImage, signal?: AbortSignal): Promise<Tensor> {
    return this.segmentImage(image, signal);
  }

  /**
   * Label map (int64) of a 3-D image (NIfTI, DICOM series, ...) on its own grid (nibabel axis order),
   * ready for writeNiftiLabels / encodeNiftiLabels or a DICOM SEG. The checkpoint's preprocessing is
   * applied first (normalisation; for a planned dataset also the crop and the resampling to its spacing,
   * undone on the labels), so raw scanner intensities give the labels the network was trained to give.
   * A 2-D network runs on the slices along the plan's slice axis (the last axis without a plan). Images
   * of several channels are (C, I, J, K).
   */
  async segmentImage(image: SpatialImage, signal?: AbortSignal): Promise<Tensor> {
    const fn = 'Segmenter.segmentImage';
    const plan = this.preprocessing;
    const channels = plan?.channels.length ?? 1;
    const rank = image.data.rank;
    if (rank !== 3 && !(rank === 4 && image.data.shape[0] === channels))
      throw new RangeError(`${fn}(): the image has shape ${image.data.shape.join('x')}; a 3-D image${channels > 1 ? ` with ${channels} channels first` : ''} is needed`);
    if (channels > 1 && rank === 3) throw new RangeError(`${fn}(): the model takes ${channels} channels (${plan!.channels.join(', ')}); the image has one`);
    const twoD = this.network.kind === 'UNet2D';
    const axis = plan?.network === 'UNet2D' ? plan.sliceAxis : 2;
    const order = [axis, ...[0, 1, 2].filter((k) => k !== axis)];
    const inverse = order.map((_, k) => order.indexOf(k));
    const input = tidy(() => (rank === 3 ? image.data.unsqueeze(0) : image.data).to('float32'));
    let pre: Preprocessed | undefined;
    let volume: Tensor | undefined;
    let pred: Tensor | undefined;
    try {
      pre = plan
        ? await preprocessWithPlan(input, undefined, image.spacing, plan)
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

  /** Frees the network's tensors. */
  dispose(): void {
    this.network.dispose();
  }
}
