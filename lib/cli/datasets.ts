/** Resolving `--data` for the command line: a dataset folder of the recipe's layout, or `synthetic`. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { acdcVolumePath, laVolumePath, readList } from '../data/datasets.js';
import { readH5 } from '../data/hdf5.js';
import { dispose } from '../scope.js';
import { acdcData, laData, multiTaskData, syntheticData, type TrainData, type Volume } from '../trainers/data.js';
import type { TrainConfig } from '../trainers/recipes.js';
import { UsageError } from './options.js';

export function trainData(dir: string, c: TrainConfig): TrainData {
  const parts = dir.split(',').filter((p) => p.length > 0);
  if (parts.length > 1) {
    if (c.method !== 'versemi') throw new UsageError(`--data: several folders (one task each) are for the versemi recipes, not '${c.recipe}'`);
    const datasets: TrainData[] = [];
    try {
      for (const [k, part] of parts.entries()) datasets.push(trainData(part, { ...c, seed: c.seed + k }));
    } catch (err) {
      datasets.forEach((d) => d.dispose());
      throw err;
    }
    return multiTaskData(datasets);
  }
  if (dir === 'synthetic') {
    const threeD = c.network === 'VNet3D';
    return syntheticData({
      spatialDims: threeD ? 3 : 2,
      labeled: c.labeled,
      size: threeD ? Math.max(...c.size) + 16 : c.size[0],
      patch: threeD ? (c.size as [number, number, number]) : undefined,
      valCases: c.valCases,
      seed: c.seed,
    });
  }
  if (!existsSync(dir)) throw new UsageError(`--data: '${dir}' does not exist`);
  if (c.dataset === 'acdc' || c.dataset === 'synthetic-2d') {
    const root = layoutRoot(dir, 'ACDC', 'train_slices.list', '--data');
    return acdcData(root, { patients: c.labeled, size: c.size as [number, number], valCases: c.valCases });
  }
  const root = layoutRoot(dir, 'LA', 'train.list', '--data');
  return laData(root, { labeled: c.labeled, patch: c.size as [number, number, number], valCases: c.valCases });
}

/**
 * The folder of a dataset layout: `dir` itself when it holds `file`, else `dir/<sub>` when that does (a
 * folder holding ACDC/ or LA/, such as ../shared/data); an error naming both paths when neither does.
 */
export function layoutRoot(dir: string, sub: string, file: string, what: string): string {
  for (const root of [dir, join(dir, sub)]) if (existsSync(join(root, file))) return root;
  throw new UsageError(`${what}: neither '${join(dir, file)}' nor '${join(dir, sub, file)}' exists (the ${sub} layout)`);
}

/**
 * Volumes of split `split` (val or test) of an ACDC or LA folder, decoded. The layout is found by the
 * split's own list file (a test folder may hold only test.list and data/). LA has one held-out list,
 * test.list; `val` on an LA folder without it takes the volumes training validated on (the last 2 of
 * train.list, as laData).
 */
export async function splitVolumes(dir: string, kind: 'UNet2D' | 'VNet3D' | 'VerSemi', split: 'val' | 'test'): Promise<Volume[]> {
  if (!existsSync(dir)) throw new UsageError(`--data: '${dir}' does not exist`);
  const acdc = kind === 'UNet2D';
  const what = `--split ${split}`;
  let root: string;
  let ids: string[];
  if (acdc) {
    root = layoutRoot(dir, 'ACDC', `${split}.list`, what);
    ids = readList(join(root, `${split}.list`));
  } else if (split === 'val' && ![dir, join(dir, 'LA')].some((r) => existsSync(join(r, 'test.list'))) && [dir, join(dir, 'LA')].some((r) => existsSync(join(r, 'train.list')))) {
    root = layoutRoot(dir, 'LA', 'train.list', what);
    ids = readList(join(root, 'train.list')).slice(-2);
  } else {
    root = layoutRoot(dir, 'LA', 'test.list', what);
    ids = readList(join(root, 'test.list'));
  }
  const out: Volume[] = [];
  try {
    for (const id of ids) {
      const s = await readH5(acdc ? acdcVolumePath(root, id) : laVolumePath(root, id), { numClasses: acdc ? 4 : 2 });
      out.push({ id, image: s.image, label: s.label! });
    }
  } catch (err) {
    for (const v of out) dispose([v.image, v.label]);
    throw err;
  }
  return out;
}
