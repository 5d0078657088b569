/**
 * Training data from a Decathlon / nnU-Net folder and its plan: every case is decoded and preprocessed
 * once (native crop, normalisation, resampling) before training starts and kept in memory (and, with
 * `cacheDir`, on disk as safetensors keyed by the plan, so a resumed or repeated run decodes nothing).
 *
 * 3-D plans train on whole preprocessed volumes with the LA recipe's augmentation (rot90 + flip + random
 * crop) plus nnU-Net's foreground oversampling; 2-D plans train on the slices along the plan's slice axis
 * with the ACDC recipe's augmentation and resize. Validation volumes are held out of the labeled pool.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { randint, randomCrop, laAugment, acdcAugment, acdcRotateFlip, foregroundCrop, type Random } from '../data/augment.js';
import { readCase, type ImageCase, type ImageDataset } from '../data/folders.js';
import { preprocessWithPlan } from '../data/preprocess.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Plan } from '../plan/plan.js';
import { dispose, tidy } from '../scope.js';
import { withMessage } from '../validate.js';
import type { Tensor } from '../tensor.js';
import type { TrainData, Volume } from './data.js';

export interface PlannedDataOptions {
  /** Labeled cases: the first N of the labeled pool (sorted ids) after the validation cases are held out. */
  labeled?: number;
  /** Or exactly these case ids. */
  labeledList?: string[];
  /** Validation cases: the last N of the labeled pool (default 0: validate on nothing). */
  val?: number;
  /** Or exactly these case ids. */
  valList?: string[];
  /** Keep preprocessed cases in this folder (safetensors, one sub-folder per plan). */
  cacheDir?: string;
  /** Progress of the preprocessing: a case done. */
  onCase?: (done: number, total: number, id: string) => void;
}

export interface PlannedSplit {
  labeled: ImageCase[];
  unlabeled: ImageCase[];
  val: ImageCase[];
}

/** Which cases are labeled, unlabeled and held out for validation (errors name the option at fault). */
export function plannedSplit(ds: ImageDataset, o: PlannedDataOptions): PlannedSplit {
  const pool = ds.labeled;
  const byId = new Map(pool.map((c) => [c.id, c]));
  const pick = (ids: string[], what: string) =>
    ids.map((id) => {
      const c = byId.get(id);
      if (!c) throw new Error(`${what}: case '${id}' is not a labeled case of '${ds.root}' (labelsTr/ has ${pool.length}: ${pool.slice(0, 3).map((p) => p.id).join(', ')}, ...)`);
      return c;
    });
  const val = o.valList ? pick(o.valList, '--val-list') : pool.slice(pool.length - (o.val ?? 0));
  if ((o.val ?? 0) > 0 && o.val! >= pool.length) throw new Error(`--val ${o.val}: the folder has ${pool.length} labeled cases; at least one must remain for training`);
  const valIds = new Set(val.map((c) => c.id));
  const rest = pool.filter((c) => !valIds.has(c.id));
  let labeled: ImageCase[];
  if (o.labeledList) {
    labeled = pick(o.labeledList, '--labeled-list');
    const clash = labeled.find((c) => valIds.has(c.id));
    if (clash) throw new Error(`--labeled-list: case '${clash.id}' is also a validation case`);
  } else {
    const n = o.labeled ?? rest.length;
    if (n > rest.length)
      throw new Error(`--labeled ${n}: '${ds.root}' has ${rest.length} labeled cases${val.length ? ` after holding out ${val.length} for validation` : ''}`);
    labeled = rest.slice(0, n);
  }
  if (labeled.length === 0) throw new Error('--labeled: at least one labeled case is needed');
  const labeledIds = new Set(labeled.map((c) => c.id));
  const unlabeled = [...rest.filter((c) => !labeledIds.has(c.id)).map((c) => ({ id: c.id, images: c.images })), ...ds.unlabeled];
  return { labeled, unlabeled, val };
}

/** A short key of everything preprocessing depends on. */
function planKey(plan: Plan): string {
  const { normalization, spacing, crop, imageInterpolation, labelInterpolation, network, sliceAxis } = plan;
  return createHash('sha256')
    .update(JSON.stringify({ normalization, spacing, crop, imageInterpolation, labelInterpolation, network, sliceAxis }))
    .digest('hex')
    .slice(0, 12);
}

interface Prepared {
  id: string;
  /** (...spatial) float32, one channel */
  image: Tensor;
  label?: Tensor;
}

/** `err` with `'<path>': ` before its message (the same error object, so its class and fields stay). */
function namingFile(err: unknown, path: string): unknown {
  const prefix = `'${path}': `;
  if (!(err instanceof Error)) return new Error(prefix + String(err));
  if (err.message.startsWith(prefix)) return err;
  return withMessage(err, prefix + err.message);
}

/** The size and modification time of a case's files: a cached preprocessed case is used only while they match. */
function sourceStamp(c: ImageCase, withLabel: boolean): string {
  const files = [...c.images, ...(withLabel && c.label ? [c.label] : [])];
  return JSON.stringify(
    files.map((f) => {
      const st = statSync(f);
      return [f, st.size, st.mtimeMs];
    }),
  );
}

async function prepare(ds: ImageDataset, c: ImageCase, plan: Plan, withLabel: boolean, cache?: string): Promise<Prepared> {
  const file = cache ? join(cache, `${c.id}${withLabel ? '' : '.image'}.safetensors`) : '';
  const source = cache ? sourceStamp(c, withLabel) : '';
  if (cache && existsSync(file)) {
    const f = await readSafetensors(file);
    // a case whose image or label changed since (a corrected label) is preprocessed again
    if (f.metadata.source === source) return { id: c.id, image: f.tensors.image, label: f.tensors.label };
    dispose(Object.values(f.tensors));
  }
  const cs = await readCase(ds, c, withLabel);
  try {
    let p: Awaited<ReturnType<typeof preprocessWithPlan>>;
    try {
      p = await preprocessWithPlan(cs.data, cs.label, cs.spacing, plan);
    } catch (err) {
      throw namingFile(err, c.images[0]);
    }
    const image = tidy(() => p.image.squeeze(0));
    p.image.dispose();
    if (cache) await writeSafetensors(file, p.label ? { image, label: p.label } : { image }, { case: c.id, source });
    return { id: c.id, image, label: p.label };
  } finally {
    dispose([cs.data, cs.label]);
  }
}

/** The 3-D augmentation of a plan: the LA recipe's rot90 + flip, then a random or foreground-centred crop. */
export function plannedAugment3d(image: Tensor, label: Tensor, rand: Random, patch: [number, number, number], foreground: number): [Tensor, Tensor] {
  if (!(foreground > 0)) return laAugment(image, label, rand, patch); // exactly the LA recipe's draws
  return tidy(() => {
    const k = randint(rand, 0, 4);
    const axis = randint(rand, 0, 2);
    const [im, lb] = [image, label].map((t) => t.rot90(k, [t.rank - 3, t.rank - 2]).flip(t.rank - 3 + axis));
    return rand() >= foreground ? randomCrop(im, lb, patch, rand) : foregroundCrop(im, lb, patch, rand);
  });
}

/**
 * The 2-D augmentation of a plan whose slices keep its spacing (plan.slices 'crop'): the ACDC recipe's
 * rot90 + flip or rotation, then a crop of the slice size (random, or centred on a foreground pixel for
 * `foreground` of the draws), zero-padded where the slice is smaller. Nothing is resized, so every case
 * is seen at the plan's pixel spacing.
 */
export function plannedAugment2d(image: Tensor, label: Tensor, rand: Random, size: [number, number], foreground: number): [Tensor, Tensor] {
  return tidy(() => {
    const [im, lb] = acdcRotateFlip(image, label, rand);
    return rand() >= foreground ? randomCrop(im, lb, size, rand) : foregroundCrop(im, lb, size, rand);
  });
}

/** Moves the slice axis of a (I, J, K) volume first: (slices, H, W), the ACDC volume layout. */
export function slicesFirst(t: Tensor, axis: number): Tensor {
  return tidy(() => t.permute([axis, ...[0, 1, 2].filter((k) => k !== axis)]).contiguous());
}

/**
 * Training data of a planned dataset. Decodes and preprocesses every case before it returns (the labeled,
 * the unlabeled and the validation ones), reporting each through `onCase`.
 */
export async function plannedData(ds: ImageDataset, plan: Plan, o: PlannedDataOptions = {}): Promise<TrainData> {
  if (ds.channels.length > 1)
    throw new Error(`'${ds.root}' has ${ds.channels.length} channels (${ds.channels.join(', ')}); training on several channels is not supported yet (inference and planning are)`);
  const split = plannedSplit(ds, o);
  const cache = o.cacheDir ? join(o.cacheDir, planKey(plan)) : undefined;
  if (cache) mkdirSync(cache, { recursive: true });
  const total = split.labeled.length + split.unlabeled.length + split.val.length;
  let done = 0;
  const all: Prepared[] = [];
  const run = async (cases: ImageCase[], withLabel: boolean) => {
    const out: Prepared[] = [];
    for (const c of cases) {
      const p = await prepare(ds, c, plan, withLabel, cache);
      out.push(p);
      all.push(p);
      o.onCase?.(++done, total, c.id);
    }
    return out;
  };
  try {
    const labeled = await run(split.labeled, true);
    const unlabeled = await run(split.unlabeled, false);
    const val = await run(split.val, true);
    const twoD = plan.network === 'UNet2D';
    const classes = plan.classes.length;
    const validation: Volume[] = val.map((v) => ({
      id: v.id,
      image: twoD ? slicesFirst(v.image, plan.sliceAxis) : v.image,
      label: twoD ? slicesFirst(v.label!, plan.sliceAxis) : v.label!,
    }));
    if (twoD) validation.forEach((v, i) => dispose([val[i].image, val[i].label]));
    const free = () => {
      dispose(all.flatMap((p) => [p.image, p.label]));
      dispose(validation.flatMap((v) => [v.image, v.label]));
    };
    if (!twoD) {
      const items = [...labeled, ...unlabeled];
      const patch = plan.size as [number, number, number];
      return {
        name: ds.name,
        spatialDims: 3,
        classes,
        labeled: labeled.length,
        unlabeled: unlabeled.length,
        load: async (i) => ({ image: items[i].image.clone(), label: i < labeled.length ? items[i].label!.clone() : undefined }),
        augment: (image, label, rand) => plannedAugment3d(image, label, rand, patch, plan.foregroundOversampling),
        validation: async () => validation,
        dispose: free,
      };
    }
    // 2-D: one item per slice along the slice axis
    const slices: { volume: Prepared; k: number }[] = [];
    for (const v of labeled) for (let k = 0; k < v.image.shape[plan.sliceAxis]; k++) slices.push({ volume: v, k });
    const labeledSlices = slices.length;
    for (const v of unlabeled) for (let k = 0; k < v.image.shape[plan.sliceAxis]; k++) slices.push({ volume: v, k });
    const size = plan.size as [number, number];
    return {
      name: ds.name,
      spatialDims: 2,
      classes,
      labeled: labeledSlices,
      unlabeled: slices.length - labeledSlices,
      load: async (i) => {
        const { volume, k } = slices[i];
        return tidy(() => ({
          image: volume.image.narrow(plan.sliceAxis, k, 1).squeeze(plan.sliceAxis).contiguous(),
          label: i < labeledSlices ? volume.label!.narrow(plan.sliceAxis, k, 1).squeeze(plan.sliceAxis).contiguous() : undefined,
        }));
      },
      augment: plan.slices === 'crop' ? (image, label, rand) => plannedAugment2d(image, label, rand, size, plan.foregroundOversampling) : (image, label, rand) => acdcAugment(image, label, rand, size),
      validation: async () => validation,
      dispose: free,
    };
  } catch (err) {
    dispose(all.flatMap((p) => [p.image, p.label]));
    throw err;
  }
}
