/**
 * Evaluation metrics as papers report them (spec 1.5), with medpy's definitions: Dice, Jaccard, 95HD
 * (95th percentile of the pooled surface distances in both directions), ASD (prediction surface to
 * reference surface) and ASSD (the symmetric mean). Surfaces come from a binary erosion with the
 * connectivity-1 structuring element, distances from an exact Euclidean distance transform, in voxel
 * units unless a voxel `spacing` is given. Metrics take (yPred, y): equal-shaped masks, nonzero = inside.
 *
 * Empty masks, explicitly: with emptyPolicy 'zero' (default, the published evaluation code) an empty
 * prediction scores 0 on every metric; with 'nan' undefined metrics are NaN. Distances need both
 * masks non-empty, so an empty reference with a non-empty prediction gives NaN distances under both.
 * A case's NaN stays NaN in its row (and in its mean over classes); {@link MetricsTable.summary}'s means
 * over cases leave undefined (NaN) values out and count, per class and metric, the cases they are over
 * (`counts`), and count the cases whose prediction of a class is empty (`emptyPredictions`: a class the
 * model misses scores 95HD 0, the best value). {@link emptyMaskPolicy} states the rules in words.
 */
import { callOp, callOpAsync } from './call.js';
import { type NativeValue } from './native.js';
import { tidy } from './scope.js';
import { Tensor, tensorArg, wrap } from './tensor.js';
import { checkInt, checkIntList, checkObject, checkOneOf, rangeError, typeError } from './validate.js';
import { tensor } from './create.js';

export type EmptyPolicy = 'zero' | 'nan';

export interface MetricOptions {
  /** Voxel size per dimension (same order as the mask's dimensions). Default: voxel units. */
  spacing?: number[];
  emptyPolicy?: EmptyPolicy;
}

export interface BinaryMetrics {
  dice: number;
  jaccard: number;
  hd95: number;
  asd: number;
  assd: number;
  predictionEmpty: boolean;
  referenceEmpty: boolean;
  emptyPolicy: EmptyPolicy;
}

function args(fn: string, yPred: unknown, y: unknown, options: unknown, distances = true): [NativeValue[], EmptyPolicy, Tensor | undefined] {
  const o = checkObject(fn, 'options', options);
  const policy = o.emptyPolicy === undefined ? 'zero' : checkOneOf(fn, 'emptyPolicy', o.emptyPolicy, ['zero', 'nan'] as const);
  let spacing: Tensor | undefined;
  if (o.spacing !== undefined) {
    if (!Array.isArray(o.spacing)) throw typeError(fn, 'spacing', 'an array of voxel sizes', o.spacing);
    o.spacing.forEach((s, i) => {
      if (typeof s !== 'number' || !(s > 0) || !Number.isFinite(s)) throw rangeError(fn, `spacing[${i}]`, 'a voxel size > 0', s);
    });
    spacing = tensor(o.spacing as number[], { dtype: 'float64' });
  }
  return [[tensorArg(fn, 'yPred', yPred), tensorArg(fn, 'y', y), spacing?.handle(), policy, distances], policy, spacing];
}

function unpack(values: Float64Array, emptyPolicy: EmptyPolicy): BinaryMetrics {
  const [dice, jaccard, hd95, asd, assd, pe, re] = values;
  return { dice, jaccard, hd95, asd, assd, predictionEmpty: pe === 1, referenceEmpty: re === 1, emptyPolicy };
}

/** All five metrics of one pair of masks (`distances: false` skips 95HD, ASD and ASSD, which are then NaN). */
export function binaryMetrics(yPred: Tensor, y: Tensor, options?: MetricOptions, distances = true): BinaryMetrics {
  const [a, policy, spacing] = args('binaryMetrics', yPred, y, options, distances);
  try {
    return tidy(() => unpack(wrap(callOp('binaryMetrics', a)).toArray() as Float64Array, policy));
  } finally {
    spacing?.dispose();
  }
}

/** binaryMetrics off the JS thread (large 3D volumes). */
export async function binaryMetricsAsync(yPred: Tensor, y: Tensor, options?: MetricOptions): Promise<BinaryMetrics> {
  const [a, policy, spacing] = args('binaryMetricsAsync', yPred, y, options);
  try {
    const out = wrap(await callOpAsync('binaryMetrics', a));
    try {
      return unpack(out.toArray() as Float64Array, policy);
    } finally {
      out.dispose();
    }
  } finally {
    spacing?.dispose();
  }
}

export interface PerClassOptions extends MetricOptions {
  /** The classes to score (default: 1 .. max label of either map). */
  classes?: number[];
}

export interface PerClassMetrics {
  classes: Record<number, BinaryMetrics>;
  /** Mean over the scored classes of each metric. */
  mean: { dice: number; jaccard: number; hd95: number; asd: number; assd: number };
}

const NAMES = ['dice', 'jaccard', 'hd95', 'asd', 'assd'] as const;

function meanOf(results: BinaryMetrics[]) {
  const m = { dice: 0, jaccard: 0, hd95: 0, asd: 0, assd: 0 };
  for (const k of NAMES) m[k] = results.reduce((s, r) => s + r[k], 0) / results.length;
  return m;
}

/** Metrics of each class of two integer label maps (the ACDC protocol scores classes 1..3). */
export async function perClassMetrics(yPred: Tensor, y: Tensor, options?: PerClassOptions): Promise<PerClassMetrics> {
  const fn = 'perClassMetrics';
  const o = checkObject(fn, 'options', options);
  tensorArg(fn, 'yPred', yPred);
  tensorArg(fn, 'y', y);
  const classes =
    o.classes === undefined
      ? Array.from({ length: Math.max(1, Math.max(Number(yPred.max().item()), Number(y.max().item()))) }, (_, i) => i + 1)
      : checkIntList(fn, 'classes', o.classes, 0);
  const out: Record<number, BinaryMetrics> = {};
  for (const c of classes) {
    const [p, r] = tidy(() => [yPred.eq(c), y.eq(c)]);
    try {
      out[c] = await binaryMetricsAsync(p, r, o as MetricOptions); // reads spacing and emptyPolicy only
    } finally {
      p.dispose();
      r.dispose();
    }
  }
  return { classes: out, mean: meanOf(Object.values(out)) };
}

type MetricName = (typeof NAMES)[number];
type MetricValues = Record<MetricName, number>;

/** The empty-mask rules of {@link binaryMetrics} under `policy`, in words (what an evaluation states). */
export function emptyMaskPolicy(policy: EmptyPolicy = 'zero'): { emptyPolicy: EmptyPolicy; emptyPrediction: string; emptyReference: string; bothEmpty: string; means: string } {
  const undefinedDistances = 'hd95 / asd / assd undefined (NaN in the case and left out of the means)';
  const means = 'over the cases where the metric is defined (undefined values are left out); counts gives how many';
  return policy === 'zero'
    ? {
        emptyPolicy: policy,
        emptyPrediction: 'every metric 0 (hd95 and asd too: their best value); emptyPredictions counts these cases',
        emptyReference: `with a non-empty prediction: dice and jaccard 0; ${undefinedDistances}`,
        bothEmpty: "every metric 0 (the empty-prediction rule; medpy's dc gives 0 too)",
        means,
      }
    : {
        emptyPolicy: policy,
        emptyPrediction: `with a non-empty reference: dice and jaccard 0; ${undefinedDistances}`,
        emptyReference: `with a non-empty prediction: dice and jaccard 0; ${undefinedDistances}`,
        bothEmpty: 'every metric undefined (NaN in the case and left out of the means)',
        means,
      };
}

/** {@link emptyMaskPolicy} as one line (for the printed table and Markdown output). */
export function emptyMaskPolicyLine(policy: EmptyPolicy = 'zero'): string {
  const p = emptyMaskPolicy(policy);
  return `empty masks: empty prediction -> ${p.emptyPrediction}; empty reference -> ${p.emptyReference}; both empty -> ${p.bothEmpty}; means ${p.means}`;
}

/** The mean of the defined (non-NaN) values and how many there are (NaN, 0 when there are none). */
function definedMean(xs: number[]): [number, number] {
  const ok = xs.filter((x) => !Number.isNaN(x));
  return [ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN, ok.length];
}

/** What {@link MetricsTable.summary} returns (and `semiseg evaluate` writes as JSON). */
export interface MetricsSummary {
  /** Per class: the mean over cases of each metric, NaN values left out. */
  classes: Record<number, MetricValues>;
  /**
   * The mean over classes of the class means, as the papers' tables (equal to the mean over cases of the
   * per-case means when every value is defined; where one is not, the case's other classes still count).
   */
  mean: MetricValues;
  cases: number;
  /**
   * How many cases each class mean is over (fewer than `cases` where some were undefined); for the overall
   * mean, the fewest cases behind any of its class means.
   */
  counts: { classes: Record<number, MetricValues>; mean: MetricValues };
  /** Per class: the cases whose prediction of the class is empty (scored 0 on every metric by the 'zero' policy). */
  emptyPredictions: Record<number, number>;
  /** The empty-mask rules the values follow ({@link emptyMaskPolicy}). */
  policy: ReturnType<typeof emptyMaskPolicy>;
}

/** Per-case results aggregated as the papers' tables: per-class and overall means over cases. */
export class MetricsTable {
  readonly rows: { caseId: string; result: PerClassMetrics }[] = [];

  add(caseId: string, result: PerClassMetrics): this {
    if (typeof caseId !== 'string') throw typeError('MetricsTable.add', 'caseId', 'a string', caseId);
    this.rows.push({ caseId, result });
    return this;
  }

  /**
   * Mean over cases of each class's metrics, and the mean of those class means. A case's undefined (NaN)
   * value is left out of a mean instead of making it NaN; `counts` says how many cases each mean is over.
   */
  summary(): MetricsSummary {
    const classes: Record<number, MetricValues> = {};
    const counts: MetricsSummary['counts'] = { classes: {}, mean: { dice: 0, jaccard: 0, hd95: 0, asd: 0, assd: 0 } };
    const emptyPredictions: Record<number, number> = {};
    const ids = [...new Set(this.rows.flatMap((r) => Object.keys(r.result.classes).map(Number)))];
    for (const c of ids) {
      const results = this.rows.map((r) => r.result.classes[c]).filter(Boolean);
      classes[c] = { dice: 0, jaccard: 0, hd95: 0, asd: 0, assd: 0 };
      counts.classes[c] = { dice: 0, jaccard: 0, hd95: 0, asd: 0, assd: 0 };
      for (const k of NAMES) [classes[c][k], counts.classes[c][k]] = definedMean(results.map((r) => r[k]));
      emptyPredictions[c] = results.filter((r) => r.predictionEmpty).length;
    }
    const mean = { dice: 0, jaccard: 0, hd95: 0, asd: 0, assd: 0 };
    for (const k of NAMES) {
      mean[k] = definedMean(ids.map((c) => classes[c][k]))[0];
      counts.mean[k] = ids.length ? Math.min(...ids.map((c) => counts.classes[c][k])) : 0;
    }
    return { classes, mean, cases: this.rows.length, counts, emptyPredictions, policy: emptyMaskPolicy(this.policy()) };
  }

  /** The empty-mask policy the rows were scored with ('zero' when there are none). */
  policy(): EmptyPolicy {
    return this.rows.flatMap((r) => Object.values(r.result.classes)).find(Boolean)?.emptyPolicy ?? 'zero';
  }

  /** One line per case and class (a plain CSV: the empty-mask policy is in summary().policy). */
  toCSV(): string {
    const header = ['case', 'class', ...NAMES];
    const lines = this.rows.flatMap((r) =>
      Object.entries(r.result.classes).map(([c, m]) => [r.caseId, c, ...NAMES.map((k) => m[k])].join(',')),
    );
    return [header.join(','), ...lines].join('\n') + '\n';
  }
}

/**
 * Keeps, for each class in `classes`, its largest connected component with full connectivity (8 in 2D,
 * 26 in 3D); the rest of that class becomes background. The last `spatialDims` dimensions are spatial,
 * leading dimensions a batch (BCP applies it per image to pseudo-labels).
 */
export function largestConnectedComponent(labels: Tensor, options: { classes: number[]; spatialDims?: number }): Tensor {
  const fn = 'largestConnectedComponent';
  const o = checkObject(fn, 'options', options);
  const h = tensorArg(fn, 'labels', labels);
  const spatialDims = o.spatialDims === undefined ? labels.rank : checkInt(fn, 'spatialDims', o.spatialDims, 1, labels.rank);
  return wrap(callOp(fn, [h, spatialDims, checkIntList(fn, 'classes', o.classes, 1)]));
}

export const metrics = {
  binary: binaryMetrics,
  binaryAsync: binaryMetricsAsync,
  perClass: perClassMetrics,
  dice: (yPred: Tensor, y: Tensor, options?: MetricOptions) => binaryMetrics(yPred, y, options, false).dice,
  jaccard: (yPred: Tensor, y: Tensor, options?: MetricOptions) => binaryMetrics(yPred, y, options, false).jaccard,
  hd95: (yPred: Tensor, y: Tensor, options?: MetricOptions) => binaryMetrics(yPred, y, options).hd95,
  asd: (yPred: Tensor, y: Tensor, options?: MetricOptions) => binaryMetrics(yPred, y, options).asd,
  assd: (yPred: Tensor, y: Tensor, options?: MetricOptions) => binaryMetrics(yPred, y, options).assd,
};
