/**
 * Preprocessing by a plan (crop to the non-zero region, normalise, resample to the plan's spacing) and its
 * inverse for predictions (resample back, paste into the input grid). The work is one native call each
 * (cpp/preprocess), on the compute thread.
 */
import { callSite, startNative } from '../call.js';
import { zeros } from '../create.js';
import { native } from '../native.js';
import type { Plan } from '../plan/plan.js';
import { tidy } from '../scope.js';
import { Tensor, tensorArg, wrap } from '../tensor.js';
import { checkIntList } from '../validate.js';

export interface Preprocessed {
  /** (C, ...spatial) float32 on the plan's grid */
  image: Tensor;
  /** (...spatial) int64 on the plan's grid, when a label was given */
  label?: Tensor;
  /** the crop of the input grid that was resampled: start and shape per axis */
  cropStart: number[];
  cropShape: number[];
  /** the input's spatial shape */
  inputShape: number[];
}

/**
 * Applies `plan` to one image `(C, I, J, K)` (and its label `(I, J, K)`) of voxel size `spacing` (mm).
 * NaN or infinite intensities and mismatched shapes are refused with a clear error.
 */
export function preprocessWithPlan(image: Tensor, label: Tensor | undefined, spacing: number[], plan: Plan): Promise<Preprocessed> {
  const fn = 'preprocessWithPlan';
  const img = tensorArg(fn, 'image', image);
  const lbl = label === undefined ? undefined : tensorArg(fn, 'label', label);
  const resample = plan.spacing !== null && plan.spacing !== undefined;
  if (resample && (spacing.length !== 3 || spacing.some((s) => !(s > 0)))) throw new RangeError(`${fn}(): argument 'spacing' must be three voxel sizes > 0, got ${JSON.stringify(spacing)}`);
  const options = {
    crop: plan.crop,
    channels: plan.normalization.map((n) => ({ scheme: n.scheme, lo: n.lo ?? 0, hi: n.hi ?? 0, mean: n.mean ?? 0, std: n.std ?? 1, mask: n.mask === true })),
    spacing: resample ? spacing : undefined,
    targetSpacing: resample ? plan.spacing! : undefined,
    keepAxis: plan.network === 'UNet2D' ? plan.sliceAxis : -1,
    imageMode: plan.imageInterpolation,
    labelMode: plan.labelInterpolation,
    classes: Math.max(2, plan.classes.length),
  };
  return startNative(() => native.preprocess(img, lbl, options), callSite(preprocessWithPlan)).then((r) => ({
    image: wrap(r.image),
    label: r.label ? wrap(r.label) : undefined,
    cropStart: r.cropStart,
    cropShape: r.cropShape,
    inputShape: image.shape.slice(1),
  }));
}

/** Resamples `(C, ...spatial)` floating data to `size` ('linear', 'cubic' or 'nearest'). */
export function resampleImage(x: Tensor, size: number[], mode: 'linear' | 'cubic' | 'nearest' = 'linear'): Promise<Tensor> {
  const fn = 'resampleImage';
  const h = tensorArg(fn, 'input', x);
  checkIntList(fn, 'size', size, 1);
  return startNative(() => native.resample(h, size, mode), callSite(resampleImage)).then(wrap);
}

/** Resamples a label map to `size`: 'nearest', or 'linear' on the one-hot maps of `classes`. */
export function resampleLabels(labels: Tensor, size: number[], mode: 'nearest' | 'linear' = 'nearest', classes = 0): Promise<Tensor> {
  const fn = 'resampleLabels';
  const h = tensorArg(fn, 'labels', labels);
  checkIntList(fn, 'size', size, 1);
  return startNative(() => native.resampleLabels(h, size, mode, classes), callSite(resampleLabels)).then(wrap);
}

/**
 * A label map predicted on the plan's grid, back on the input grid: resampled to the crop's shape
 * (nearest) and pasted into a background map of the input's shape.
 */
export async function restoreLabels(labels: Tensor, p: Pick<Preprocessed, 'cropStart' | 'cropShape' | 'inputShape'>): Promise<Tensor> {
  const back = labels.shape.join() === p.cropShape.join() ? labels : await resampleLabels(labels, p.cropShape, 'nearest');
  try {
    if (p.cropShape.join() === p.inputShape.join()) return back === labels ? labels.clone() : back;
    return tidy(() => {
      const out = zeros(p.inputShape, { dtype: 'int64' });
      let view = out;
      p.cropStart.forEach((s, k) => (view = view.narrow(k, s, p.cropShape[k])));
      view.copyFrom(back);
      return out;
    });
  } finally {
    if (back !== labels && p.cropShape.join() !== p.inputShape.join()) back.dispose();
  }
}
