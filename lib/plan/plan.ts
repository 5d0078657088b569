/**
 * The plan of a dataset, chosen from its fingerprint as nnU-Net does, and written down (plan.json in the
 * run folder and in every checkpoint) so that inference applies exactly the preprocessing training saw.
 *
 * Rules (each can be overridden, `--set plan.<key>=<value>`):
 * - spacing: the median spacing of the labeled cases; images are resampled to it (linear or cubic),
 *   label maps by nearest neighbour or linearly on their one-hot maps.
 * - network: the 2-D U-Net when the coarsest median spacing is at least 3x the finest (slices along that
 *   axis, each slice resampled in-plane only), else the 3-D V-Net.
 * - size: 3-D patch = the median resampled shape rounded to multiples of 16 (the V-Net halves four
 *   times), square in the (i, j) plane that rot90 turns, shrunk on its largest side until it fits the
 *   budget's voxels; 2-D slice = the in-plane median
 *   shape rounded up to multiples of 16, at most 256 per side: a crop size (slices keep the spacing). Sliding-window strides: half the patch.
 * - normalisation per channel: CT clips to the 0.5 / 99.5 foreground percentiles and z-scores with the
 *   foreground mean and std of the whole dataset; every other modality is z-scored per volume.
 * - batch: 3-D 2 labeled (+ 2 unlabeled for semi-supervised methods); 2-D 12 (+ 12) on a GPU, 4 (+ 4) on CPU.
 * - crop to the non-zero region of the image before everything else; 3-D random crops centred on a
 *   foreground voxel for a third of the labeled samples.
 */
import type { ImageDataset } from '../data/folders.js';
import type { Fingerprint } from './fingerprint.js';

export type NormalizationScheme = 'none' | 'zscore' | 'ct' | 'minmax';

export interface Normalization {
  scheme: NormalizationScheme;
  /**
   * zscore: statistics over the voxels non-zero in some channel, 0 outside them (nnU-Net's
   * use_mask_for_norm: chosen when the crop to the non-zero region keeps under 3/4 of the image on average,
   * as for skull-stripped scans).
   */
  mask?: boolean;
  /** CT: clipping range and the foreground statistics */
  lo?: number;
  hi?: number;
  mean?: number;
  std?: number;
}

export interface Plan {
  version: 1;
  dataset: string;
  /** channel (modality) names */
  channels: string[];
  /** class names by label value */
  classes: string[];
  network: 'UNet2D' | 'VNet3D';
  /** 2-D: slices are taken along this axis of the (i, j, k) volume */
  sliceAxis: number;
  /** target voxel spacing in mm along i, j, k (2-D: the slice axis keeps each image's own); null: no resampling */
  spacing: number[] | null;
  /** 2-D slice size or 3-D patch */
  size: number[];
  /**
   * 2-D: how slices meet the network. 'crop' (plans from this version on): slices keep the plan's spacing;
   * training crops (or zero-pads) them to `size`, inference pads each whole slice to multiples of 16.
   * 'resize' (absent: plans written before): every slice resized to `size` (the ACDC recipe), so a case's
   * pixel spacing depended on its field of view.
   */
  slices?: 'crop' | 'resize';
  /** 3-D sliding-window strides */
  strides: number[];
  batchSize: number;
  labeledBatch: number;
  normalization: Normalization[];
  crop: boolean;
  imageInterpolation: 'linear' | 'cubic';
  labelInterpolation: 'nearest' | 'linear';
  /** 3-D: share of labeled crops centred on a foreground voxel */
  foregroundOversampling: number;
  budget: 'cpu' | 'gpu';
  /** the run's split (written when training): the labeled and the validation case ids */
  split?: { labeled: string[]; validation: string[] };
  /** what the plan was made from */
  source?: { cases: number; medianShape: number[]; medianSpacing: number[]; resampledShape: number[] };
}

/** Voxels of one 3-D patch at most, per budget (a V-Net step at batch 4 stays around a second on 2 CPU cores). */
export const PATCH_VOXELS = { cpu: 48 * 48 * 48, gpu: 128 * 128 * 128 };

const KEYS: (keyof Plan)[] = [
  'network',
  'sliceAxis',
  'spacing',
  'size',
  'slices',
  'strides',
  'batchSize',
  'labeledBatch',
  'normalization',
  'crop',
  'imageInterpolation',
  'labelInterpolation',
  'foregroundOversampling',
  'budget',
];

function bad(key: string, expected: string, got: unknown): Error {
  return new RangeError(`plan.${key} must be ${expected}, got ${JSON.stringify(got)}`);
}

const round16 = (v: number) => Math.max(16, Math.round(v / 16) * 16);

/** The shape of a case of `shape` at `spacing` after resampling to `target` (the 2-D slice axis kept). */
export function resampledShape(shape: number[], spacing: number[], target: number[] | null, keepAxis = -1): number[] {
  if (!target) return [...shape];
  return shape.map((s, k) => (k === keepAxis ? s : Math.max(1, roundHalfEven((s * spacing[k]) / target[k]))));
}

/** numpy's rounding (half to even), as the native resampling sizes its output. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** CT's clipping range and statistics from the fingerprint of channel `ch` (its labeled foreground). */
function ctOf(fp: Fingerprint, ch: number): Normalization {
  const c = fp.channels[ch];
  if (!(c.std > 0))
    throw new RangeError(
      `plan.normalization: CT normalisation of channel ${ch} ('${c.name}') needs foreground intensities, but the labeled cases' foreground (label > 0) ${fp.classFrequencies.slice(1).some((f) => f > 0) ? 'has a single intensity' : 'is empty: every label map is all background'}; check labelsTr, or normalise this channel otherwise (--set plan.normalization=zscore)`,
    );
  return { scheme: 'ct', lo: c.p005, hi: c.p995, mean: c.mean, std: c.std };
}

/** A z-score of the plan: inside the non-zero mask when cropping to it shrinks the images by over a quarter. */
function zscoreOf(fp: Fingerprint): Normalization {
  return fp.cropRatio < 0.75 ? { scheme: 'zscore', mask: true } : { scheme: 'zscore' };
}

function normalizations(fp: Fingerprint): Normalization[] {
  return fp.channels.map((c, ch) => (/^ct$/i.test(c.name.trim()) ? ctOf(fp, ch) : zscoreOf(fp)));
}

const SCHEMES: NormalizationScheme[] = ['none', 'zscore', 'minmax', 'ct'];

/**
 * One channel's normalisation from an override: a scheme name, or an object { scheme, lo?, hi?, mean?,
 * std? } whose CT values default to the channel's fingerprint (each one checked: lo < hi, std > 0).
 */
function normalizationOverride(fp: Fingerprint, v: unknown, ch: number, key: string): Normalization {
  const expected = "a scheme ('none', 'zscore', 'minmax', 'ct'), an object { scheme, lo, hi, mean, std } or { scheme: 'zscore', mask }, or one of these per channel";
  if (typeof v === 'string') {
    if (!SCHEMES.includes(v as NormalizationScheme)) throw bad(key, expected, v);
    return v === 'ct' ? ctOf(fp, ch) : v === 'zscore' ? zscoreOf(fp) : { scheme: v as NormalizationScheme };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(key, expected, v);
  const o = v as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => !['scheme', 'lo', 'hi', 'mean', 'std', 'mask'].includes(k));
  if (extra !== undefined) throw bad(key, `${expected} (unknown key '${extra}')`, v);
  if (!SCHEMES.includes(o.scheme as NormalizationScheme)) throw bad(`${key}.scheme`, "'none', 'zscore', 'minmax' or 'ct'", o.scheme);
  if (o.scheme === 'zscore' && o.mask !== undefined) {
    if (typeof o.mask !== 'boolean') throw bad(`${key}.mask`, 'true or false', o.mask);
    if (Object.keys(o).length > 2) throw bad(key, "only { scheme, mask } for 'zscore'", v);
    return o.mask ? { scheme: 'zscore', mask: true } : { scheme: 'zscore' };
  }
  if (o.mask !== undefined) throw bad(key, "mask only with 'zscore'", v);
  if (o.scheme !== 'ct') {
    if (Object.keys(o).length > 1) throw bad(key, `only { scheme } for '${String(o.scheme)}' (lo, hi, mean and std are CT's)`, v);
    return o.scheme === 'zscore' ? zscoreOf(fp) : { scheme: o.scheme as NormalizationScheme };
  }
  for (const k of ['lo', 'hi', 'mean', 'std'])
    if (o[k] !== undefined && !(typeof o[k] === 'number' && Number.isFinite(o[k]))) throw bad(`${key}.${k}`, 'a finite number', o[k]);
  const given = o as Partial<Normalization>;
  const all = given.lo !== undefined && given.hi !== undefined && given.mean !== undefined && given.std !== undefined;
  const n = { ...(all ? {} : ctOf(fp, ch)), ...given } as Normalization;
  checkCt(n, key);
  return n;
}

/** A CT normalisation's values: finite, lo < hi, std > 0. */
function checkCt(n: Normalization, key: string): void {
  for (const k of ['lo', 'hi', 'mean', 'std'] as const) if (!(typeof n[k] === 'number' && Number.isFinite(n[k]))) throw bad(`${key}.${k}`, 'a finite number', n[k]);
  if (!(n.lo! < n.hi!)) throw bad(key, 'a CT clipping range with lo < hi', n);
  if (!(n.std! > 0)) throw bad(`${key}.std`, 'a number > 0', n.std);
}

function checkOverrides(o: Record<string, unknown>): void {
  for (const k of Object.keys(o)) if (!KEYS.includes(k as keyof Plan)) throw new RangeError(`plan.${k} is not a plan setting (one of ${KEYS.join(', ')})`);
}

/**
 * The plan of a fingerprinted dataset. `overrides` (from `--set plan.<key>=...` and `--size`) replace the
 * rules' choices; structural ones (network, spacing, slice axis, budget) are applied before the sizes are
 * derived from them.
 */
export function planFromFingerprint(fp: Fingerprint, ds: Pick<ImageDataset, 'name' | 'channels' | 'classes'>, overrides: Record<string, unknown> = {}): Plan {
  checkOverrides(overrides);
  const o = overrides as Partial<Plan> & { normalization?: unknown };
  const budget = o.budget ?? 'cpu';
  if (budget !== 'cpu' && budget !== 'gpu') throw bad('budget', "'cpu' or 'gpu'", budget);
  const spacing = o.spacing === undefined ? fp.medianSpacing : o.spacing;
  if (spacing !== null && (!Array.isArray(spacing) || spacing.length !== 3 || spacing.some((v) => !(typeof v === 'number' && v > 0))))
    throw bad('spacing', 'three voxel sizes > 0 (mm) or null', spacing);
  const sp = spacing ?? fp.medianSpacing;
  const coarse = sp.indexOf(Math.max(...sp));
  const anisotropic = Math.max(...sp) >= 3 * Math.min(...sp);
  const network = o.network ?? (anisotropic ? 'UNet2D' : 'VNet3D');
  if (network !== 'UNet2D' && network !== 'VNet3D') throw bad('network', "'UNet2D' or 'VNet3D'", network);
  const sliceAxis = o.sliceAxis ?? (anisotropic ? coarse : 2);
  if (![0, 1, 2].includes(sliceAxis)) throw bad('sliceAxis', '0, 1 or 2', sliceAxis);
  const twoD = network === 'UNet2D';
  const shape = resampledShape(fp.medianShape, fp.medianSpacing, spacing, twoD ? sliceAxis : -1).map(Math.round);
  let size: number[];
  if (twoD) {
    // rounded up (as nnU-Net pads its patch to the network's divisibility), so that a crop holds a median
    // slice whole: a training crop then looks like the zero-padded whole slice that inference runs on
    // (crops rounded to the nearest 16 cut the slices and scored lower: README, 'The plan')
    size = shape.filter((_, k) => k !== sliceAxis).map((v) => Math.min(256, Math.max(16, Math.ceil(v / 16) * 16)));
  } else {
    // rot90 in the (i, j) plane swaps those sides: the patch takes the larger of both for either
    size = shape.map(round16);
    size[0] = size[1] = Math.max(size[0], size[1]);
    while (size.reduce((a, b) => a * b, 1) > PATCH_VOXELS[budget] && Math.max(...size) > 16) {
      if (size[0] >= size[2]) size[0] = size[1] = size[0] - 16;
      else size[2] -= 16;
    }
  }
  if (o.size !== undefined) size = o.size;
  const dims = twoD ? 2 : 3;
  if (!Array.isArray(size) || size.length !== dims || size.some((v) => !Number.isInteger(v) || v < 16 || v % 16 !== 0))
    throw bad('size', `${dims} multiples of 16 (the network halves the resolution four times)`, size);
  const slices = o.slices ?? 'crop';
  if (slices !== 'crop' && slices !== 'resize') throw bad('slices', "'crop' or 'resize'", slices);
  const strides = o.strides ?? size.map((v) => Math.max(1, Math.floor(v / 2)));
  if (!Array.isArray(strides) || strides.length !== dims || strides.some((v) => !Number.isInteger(v) || v < 1)) throw bad('strides', `${dims} integers >= 1`, strides);
  const labeledBatch = o.labeledBatch ?? (twoD ? (budget === 'gpu' ? 12 : 4) : 2);
  const batchSize = o.batchSize ?? 2 * labeledBatch;
  if (!Number.isInteger(labeledBatch) || labeledBatch < 1) throw bad('labeledBatch', 'an integer >= 1', labeledBatch);
  if (!Number.isInteger(batchSize) || batchSize < labeledBatch) throw bad('batchSize', `an integer >= labeledBatch (${labeledBatch})`, batchSize);
  let normalization: Normalization[];
  if (o.normalization === undefined) normalization = normalizations(fp);
  else {
    const n = o.normalization;
    if (Array.isArray(n) && n.length !== fp.channels.length) throw bad('normalization', `one entry per channel (${fp.channels.length})`, n);
    // a single value applies to every channel, each with its own statistics (CT took channel 0's for all)
    normalization = fp.channels.map((_, ch) => normalizationOverride(fp, Array.isArray(n) ? n[ch] : n, ch, Array.isArray(n) ? `normalization[${ch}]` : 'normalization'));
  }
  const crop = o.crop ?? true;
  if (typeof crop !== 'boolean') throw bad('crop', 'true or false', crop);
  const imageInterpolation = o.imageInterpolation ?? 'cubic';
  if (imageInterpolation !== 'linear' && imageInterpolation !== 'cubic') throw bad('imageInterpolation', "'linear' or 'cubic'", imageInterpolation);
  const labelInterpolation = o.labelInterpolation ?? 'linear';
  if (labelInterpolation !== 'nearest' && labelInterpolation !== 'linear') throw bad('labelInterpolation', "'nearest' or 'linear'", labelInterpolation);
  const foregroundOversampling = o.foregroundOversampling ?? 0.33;
  if (typeof foregroundOversampling !== 'number' || !(foregroundOversampling >= 0 && foregroundOversampling <= 1)) throw bad('foregroundOversampling', 'a number in [0, 1]', foregroundOversampling);
  return {
    version: 1,
    dataset: ds.name,
    channels: [...ds.channels],
    classes: [...ds.classes],
    network,
    sliceAxis,
    spacing,
    size,
    ...(twoD ? { slices } : {}),
    strides,
    batchSize,
    labeledBatch,
    normalization,
    crop,
    imageInterpolation,
    labelInterpolation,
    foregroundOversampling,
    budget,
    source: { cases: fp.cases, medianShape: fp.medianShape, medianSpacing: fp.medianSpacing, resampledShape: shape },
  };
}

/** A plan read back (plan.json, a checkpoint): checks the fields inference relies on. */
export function checkPlan(p: unknown, where: string): Plan {
  const plan = p as Plan;
  const ok =
    plan &&
    plan.version === 1 &&
    (plan.network === 'UNet2D' || plan.network === 'VNet3D') &&
    Array.isArray(plan.size) &&
    Array.isArray(plan.normalization) &&
    Array.isArray(plan.classes) &&
    Array.isArray(plan.channels) &&
    (plan.spacing === null || (Array.isArray(plan.spacing) && plan.spacing.length === 3));
  if (!ok) throw new Error(`${where}: not a valid semiseg plan (version 1 with network, size, spacing, normalization, classes, channels)`);
  if (plan.slices !== undefined && plan.slices !== 'crop' && plan.slices !== 'resize') throw new Error(`${where}: not a valid semiseg plan: slices is ${JSON.stringify(plan.slices)}, not 'crop' or 'resize'`);
  plan.normalization.forEach((n, ch) => {
    if (!n || !SCHEMES.includes(n.scheme)) throw new Error(`${where}: not a valid semiseg plan: normalization[${ch}] has no scheme of ${SCHEMES.join(', ')}`);
    if (n.mask !== undefined && typeof n.mask !== 'boolean') throw new Error(`${where}: not a valid semiseg plan: normalization[${ch}].mask is ${JSON.stringify(n.mask)}, not true or false`);
    // (values that are given must be numbers; plans of earlier versions may lack mean and std: preprocessing
    // takes 0 and 1 for them, as it did when they trained)
    const wrong = (['lo', 'hi', 'mean', 'std'] as const).find((k) => n[k] !== undefined && !(typeof n[k] === 'number' && Number.isFinite(n[k])));
    if (wrong) throw new Error(`${where}: not a valid semiseg plan: normalization[${ch}].${wrong} is ${JSON.stringify(n[wrong])}, not a finite number`);
  });
  return plan;
}

/** The plan as people read it (what `semiseg plan` prints). */
export function describePlan(p: Plan): string {
  const f = (v: number[] | null | undefined, digits = 3) => (v ? v.map((x) => Number(x.toFixed(digits))).join(' x ') : 'each image its own');
  const lines = [
    `dataset        ${p.dataset}: ${p.source?.cases ?? '?'} labeled cases, channels ${p.channels.join(', ')}, classes ${p.classes.map((c, i) => `${i} ${c}`).join(', ')}`,
    `median shape   ${f(p.source?.medianShape, 1)} voxels (after cropping to the non-zero region) at ${f(p.source?.medianSpacing)} mm`,
    `spacing        ${f(p.spacing)} mm${p.network === 'UNet2D' && p.spacing ? ` (slice axis ${p.sliceAxis} keeps its own)` : ''} -> median shape ${f(p.source?.resampledShape, 0)}`,
    `network        ${p.network === 'UNet2D' ? `2-D U-Net on slices along axis ${p.sliceAxis}` : '3-D V-Net'}`,
    `${p.network === 'UNet2D' ? 'slice size' : 'patch     '}     ${p.size.join(' x ')}${p.network === 'VNet3D' ? `, sliding-window strides ${p.strides.join(' x ')}` : ''}`,
    `batch          ${p.labeledBatch} labeled (+ ${p.batchSize - p.labeledBatch} unlabeled for semi-supervised methods), ${p.budget.toUpperCase()} budget`,
    `normalisation  ${p.normalization
      .map((n, c) => `${p.channels[c]}: ${n.scheme === 'ct' ? `clip to [${n.lo?.toFixed(1)}, ${n.hi?.toFixed(1)}], z-score with foreground mean ${n.mean?.toFixed(1)} and std ${n.std?.toFixed(1)}` : n.scheme === 'zscore' ? `z-score per volume${n.mask ? ' inside the non-zero region (0 outside)' : ''}` : n.scheme}`)
      .join('; ')}`,
    `resampling     images ${p.imageInterpolation}, labels ${p.labelInterpolation === 'linear' ? 'linear on one-hot maps' : 'nearest'}; crop to non-zero ${p.crop ? 'yes' : 'no'}`,
    `augmentation   ${
      p.network === 'VNet3D'
        ? `rot90 + flip + random crop, ${Math.round(p.foregroundOversampling * 100)} % of labeled crops centred on foreground`
        : p.slices === 'crop'
          ? `rot90 / flip or rotation, crop to the slice size at the plan's spacing, ${Math.round(p.foregroundOversampling * 100)} % centred on foreground (inference: whole slices)`
          : 'rot90 / flip or rotation, resize to the slice size (the ACDC recipe)'
    }`,
  ];
  return lines.join('\n');
}

/**
 * The preprocessing a checkpoint's network expects: its plan, or for the published recipes the
 * normalisation their data had (ACDC slices min-max per volume, LA volumes z-scored); none for
 * synthetic data.
 */
export function preprocessingOf(config: { dataset?: string; plan?: Plan | null; network?: string } | undefined): Plan | null {
  if (!config) return null;
  if (config.plan) return checkPlan(config.plan, 'checkpoint');
  const scheme: NormalizationScheme | null = config.dataset === 'acdc' ? 'minmax' : config.dataset === 'la' ? 'zscore' : null;
  if (!scheme) return null;
  const twoD = config.network === 'UNet2D';
  return {
    version: 1,
    dataset: config.dataset!,
    channels: ['MRI'],
    classes: [],
    network: twoD ? 'UNet2D' : 'VNet3D',
    sliceAxis: 2,
    spacing: null,
    size: [],
    strides: [],
    batchSize: 0,
    labeledBatch: 0,
    normalization: [{ scheme }],
    crop: false,
    imageInterpolation: 'linear',
    labelInterpolation: 'nearest',
    foregroundOversampling: 0,
    budget: 'cpu',
  };
}
