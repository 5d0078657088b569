/**
 * A trained model ready for inference: the network of a checkpoint with the inference settings of the
 * recipe it was trained with. What `semiseg predict` and services embedding semiseg use.
 */
import { loadCheckpoint, readCheckpointInfo, type CheckpointInfo } from './io/checkpoint.js';
import type { SpatialImage } from './data/image.js';
import { nets } from './nets/index.js';
import { checkPrecision, resolvePrecision, type Precision, type ResolvedPrecision } from './precision.js';
import { checkObject } from './validate.js';
import type { Network } from './nets/network.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';
import type { TrainConfig } from './trainers/recipes.js';
import { predictVolume, type InferenceSettings } from './trainers/validate.js';

/** The network of a checkpoint, and how to run inference with it (from the recipe it was trained with). */
export async function networkFromCheckpoint(path: string): Promise<{ net: Network; info: CheckpointInfo; settings: InferenceSettings }> {
  const info = await readCheckpointInfo(path);
  if ((info.extra?.config as Partial<TrainConfig> | undefined)?.method === 'versemi')
    throw new Error(`'${path}' is a VerSemi model: its backbone needs the task head and a task id; load it with trainers.loadVerSemi()`);
  const c = (info.extra?.config ?? {}) as Partial<TrainConfig>;
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
  };
  if (partner) {
    settings.ensemble = [partner];
    // the network owns the ones its settings average with it: every caller's net.dispose() frees them too
    const disposeNet = net.dispose.bind(net);
    net.dispose = () => {
      disposeNet();
      partner.dispose();
    };
  }
  return { net, info, settings };
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
  ) {}

  /**
   * Loads a semiseg checkpoint (best.ckpt, final.ckpt) once; reuse the Segmenter for many volumes.
   * `precision` (default 'float32'; 'auto' picks bfloat16 where the CPU or GPU runs it natively) is
   * resolved here: {@link Segmenter.precision} says what was chosen.
   */
  static async load(checkpoint: string, options?: { precision?: Precision }): Promise<Segmenter> {
    const o = checkObject('Segmenter.load', 'options', options);
    const requested = o.precision === undefined ? 'float32' : checkPrecision('Segmenter.load', o.precision);
    const { net, info, settings } = await networkFromCheckpoint(checkpoint);
    try {
      settings.precision = resolvePrecision(requested, net.device, 'Segmenter.load');
    } catch (err) {
      net.dispose();
      throw err;
    }
    net.eval();
    return new Segmenter(net, info, settings);
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
   * ready for writeNiftiLabels / encodeNiftiLabels or a DICOM SEG. A 2-D network runs on the slices
   * along the last axis.
   */
  async segmentImage(image: SpatialImage, signal?: AbortSignal): Promise<Tensor> {
    if (image.data.rank !== 3) throw new RangeError(`Segmenter.segmentImage(): the image has ${image.data.rank} dimensions; a 3-D image is needed`);
    const slices = this.network.kind === 'UNet2D';
    const volume = tidy(() => (slices ? image.data.permute([2, 0, 1]).contiguous().to('float32') : image.data.to('float32')));
    let pred: Tensor | undefined;
    try {
      pred = await this.segment(volume, signal);
      const p = pred;
      return slices ? tidy(() => p.permute([1, 2, 0]).contiguous()) : p;
    } finally {
      volume.dispose();
      if (slices && pred) pred.dispose();
    }
  }

  /** Frees the network's tensors. */
  dispose(): void {
    this.network.dispose();
  }
}
