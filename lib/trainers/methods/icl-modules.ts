/**
 * ICL's training-only attention modules (spec 6): SSPA (supervised semantic proxy adaptor) and USCL
 * (unsupervised semantic consistent learner), one design. At each of three decoder scales (128, 64, 32
 * channels; 8, 4, 2 heads) the features become tokens (1x1 conv, LayerNorm); the class queries attend
 * to them (multi-head cross-attention with query / key / value / output projections and a residual);
 * the pre-softmax attention logits, (C, heads, H, W) per sample, pass through a separable 3x3 conv
 * (depthwise, then pointwise) and a 1x1 conv to one map per class; the next scale's queries are a
 * Conv1d(d -> d / 2, kernel 1) of the updated ones. SSPA holds learnable class queries (C, 128),
 * initialised to zero; USCL takes its queries from SSPA's labeled pass at every scale (so it has no
 * hand-off of its own).
 *
 * Everything here is ordinary tensor ops, so autograd covers it; the parameters are plain tensors that
 * the method hands to its optimizer and to `last.ckpt` (they never enter the saved model).
 */
import { zeros } from '../../create.js';
import { conv } from '../../functional.js';
import type { StateDict } from '../../named.js';
import { tidy } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import { constantParam, layerNorm, linear, uniformParam as uniform } from './layers.js';

export interface IclScale {
  channels: number;
  heads: number;
}

/** The spec's scales: decoder outputs up1, up2, up3 of the 2-D U-Net. */
export const ICL_SCALES: IclScale[] = [
  { channels: 128, heads: 8 },
  { channels: 64, heads: 4 },
  { channels: 32, heads: 2 },
];

export interface AdaptorOutput {
  /** One (B, C, H_s, W_s) map per scale. */
  maps: Tensor[];
  /** The updated queries of each scale, (B, C, d_s); empty for a module without queries of its own (USCL). */
  queries: Tensor[];
}

export class IclAdaptor {
  readonly params: StateDict = {};
  readonly classes: number;
  readonly scales: IclScale[];

  /** `queries`: whether the module owns learnable class queries (SSPA) or is given them (USCL). */
  constructor(classes: number, options: { queries: boolean; device?: string; scales?: IclScale[] }) {
    this.classes = classes;
    this.scales = options.scales ?? ICL_SCALES;
    const dev = options.device ?? 'cpu';
    const p = this.params;
    if (options.queries) p.queries = zeros([classes, this.scales[0].channels], { device: dev as 'cpu' }).setRequiresGrad();
    this.scales.forEach(({ channels: d, heads: h }, i) => {
      if (d % h !== 0) throw new Error(`IclAdaptor: ${d} channels do not split into ${h} heads`);
      p[`s${i}.proj.weight`] = uniform([d, d, 1, 1], d, dev);
      p[`s${i}.proj.bias`] = uniform([d], d, dev);
      p[`s${i}.norm.weight`] = constantParam([d], 1, dev);
      p[`s${i}.norm.bias`] = zeros([d], { device: dev as 'cpu' }).setRequiresGrad();
      // USCL's updated queries feed nothing (no hand-off, no loss), so it has no value / output projections.
      for (const n of options.queries ? ['q', 'k', 'v', 'o'] : ['q', 'k']) {
        p[`s${i}.${n}.weight`] = uniform([d, d], d, dev);
        p[`s${i}.${n}.bias`] = uniform([d], d, dev);
      }
      p[`s${i}.dw.weight`] = uniform([h, 1, 3, 3], 9, dev);
      p[`s${i}.dw.bias`] = uniform([h], 9, dev);
      p[`s${i}.pw.weight`] = uniform([h, h, 1, 1], h, dev);
      p[`s${i}.pw.bias`] = uniform([h], h, dev);
      p[`s${i}.out.weight`] = uniform([1, h, 1, 1], h, dev);
      p[`s${i}.out.bias`] = uniform([1], h, dev);
      if (options.queries && i + 1 < this.scales.length) {
        const next = this.scales[i + 1].channels;
        p[`s${i}.handoff.weight`] = uniform([next, d], d, dev);
        p[`s${i}.handoff.bias`] = uniform([next], d, dev);
      }
    });
  }

  parameters(): Tensor[] {
    return Object.values(this.params);
  }

  /**
   * One scale: features (B, d, H, W) and queries (C, d) or (B, C, d) -> the class maps (B, C, H, W) and
   * the updated queries (B, C, d) (null without value / output projections: USCL).
   */
  scale(i: number, features: Tensor, queries: Tensor): { map: Tensor; queries: Tensor | null } {
    const p = this.params;
    const { channels: d, heads: h } = this.scales[i];
    const [B, channels, H, W] = features.shape;
    if (channels !== d) throw new Error(`IclAdaptor: scale ${i} expects ${d} feature channels, got ${channels}`);
    const C = this.classes;
    const dh = d / h;
    return tidy(() => {
      const proj = conv(features, p[`s${i}.proj.weight`], { bias: p[`s${i}.proj.bias`] });
      const tokens = layerNorm(proj.reshape([B, d, H * W]).permute([0, 2, 1]), p[`s${i}.norm.weight`], p[`s${i}.norm.bias`]);
      const qIn = queries.shape.length === 2 ? queries.unsqueeze(0).expand([B, C, d]) : queries;
      const heads = (x: Tensor, n: number) => x.reshape([B, n, h, dh]).permute([0, 2, 1, 3]); // (B, h, n, dh)
      const q = heads(linear(qIn, p[`s${i}.q.weight`], p[`s${i}.q.bias`]), C);
      const k = heads(linear(tokens, p[`s${i}.k.weight`], p[`s${i}.k.bias`]), H * W);
      const logits = q.matmul(k.transpose(2, 3)).mul(1 / Math.sqrt(dh)); // (B, h, C, N)
      let updated: Tensor | null = null;
      if (p[`s${i}.v.weight`]) {
        const v = heads(linear(tokens, p[`s${i}.v.weight`], p[`s${i}.v.bias`]), H * W);
        const attended = logits.softmax(-1).matmul(v).permute([0, 2, 1, 3]).reshape([B, C, d]);
        updated = qIn.add(linear(attended, p[`s${i}.o.weight`], p[`s${i}.o.bias`]));
      }
      const maps = logits.permute([0, 2, 1, 3]).reshape([B * C, h, H, W]);
      const dw = conv(maps, p[`s${i}.dw.weight`], { bias: p[`s${i}.dw.bias`], padding: 1, groups: h });
      const pw = conv(dw, p[`s${i}.pw.weight`], { bias: p[`s${i}.pw.bias`] });
      const map = conv(pw, p[`s${i}.out.weight`], { bias: p[`s${i}.out.bias`] }).reshape([B, C, H, W]);
      return { map, queries: updated };
    });
  }

  /** The next scale's queries from scale i's updated ones: Conv1d(d -> d / 2, kernel 1) over the C tokens. */
  handoff(i: number, queries: Tensor): Tensor {
    return tidy(() => linear(queries, this.params[`s${i}.handoff.weight`], this.params[`s${i}.handoff.bias`]));
  }

  /**
   * All scales. `queries`: SSPA passes nothing (its own queries start the chain, handed off between
   * scales); USCL passes one (C, d_s) or (B, C, d_s) tensor per scale, used as given.
   */
  forward(features: Tensor[], queries?: Tensor[]): AdaptorOutput {
    if (features.length !== this.scales.length) throw new Error(`IclAdaptor: expected ${this.scales.length} feature maps, got ${features.length}`);
    const maps: Tensor[] = [];
    const updated: Tensor[] = [];
    let q: Tensor | null = null;
    try {
      for (let i = 0; i < this.scales.length; i++) {
        const given = queries?.[i];
        if (queries && !given) throw new Error(`IclAdaptor: no queries for scale ${i}`);
        const input = given ?? (i === 0 ? this.params.queries : (q as Tensor));
        if (!input) throw new Error('IclAdaptor: this module has no queries of its own; pass them');
        const r = this.scale(i, features[i], input);
        maps.push(r.map);
        if (r.queries) updated.push(r.queries);
        if (!given && r.queries && i + 1 < this.scales.length) {
          q?.dispose();
          q = this.handoff(i, r.queries);
        }
      }
    } finally {
      q?.dispose();
    }
    return { maps, queries: updated };
  }

  dispose(): void {
    for (const t of Object.values(this.params)) t.dispose();
  }
}
