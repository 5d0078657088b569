/** Resolving `--data` for the command line: a dataset folder of the recipe's layout, or `synthetic`. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { acdcVolumePath, laVolumePath, readList } from '../data/datasets.js';
import { readH5 } from '../data/hdf5.js';
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
    const root = existsSync(join(dir, 'train_slices.list')) ? dir : join(dir, 'ACDC');
    if (!existsSync(join(root, 'train_slices.list'))) throw new UsageError(`--data: '${dir}' has no train_slices.list (the ACDC layout)`);
    return acdcData(root, { patients: c.labeled, size: c.size as [number, number], valCases: c.valCases });
  }
  const root = existsSync(join(dir, 'train.list')) ? dir : join(dir, 'LA');
  if (!existsSync(join(root, 'train.list'))) throw new UsageError(`--data: '${dir}' has no train.list (the LA layout)`);
  return laData(root, { labeled: c.labeled, patch: c.size as [number, number, number], valCases: c.valCases });
}

/** Volumes of split `split` (val or test) of an ACDC or LA folder, decoded. */
export async function splitVolumes(dir: string, kind: 'UNet2D' | 'VNet3D', split: 'val' | 'test'): Promise<Volume[]> {
  const acdc = kind === 'UNet2D';
  const root = existsSync(join(dir, acdc ? 'train_slices.list' : 'train.list')) ? dir : join(dir, acdc ? 'ACDC' : 'LA');
  const list = join(root, acdc ? `${split}.list` : 'test.list');
  if (!existsSync(list)) throw new Error(`--split ${split}: '${list}' does not exist`);
  const out: Volume[] = [];
  for (const id of readList(list)) {
    const s = await readH5(acdc ? acdcVolumePath(root, id) : laVolumePath(root, id), { numClasses: acdc ? 4 : 2 });
    out.push({ id, image: s.image, label: s.label! });
  }
  return out;
}
