/**
 * Training data for the trainers: labeled and unlabeled training items (decoded once, then cached),
 * the recipe's augmentation, and validation / test volumes. ACDC and LA read the standard HDF5 layout;
 * the synthetic sets need no files (tests, the demo).
 */
import { tensor } from '../create.js';
import { acdcAugment, laAugment, randomCrop, type Random } from '../data/augment.js';
import { acdcSlicePath, acdcSplit, acdcVolumePath, laSplit, laVolumePath } from '../data/datasets.js';
import { readH5 } from '../data/hdf5.js';
import type { Item } from '../data/loader.js';
import { syntheticBlobs, syntheticCardiac } from '../demo/synthetic.js';
import { dispose } from '../scope.js';
import type { Tensor } from '../tensor.js';

export interface Volume {
  id: string;
  /** ACDC: (slices, H, W); LA: (x, y, z). float32 */
  image: Tensor;
  /** int64, same shape */
  label: Tensor;
  /** Multi-task data (VerSemi): the task the volume belongs to (default 0). */
  task?: number;
}

export interface TrainData {
  name: string;
  spatialDims: 2 | 3;
  classes: number;
  /** Items 0 .. labeled-1 are labeled, labeled .. labeled+unlabeled-1 unlabeled. */
  labeled: number;
  unlabeled: number;
  /**
   * Item `index` (a labeled item must carry its label). The training loop owns what this returns: it
   * caches the tensors for later batches and disposes them when the run ends, so return fresh tensors
   * (clones) of data you keep yourself.
   */
  load(index: number): Promise<Item>;
  /** The recipe's augmentation; every result has the training shape. */
  augment(image: Tensor, label: Tensor, rand: Random): [Tensor, Tensor];
  /** Validation volumes, decoded on first use and kept. */
  validation(): Promise<Volume[]>;
  /** Frees everything cached. */
  dispose(): void;
  /** Multi-task data (VerSemi): the number of tasks (default 1) and the task of each item. */
  tasks?: number;
  taskOf?(index: number): number;
}

/**
 * Several binary datasets as one multi-task set (VerSemi, one task per dataset, in the order given):
 * every dataset's labeled items first, then every unlabeled item; validation volumes carry their task.
 * All must have the same dimensionality and 2 classes; items are augmented with the first dataset's
 * augmentation (so give them the same patch).
 */
export function multiTaskData(datasets: TrainData[]): TrainData {
  if (datasets.length === 0) throw new Error('multiTaskData(): no datasets');
  const d = datasets[0].spatialDims;
  for (const [k, ds] of datasets.entries()) {
    if (ds.spatialDims !== d) throw new Error(`multiTaskData(): dataset ${k} ('${ds.name}') is ${ds.spatialDims}-D, dataset 0 is ${d}-D`);
    if (ds.classes !== 2) throw new Error(`multiTaskData(): dataset ${k} ('${ds.name}') has ${ds.classes} classes; every task must be binary`);
  }
  // global index -> [dataset, local index]
  const where: [number, number][] = [];
  datasets.forEach((ds, k) => {
    for (let i = 0; i < ds.labeled; i++) where.push([k, i]);
  });
  datasets.forEach((ds, k) => {
    for (let i = 0; i < ds.unlabeled; i++) where.push([k, ds.labeled + i]);
  });
  const labeled = datasets.reduce((n, ds) => n + ds.labeled, 0);
  return {
    name: datasets.map((ds) => ds.name).join('+'),
    spatialDims: d,
    classes: 2,
    labeled,
    unlabeled: where.length - labeled,
    tasks: datasets.length,
    taskOf: (i) => where[i][0],
    load: (i) => datasets[where[i][0]].load(where[i][1]),
    augment: (image, label, rand) => datasets[0].augment(image, label, rand),
    async validation() {
      const all: Volume[] = [];
      for (const [k, ds] of datasets.entries()) for (const v of await ds.validation()) all.push({ ...v, id: `${ds.name}:${v.id}`, task: k });
      return all;
    },
    dispose: () => datasets.forEach((ds) => ds.dispose()),
  };
}

function cached(loader: () => Promise<Volume[]>): { get: () => Promise<Volume[]>; free: () => void } {
  let p: Promise<Volume[]> | null = null;
  let loaded: Volume[] = [];
  return {
    get: () =>
      (p ??= loader().then((vs) => {
        loaded = vs;
        return vs;
      })),
    free: () => {
      for (const v of loaded) dispose([v.image, v.label]);
      loaded = [];
      p = null;
    },
  };
}

async function volumes(ids: string[], path: (id: string) => string, classes: number): Promise<Volume[]> {
  const out: Volume[] = [];
  for (const id of ids) {
    const s = await readH5(path(id), { numClasses: classes });
    out.push({ id, image: s.image, label: s.label as Tensor });
  }
  return out;
}

export interface AcdcDataOptions {
  /** Labeled patients (first N of train_slices.list): 3 -> 68 slices, 7 -> 136. */
  patients: number;
  /** Training (and validation) slice size; 256 x 256 in the papers. */
  size: [number, number];
  /** Use only the first N validation volumes (a smaller budget); default all 20. */
  valCases?: number;
}

/** ACDC in the SSL4MIS layout under `root` (train_slices.list, val.list, data/slices/*.h5, data/*.h5). */
export function acdcData(root: string, o: AcdcDataOptions): TrainData {
  const split = acdcSplit(root, o.patients);
  const names = [...split.labeled, ...split.unlabeled];
  const val = cached(() => volumes(split.val.slice(0, o.valCases ?? split.val.length), (id) => acdcVolumePath(root, id), 4));
  return {
    name: 'acdc',
    spatialDims: 2,
    classes: 4,
    labeled: split.labeled.length,
    unlabeled: split.unlabeled.length,
    async load(i) {
      const s = await readH5(acdcSlicePath(root, names[i]), { numClasses: 4, requireLabel: i < split.labeled.length });
      return { image: s.image, label: i < split.labeled.length ? s.label : (s.label?.dispose(), undefined) };
    },
    augment: (image, label, rand) => acdcAugment(image, label, rand, o.size),
    validation: val.get,
    dispose: val.free,
  };
}

export interface LaDataOptions {
  /** Labeled volumes (first N of train.list): 4 -> 5 %, 8 -> 10 %. */
  labeled: number;
  /** Training patch; 112 x 112 x 80 in the papers. */
  patch: [number, number, number];
  valCases?: number;
}

/**
 * LA in the UA-MT layout under `root`. Validation uses test.list when present; otherwise (this
 * repository's copy has 12 training volumes only) the last `valCases` (default 2) unlabeled volumes,
 * which are then left out of training.
 */
export function laData(root: string, o: LaDataOptions): TrainData {
  const split = laSplit(root, o.labeled);
  const held = split.val.length > 0 ? [] : split.unlabeled.slice(-(o.valCases ?? 2));
  const unlabeled = split.unlabeled.slice(0, split.unlabeled.length - held.length);
  const valIds = split.val.length > 0 ? split.val.slice(0, o.valCases ?? split.val.length) : held;
  const names = [...split.labeled, ...unlabeled];
  const val = cached(() => volumes(valIds, (id) => laVolumePath(root, id), 2));
  return {
    name: 'la',
    spatialDims: 3,
    classes: 2,
    labeled: split.labeled.length,
    unlabeled: unlabeled.length,
    async load(i) {
      const s = await readH5(laVolumePath(root, names[i]), { numClasses: 2 });
      return { image: s.image, label: i < split.labeled.length ? s.label : (s.label?.dispose(), undefined) };
    },
    augment: (image, label, rand) => laAugment(image, label, rand, o.patch),
    validation: val.get,
    dispose: val.free,
  };
}

export interface SyntheticDataOptions {
  spatialDims?: 2 | 3;
  labeled?: number;
  unlabeled?: number;
  /** 2-D slice side (default 64); 3-D volumes are side x side x (side / 2 rounded to 16). */
  size?: number;
  valCases?: number;
  seed?: number;
  /** 3-D training patch (each a multiple of 16 for the V-Net); default 3/4 of the volume, rounded down to 16. */
  patch?: [number, number, number];
}

/** Generated cardiac-like slices (2-D, 4 classes) or blob volumes (3-D, 2 classes). */
export function syntheticData(o: SyntheticDataOptions = {}): TrainData {
  const d = o.spatialDims ?? 2;
  const labeled = o.labeled ?? 8;
  const unlabeled = o.unlabeled ?? 24;
  const size = o.size ?? (d === 2 ? 64 : 32);
  const seed = o.seed ?? 0;
  const valCases = o.valCases ?? 2;
  const n = labeled + unlabeled;
  if (d === 2) {
    const slices = 6;
    const train = syntheticCardiac({ n, size, seed });
    const valSet = syntheticCardiac({ n: valCases * slices, size, seed: seed + 1 });
    const px = size * size;
    const val = cached(async () =>
      Array.from({ length: valCases }, (_, v) => ({
        id: `synthetic_val_${v}`,
        image: tensor(valSet.images.subarray(v * slices * px, (v + 1) * slices * px), { shape: [slices, size, size] }),
        label: tensor(valSet.labels.subarray(v * slices * px, (v + 1) * slices * px), { shape: [slices, size, size], dtype: 'int64' }),
      })),
    );
    return {
      name: 'synthetic-2d',
      spatialDims: 2,
      classes: 4,
      labeled,
      unlabeled,
      load: async (i) => ({
        image: tensor(train.images.subarray(i * px, (i + 1) * px), { shape: [size, size] }),
        label: i < labeled ? tensor(train.labels.subarray(i * px, (i + 1) * px), { shape: [size, size], dtype: 'int64' }) : undefined,
      }),
      augment: (image, label, rand) => acdcAugment(image, label, rand, [size, size]),
      validation: val.get,
      dispose: val.free,
    };
  }
  const shape: [number, number, number] = [size, size, Math.max(16, Math.round(size / 32) * 16)];
  const patch = o.patch ?? (shape.map((s) => Math.max(16, Math.floor((s * 0.75) / 16) * 16)) as [number, number, number]);
  const train = syntheticBlobs({ n, shape, seed });
  const valSet = syntheticBlobs({ n: valCases, shape, seed: seed + 1 });
  const vx = shape[0] * shape[1] * shape[2];
  const part = (s: typeof train, i: number) => ({
    image: tensor(s.images.subarray(i * vx, (i + 1) * vx), { shape }),
    label: tensor(s.labels.subarray(i * vx, (i + 1) * vx), { shape, dtype: 'int64' }),
  });
  const val = cached(async () => Array.from({ length: valCases }, (_, v) => ({ id: `synthetic_val_${v}`, ...part(valSet, v) })));
  return {
    name: 'synthetic-3d',
    spatialDims: 3,
    classes: 2,
    labeled,
    unlabeled,
    load: async (i) => {
      const it = part(train, i);
      if (i < labeled) return it;
      it.label.dispose();
      return { image: it.image };
    },
    augment: (image, label, rand) => randomCrop(image, label, patch, rand),
    validation: val.get,
    dispose: val.free,
  };
}

