/**
 * Two-stream batches prepared ahead of the training step. Decoded samples are cached in memory after their
 * first load; when a batch is handed out, the next one is prepared at once (sampling, augmentation,
 * stacking), so it is ready while the native train step runs on the compute thread.
 */
import { stack } from '../functional.js';
import { dispose, keep, tidy } from '../scope.js';
import type { Tensor } from '../tensor.js';
import type { Random } from './augment.js';
import { prng } from './augment.js';
import type { TwoStreamBatchSampler } from './sampler.js';

export interface Item {
  image: Tensor;
  /** absent for unlabeled items; the batch then carries zeros for it */
  label?: Tensor;
}

export interface Batch {
  /** (B, 1, ...spatial) float32 */
  images: Tensor;
  /** (B, ...spatial) int64; the unlabeled part is zeros */
  labels: Tensor;
  indices: number[];
}

export interface LoaderOptions {
  /** Loads item `index` (decoding a file, say); called once per index, the result is cached. */
  load: (index: number) => Promise<Item>;
  sampler: TwoStreamBatchSampler;
  /** Augments one pair, e.g. acdcAugment / laAugment; must give equal shapes for every item. */
  augment: (image: Tensor, label: Tensor, rand: Random) => [Tensor, Tensor];
  seed?: number;
}

export class PrefetchLoader {
  readonly #o: LoaderOptions;
  readonly #rand: Random;
  readonly #cache = new Map<number, Promise<Item>>();
  #pending: Promise<Batch> | null = null;
  /** batches prepared so far (the one handed out plus the one ahead) */
  prepared = 0;
  #closed = false;

  constructor(options: LoaderOptions) {
    this.#o = options;
    this.#rand = prng(options.seed ?? 0);
  }

  #item(index: number): Promise<Item> {
    let p = this.#cache.get(index);
    if (!p) {
      p = this.#o.load(index).then((item) => ({ image: keep(item.image), label: item.label ? keep(item.label) : undefined }));
      p.catch(() => this.#cache.delete(index)); // a failed load is retried (and fails again, naming the file)
      this.#cache.set(index, p);
    }
    return p;
  }

  async #prepare(): Promise<Batch> {
    const indices = this.#o.sampler.next();
    const items = await Promise.all(indices.map((i) => this.#item(i)));
    this.prepared++;
    return tidy(() => {
      const pairs = items.map((it) => this.#o.augment(it.image, it.label ?? it.image.mul(0).to('int64'), this.#rand));
      return {
        images: stack(pairs.map(([im]) => im.to('float32').unsqueeze(0)), 0),
        labels: stack(pairs.map(([, lb]) => lb.to('int64')), 0),
        indices,
      };
    });
  }

  /** The next batch (already being prepared), and the preparation of the one after. */
  async next(): Promise<Batch> {
    if (this.#closed) throw new Error('PrefetchLoader.next(): the loader is closed');
    const current = this.#pending ?? this.#prepare();
    const batch = await current;
    this.#pending = this.#prepare();
    this.#pending.catch(() => undefined); // surfaced by the next call of next()
    return batch;
  }

  /** Frees the cached samples and the batch prepared ahead. */
  async close(): Promise<void> {
    this.#closed = true;
    const ahead = await this.#pending?.catch(() => null);
    if (ahead) dispose([ahead.images, ahead.labels]);
    for (const p of this.#cache.values()) {
      const item = await p.catch(() => null);
      if (item) dispose([item.image, item.label]);
    }
    this.#cache.clear();
  }
}
