/**
 * The two-stream batch sampler of the reference code (SSL4MIS TwoStreamBatchSampler): every batch is
 * `labeledBatch` labeled indices followed by `batchSize - labeledBatch` unlabeled ones. An epoch is one
 * shuffled pass over the labeled set (leftover dropped); the unlabeled stream cycles forever, reshuffled
 * at every pass. Deterministic for a seed (its own generator, not LibTorch's).
 */
import { prng } from '../demo/synthetic.js';
import { checkInt } from '../validate.js';

export class TwoStreamBatchSampler {
  readonly #labeled: number[];
  readonly #unlabeled: number[];
  readonly #labeledBatch: number;
  readonly #unlabeledBatch: number;
  readonly #rand: () => number;
  #labeledOrder: number[] = [];
  #labeledPos = 0;
  #unlabeledOrder: number[] = [];
  #unlabeledPos = 0;
  epoch = 0;

  constructor(labeled: number[], unlabeled: number[], options: { batchSize: number; labeledBatch: number; seed?: number }) {
    const fn = 'TwoStreamBatchSampler';
    const batchSize = checkInt(fn, 'batchSize', options.batchSize, 1);
    this.#labeledBatch = checkInt(fn, 'labeledBatch', options.labeledBatch, 1, batchSize);
    this.#unlabeledBatch = batchSize - this.#labeledBatch;
    if (labeled.length < this.#labeledBatch)
      throw new RangeError(`${fn}(): ${labeled.length} labeled items cannot fill a labeled batch of ${this.#labeledBatch}`);
    if (this.#unlabeledBatch > 0 && unlabeled.length === 0) throw new RangeError(`${fn}(): the unlabeled stream is empty`);
    this.#labeled = [...labeled];
    this.#unlabeled = [...unlabeled];
    this.#rand = prng(options.seed ?? 0);
  }

  /** Batches per epoch of the labeled stream. */
  get batchesPerEpoch(): number {
    return Math.floor(this.#labeled.length / this.#labeledBatch);
  }

  #shuffle(items: number[]): number[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.#rand() * (i + 1));
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }

  /** The next batch: labeled indices then unlabeled ones. */
  next(): number[] {
    if (this.#labeledPos + this.#labeledBatch > this.#labeledOrder.length) {
      this.#labeledOrder = this.#shuffle(this.#labeled);
      this.#labeledPos = 0;
      this.epoch++;
    }
    const batch = this.#labeledOrder.slice(this.#labeledPos, (this.#labeledPos += this.#labeledBatch));
    for (let k = 0; k < this.#unlabeledBatch; k++) {
      if (this.#unlabeledPos >= this.#unlabeledOrder.length) {
        this.#unlabeledOrder = this.#shuffle(this.#unlabeled);
        this.#unlabeledPos = 0;
      }
      batch.push(this.#unlabeledOrder[this.#unlabeledPos++]);
    }
    return batch;
  }
}
