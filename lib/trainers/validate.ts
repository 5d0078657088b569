/**
 * Validation and evaluation of a network on volumes with the spec's protocols (1.5): ACDC-style slice
 * inference (each slice resized to the training size, argmax, resized back) for 2-D networks, sliding
 * windows with foreground p >= 0.5 (and optionally the largest component) for 3-D ones; per-class
 * metrics over classes 1..C-1, averaged per volume, then over volumes.
 */
import { slidingWindowInference, probabilitiesToLabels, sliceInference } from '../infer.js';
import { binaryMetrics, largestConnectedComponent, MetricsTable, perClassMetrics } from '../metrics.js';
import type { Network } from '../nets/network.js';
import { dispose, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import type { Volume } from './data.js';
import { meanSliceLabels, meanWindowProbabilities } from './ensemble.js';
import { setNetworkTask } from '../nets/versemi.js';
import type { Precision } from '../precision.js';
import type { Plan } from '../plan/plan.js';

export interface InferenceSettings {
  /** 2-D: the slice size the network was trained at; 3-D: the patch. */
  size: number[];
  /** 2-D: slices resized to `size` (default true, the ACDC protocol) or kept at their spacing and padded (a plan's 'crop' slices). */
  resizeSlices?: boolean;
  /** 3-D sliding-window strides (default 18, 18, 4 as the LA protocol). */
  strides?: number[];
  largestComponent?: boolean;
  classes: number;
  /**
   * Further networks whose class probabilities are averaged with the network's before the labels are
   * taken (Co-DA's coda.inference = 'mean', spec 3.7); float32.
   */
  ensemble?: Network[];
  /** A VerSemi network's task (dataset) id: what it segments (default 0). */
  task?: number;
  /** Precision of the inference forwards (default 'float32'; see precision.ts). */
  precision?: Precision;
}

/**
 * What a plan adds to the inference settings of its network: the 3-D sliding-window strides, and for 2-D
 * plans whose slices are crops, slices kept at their spacing (the training loop and checkpoints both use this).
 */
export function planInference(plan: Plan | null | undefined, network: string): Partial<InferenceSettings> {
  if (!plan) return {};
  if (network === 'VNet3D') return { strides: plan.strides };
  return network === 'UNet2D' && plan.slices === 'crop' ? { resizeSlices: false } : {};
}

/** The sliding-window strides of `s`: its own, or the LA protocol's 18, 18, 4 (at most the patch). */
export function windowStrides(s: InferenceSettings): number[] {
  return s.strides ?? s.size.map((p, i) => Math.max(1, Math.min(p, [18, 18, 4][i])));
}

/** Label map of one volume. */
export async function predictVolume(net: Network, image: Tensor, s: InferenceSettings, signal?: AbortSignal): Promise<Tensor> {
  const precision = s.precision ?? 'float32';
  if (net.kind === 'VerSemi') setNetworkTask(net, s.task ?? 0);
  const nets = [net, ...(s.ensemble ?? [])];
  const resize = s.resizeSlices ?? true;
  if (net.kind === 'UNet2D' && nets.length > 1) return meanSliceLabels(nets, image, s.size, signal, resize);
  if (net.kind === 'UNet2D') return sliceInference(net, image, { size: s.size as [number, number], precision, signal, resize });
  const probs = nets.length > 1 ? await meanWindowProbabilities(nets, image, { patch: s.size, strides: windowStrides(s), signal }) : await slidingWindowInference(net, image, { patch: s.size, strides: windowStrides(s), precision, signal });
  try {
    return tidy(() => {
      // two classes (LA): foreground where p1 >= 0.5, as the protocol says (argmax picks background at a tie)
      const labels = s.classes === 2 ? probabilitiesToLabels(probs, { threshold: 0.5 }) : probs.argmax(0);
      if (!s.largestComponent) return labels;
      return largestConnectedComponent(labels, { classes: Array.from({ length: s.classes - 1 }, (_, i) => i + 1) });
    });
  } finally {
    probs.dispose();
  }
}

export interface ValidationResult {
  /** Mean Dice over classes 1..C-1 and volumes. */
  dice: number;
  /** Mean Dice per class (1..C-1) over volumes. */
  perClass: number[];
}

/**
 * Called with each volume's predicted label map before it is freed (overlay pictures); the map is only
 * valid during the call.
 */
export type PredictionHook = (volume: Volume, prediction: Tensor, index: number) => void;

/** Dice only (cheap): what the training loop tracks. */
export async function validateDice(net: Network, volumes: Volume[], s: InferenceSettings, signal?: AbortSignal, onPrediction?: PredictionHook): Promise<ValidationResult> {
  const sums = new Array<number>(s.classes - 1).fill(0);
  for (const [i, v] of volumes.entries()) {
    const pred = await predictVolume(net, v.image, s, signal);
    try {
      onPrediction?.(v, pred, i);
      for (let c = 1; c < s.classes; c++) {
        const [p, g] = tidy(() => [pred.eq(c), v.label.eq(c)]);
        try {
          sums[c - 1] += binaryMetrics(p, g, {}, false).dice;
        } finally {
          dispose([p, g]);
        }
      }
    } finally {
      pred.dispose();
    }
  }
  const perClass = sums.map((x) => x / Math.max(1, volumes.length));
  return { dice: perClass.reduce((a, b) => a + b, 0) / perClass.length, perClass };
}

/** The papers' table: Dice, Jaccard, 95HD and ASD per class and mean, over volumes. */
export async function evaluateVolumes(
  net: Network,
  volumes: Volume[],
  s: InferenceSettings,
  onVolume?: (id: string, done: number, total: number) => void,
  signal?: AbortSignal,
  onPrediction?: PredictionHook,
): Promise<MetricsTable> {
  const table = new MetricsTable();
  const classes = Array.from({ length: s.classes - 1 }, (_, i) => i + 1);
  for (const [i, v] of volumes.entries()) {
    const pred = await predictVolume(net, v.image, s, signal);
    try {
      table.add(v.id, await perClassMetrics(pred, v.label, { classes }));
      onPrediction?.(v, pred, i);
    } finally {
      pred.dispose();
    }
    onVolume?.(v.id, i + 1, volumes.length);
  }
  return table;
}
