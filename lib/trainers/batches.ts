/**
 * Training batches by iteration: the two-stream sampler's indices, each item augmented with a generator
 * seeded by (seed, stage, iteration, position in the batch), so batch k is the same whether or not the
 * run was resumed before it. Data-parallel ranks draw the group's batch (worldSize times the batch of one
 * rank, in both streams) from the same sampler and each keeps its own slice of each stream: disjoint
 * shards whose union, with the same augmentation, is the batch one process with the group's batch size
 * would see. Decoded items are cached after their first load.
 */
import { stack } from '../functional.js';
import type { Random } from '../data/augment.js';
import type { Batch, Item } from '../data/loader.js';
import { TwoStreamBatchSampler } from '../data/sampler.js';
import { prng, seedOf } from '../demo/synthetic.js';
import { dispose, keep, tidy } from '../scope.js';
import type { TrainData } from './data.js';
import type { Device } from '../dtype.js';

export class BatchSource {
  readonly #data: TrainData;
  readonly #sampler: TwoStreamBatchSampler;
  readonly #seed: number;
  readonly #stage: number;
  readonly #device: string;
  readonly #cache: Map<number, Promise<Item>>;
  /** This rank's positions in the group's batch. */
  readonly #positions: number[];

  constructor(
    data: TrainData,
    o: { batchSize: number; labeledBatch: number; labeledOnly: boolean; seed: number; stage: number; device: string; rank?: number; worldSize?: number },
    cache: Map<number, Promise<Item>>,
  ) {
    this.#data = data;
    this.#seed = o.seed;
    this.#stage = o.stage;
    this.#device = o.device;
    this.#cache = cache;
    const W = o.worldSize ?? 1;
    const r = o.rank ?? 0;
    const L = o.labeledBatch;
    const U = o.labeledOnly ? 0 : o.batchSize - L;
    if (W > 1 && data.labeled < W * L)
      throw new RangeError(`train: ${W} ranks x labeledBatch ${L} need ${W * L} labeled items per batch, the data has ${data.labeled}`);
    // fewer unlabeled items than a batch's unlabeled half put the same item twice into each batch; the
    // published samplers refuse it (TwoStreamBatchSampler asserts len(secondary) >= secondary_batch_size)
    if (U > 0 && data.unlabeled > 0 && data.unlabeled < W * U)
      throw new RangeError(
        `train: a batch takes ${W * U} unlabeled items (batchSize - labeledBatch${W > 1 ? `, times ${W} ranks` : ''}), the data has ${data.unlabeled}: add unlabeled images, or lower the batch size (--batch-size)`,
      );
    const labeled = Array.from({ length: data.labeled }, (_, i) => i);
    const unlabeled = Array.from({ length: data.unlabeled }, (_, i) => data.labeled + i);
    this.#sampler = new TwoStreamBatchSampler(labeled, o.labeledOnly ? [] : unlabeled, {
      batchSize: W * (L + U),
      labeledBatch: W * L,
      seed: o.seed + 7919 * o.stage,
    });
    this.#positions = [...Array.from({ length: L }, (_, k) => r * L + k), ...Array.from({ length: U }, (_, k) => W * L + r * U + k)];
  }

  /** Advances past `n` batches without building them (resuming at iteration n). */
  skip(n: number): void {
    for (let i = 0; i < n; i++) this.#sampler.next();
  }

  #item(index: number): Promise<Item> {
    let p = this.#cache.get(index);
    if (!p) {
      p = this.#data.load(index).then((it) => ({ image: keep(it.image), label: it.label ? keep(it.label) : undefined }));
      p.catch(() => this.#cache.delete(index));
      this.#cache.set(index, p);
    }
    return p;
  }

  /** The batch of iteration `it` (1-based): (B, 1, ...spatial) float32 images, (B, ...spatial) int64 labels. */
  async batch(it: number): Promise<Batch> {
    const group = this.#sampler.next();
    const indices = this.#positions.map((p) => group[p]);
    const items = await Promise.all(indices.map((i) => this.#item(i)));
    return tidy(() => {
      const pairs = items.map((x, k) => {
        const rand: Random = prng(seedOf(this.#seed, this.#stage, it, this.#positions[k]));
        // a labeled item without its label would train as all background
        if (!x.label && indices[k] < this.#data.labeled)
          throw new Error(`item ${indices[k]} of '${this.#data.name}' is labeled (below data.labeled = ${this.#data.labeled}) but load() returned no label`);
        return this.#data.augment(x.image, x.label ?? x.image.mul(0).to('int64'), rand);
      });
      const images = stack(pairs.map(([im]) => im.to('float32').unsqueeze(0)), 0);
      const labels = stack(pairs.map(([, lb]) => lb.to('int64')), 0);
      return this.#device === 'cpu' ? { images, labels, indices } : { images: images.to(this.#device as Device), labels: labels.to(this.#device as Device), indices };
    });
  }
}

/** Frees a cache of decoded items. */
export async function freeItems(cache: Map<number, Promise<Item>>): Promise<void> {
  for (const p of cache.values()) {
    const item = await p.catch(() => null);
    if (item) dispose([item.image, item.label]);
  }
  cache.clear();
}
