/**
 * The dataset layouts of the reference codebases (spec 1.4) and their labeled / unlabeled splits.
 * ACDC: <root>/train_slices.list, val.list, test.list; slices <root>/data/slices/<case>.h5, volumes
 * <root>/data/<case>.h5. LA: <root>/train.list, test.list; <root>/2018LA_Seg_Training Set/<ID>/mri_norm2.h5.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { checkInt } from '../validate.js';

export interface SplitLists {
  /** training items in list order (slice names for ACDC, ids for LA) */
  train: string[];
  labeled: string[];
  unlabeled: string[];
  val: string[];
  test: string[];
}

export function readList(path: string): string[] {
  if (!existsSync(path)) throw new Error(`dataset: the list '${path}' does not exist`);
  return readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
}

function optionalList(path: string): string[] {
  return existsSync(path) ? readList(path) : [];
}

/** Patient of an ACDC slice or volume name ("patient003_frame01_slice_1" -> "patient003"). */
export function acdcPatient(name: string): string {
  return name.split('_')[0];
}

/** ACDC: labeled = the slices of the first `patients` patients of train_slices.list (3 -> 68, 7 -> 136). */
export function acdcSplit(root: string, patients: number): SplitLists {
  const train = readList(join(root, 'train_slices.list'));
  const order: string[] = [];
  for (const s of train) if (!order.includes(acdcPatient(s))) order.push(acdcPatient(s));
  checkInt('acdcSplit', 'patients', patients, 1, order.length);
  const chosen = new Set(order.slice(0, patients));
  const labeled = train.filter((s) => chosen.has(acdcPatient(s)));
  return {
    train,
    labeled,
    unlabeled: train.filter((s) => !chosen.has(acdcPatient(s))),
    val: optionalList(join(root, 'val.list')),
    test: optionalList(join(root, 'test.list')),
  };
}

export const acdcSlicePath = (root: string, name: string) => join(root, 'data', 'slices', `${name}.h5`);
export const acdcVolumePath = (root: string, name: string) => join(root, 'data', `${name}.h5`);

/** LA: labeled = the first `labeled` ids of train.list (4 -> 5 %, 8 -> 10 %). */
export function laSplit(root: string, labeled: number): SplitLists {
  const train = readList(join(root, 'train.list'));
  checkInt('laSplit', 'labeled', labeled, 1, train.length);
  return {
    train,
    labeled: train.slice(0, labeled),
    unlabeled: train.slice(labeled),
    val: optionalList(join(root, 'test.list')),
    test: optionalList(join(root, 'test.list')),
  };
}

export const laVolumePath = (root: string, id: string) => join(root, '2018LA_Seg_Training Set', id, 'mri_norm2.h5');
