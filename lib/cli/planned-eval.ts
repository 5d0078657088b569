/**
 * `semiseg evaluate` on a Decathlon / nnU-Net folder: each case read in its own geometry, segmented
 * through the checkpoint's preprocessing (the Segmenter's path: what `predict` and a service do), and
 * scored against its label on the original grid with distances in millimetres (the voxel spacing).
 * `--split test`: imagesTs + labelsTs; `--split val`: the validation cases the run held out (plan.json).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { readCase, readImageDataset, type ImageCase } from '../data/folders.js';
import type { CheckpointInfo } from '../io/checkpoint.js';
import { MetricsTable, perClassMetrics } from '../metrics.js';
import { caseFileName, caseOverlayPng, writeAtomic } from '../report/overlays.js';
import { dispose, tidy } from '../scope.js';
import { Segmenter } from '../segmenter.js';
import type { Tensor } from '../tensor.js';
import type { Network } from '../nets/network.js';
import type { InferenceSettings } from '../trainers/validate.js';
import { UsageError } from './options.js';

export interface PlannedEvaluation {
  table: MetricsTable;
  info: CheckpointInfo;
  /** the class names of the checkpoint's plan (index = label value) */
  classes: string[];
}

/** The cases of `split` of a planned folder for a checkpoint trained on it. */
export function splitCases(dir: string, split: 'val' | 'test', validation: string[] | undefined): ImageCase[] {
  const ds = readImageDataset(dir);
  if (split === 'test') {
    if (ds.test.length === 0) throw new UsageError(`--split test: '${dir}' has no imagesTs/ cases with labels in labelsTs/`);
    return ds.test;
  }
  if (!validation || validation.length === 0) throw new UsageError('--split val: the checkpoint names no validation cases (its plan has no split); use --split test');
  const byId = new Map(ds.labeled.map((c) => [c.id, c]));
  return validation.map((id) => {
    const c = byId.get(id);
    if (!c) throw new UsageError(`--split val: validation case '${id}' of the checkpoint is not a labeled case of '${dir}'`);
    return c;
  });
}

/** Scores a checkpoint on the cases of `split` of a planned folder (metrics in mm). */
export async function evaluatePlanned(o: {
  checkpoint: string;
  data: string;
  split: 'val' | 'test';
  overlays?: string;
  onVolume?: (id: string, done: number, total: number) => void;
  prepare?: (net: Network, settings: InferenceSettings) => Record<string, unknown>;
}): Promise<PlannedEvaluation & { extra: Record<string, unknown> }> {
  const seg = await Segmenter.load(o.checkpoint);
  try {
    const plan = seg.preprocessing;
    if (!plan || plan.classes.length === 0) throw new UsageError(`--data: '${o.data}' is a NIfTI dataset folder, but '${o.checkpoint}' was not trained on a planned dataset (it has no plan)`);
    const extra = o.prepare?.(seg.network, seg.settings) ?? {};
    const ds = readImageDataset(o.data);
    if (ds.classes.length !== plan.classes.length) throw new UsageError(`--data: '${o.data}' has ${ds.classes.length} classes; the checkpoint was trained on ${plan.classes.length}`);
    const cases = splitCases(o.data, o.split, plan.split?.validation);
    if (o.overlays) mkdirSync(o.overlays, { recursive: true });
    const table = new MetricsTable();
    const classes = Array.from({ length: plan.classes.length - 1 }, (_, i) => i + 1);
    for (const [i, c] of cases.entries()) {
      const cs = await readCase(ds, c, true);
      let pred: Tensor | undefined;
      try {
        const image = tidy(() => (cs.data.shape[0] === 1 ? cs.data.squeeze(0) : cs.data));
        try {
          pred = await seg.segmentImage({ data: image, spacing: cs.spacing, affine: cs.affine });
          table.add(c.id, await perClassMetrics(pred, cs.label!, { classes, spacing: cs.spacing }));
          if (o.overlays) writeAtomic(join(o.overlays, caseFileName(c.id)), caseOverlayPng(image, cs.label!, pred, false));
        } finally {
          image.dispose();
        }
      } finally {
        dispose([cs.data, cs.label, pred]);
      }
      o.onVolume?.(c.id, i + 1, cases.length);
    }
    return { table, info: seg.info, classes: plan.classes, extra };
  } finally {
    seg.dispose();
  }
}
