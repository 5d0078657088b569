/**
 * VerSemi's task-prompted dynamic head (spec 4), the piece that lets one network serve several label
 * spaces: a controller turns the pooled bottleneck and a one-hot task code (T real tasks plus the
 * synthetic CutMix task) into the weights of a small per-sample head, which segments the last decoder
 * feature into background / foreground for that task.
 * - controller: BatchNorm3d(256) -> ReLU -> global average pool, concatenated with the task code, then
 *   Conv3d 1x1 -> 162 dynamic parameters per sample;
 * - head: BatchNorm3d(16) -> ReLU -> Conv3d 1x1 16 -> 8, then three dynamic 1x1 layers 8 -> 8 -> 8 -> 2
 *   (ReLU between), one set of weights per sample, run as one grouped convolution over the batch.
 * The dynamic parameters are laid out weights first (64, 64, 16) then biases (8, 8, 2), as DoDNet-style
 * heads do. Ordinary tensor ops: autograd covers everything.
 */
import { tensor, zeros } from '../../create.js';
import { cat, conv } from '../../functional.js';
import type { StateDict } from '../../named.js';
import { noGrad } from '../../runtime.js';
import { tidy } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import { uniformParam as uniform } from './layers.js';

/** Weight and bias counts of the three dynamic layers (8 -> 8, 8 -> 8, 8 -> 2). */
export const DYNAMIC_LAYERS = [
  { cin: 8, cout: 8 },
  { cin: 8, cout: 8 },
  { cin: 8, cout: 2 },
];
export const DYNAMIC_PARAMS = DYNAMIC_LAYERS.reduce((n, l) => n + l.cin * l.cout + l.cout, 0);

/**
 * BatchNorm over dim 1 of (N, C, ...) tensors as torch.nn.BatchNorm*d: batch statistics in training
 * (biased variance to normalise; the running statistics take the unbiased one, momentum 0.1), running
 * statistics in evaluation.
 */
export class BatchNorm {
  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor,
    readonly runningMean: Tensor,
    readonly runningVar: Tensor,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {}

  static create(channels: number, device: string): BatchNorm {
    const d = { device: device as 'cpu' };
    return new BatchNorm(
      tidy(() => zeros([channels], d).add(1)).setRequiresGrad(),
      zeros([channels], d).setRequiresGrad(),
      zeros([channels], d),
      tidy(() => zeros([channels], d).add(1)),
    );
  }

  forward(x: Tensor, training: boolean): Tensor {
    const C = x.shape[1];
    const dims = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
    const view = [1, C, ...x.shape.slice(2).map(() => 1)];
    return tidy(() => {
      let mean: Tensor;
      let variance: Tensor;
      if (training) {
        mean = x.mean(dims, true);
        variance = x.sub(mean).square().mean(dims, true);
        const n = x.shape.reduce((a, s) => a * s, 1) / C;
        noGrad(() => {
          const m = this.momentum;
          this.runningMean.copyFrom(this.runningMean.mul(1 - m).add(mean.detach().reshape([C]).mul(m)));
          const unbiased = variance.detach().reshape([C]).mul(n / Math.max(1, n - 1));
          this.runningVar.copyFrom(this.runningVar.mul(1 - m).add(unbiased.mul(m)));
        });
      } else {
        mean = this.runningMean.reshape(view);
        variance = this.runningVar.reshape(view);
      }
      return x.sub(mean).mul(variance.add(this.eps).rsqrt()).mul(this.weight.reshape(view)).add(this.bias.reshape(view));
    });
  }
}

export class DynamicHead {
  readonly params: StateDict = {};
  readonly buffers: StateDict = {};
  readonly tasks: number;
  private readonly bnBottleneck: BatchNorm;
  private readonly bnFeature: BatchNorm;

  /**
   * `tasks`: the real tasks T (the synthetic CutMix task is T). `bottleneck` / `feature`: channels of the
   * backbone's bottleneck (256) and last decoder feature (16).
   */
  constructor(tasks: number, options: { device?: string; bottleneck?: number; feature?: number } = {}) {
    if (!Number.isInteger(tasks) || tasks < 1) throw new Error(`DynamicHead: 'tasks' must be an integer >= 1, got ${tasks}`);
    this.tasks = tasks;
    const dev = options.device ?? 'cpu';
    const cb = options.bottleneck ?? 256;
    const cf = options.feature ?? 16;
    this.bnBottleneck = BatchNorm.create(cb, dev);
    this.bnFeature = BatchNorm.create(cf, dev);
    const p = this.params;
    const bns: [string, BatchNorm][] = [
      ['controller.bn', this.bnBottleneck],
      ['pre.bn', this.bnFeature],
    ];
    for (const [name, bn] of bns) {
      p[`${name}.weight`] = bn.weight;
      p[`${name}.bias`] = bn.bias;
      this.buffers[`${name}.running_mean`] = bn.runningMean;
      this.buffers[`${name}.running_var`] = bn.runningVar;
    }
    const codes = cb + tasks + 1;
    p['controller.conv.weight'] = uniform([DYNAMIC_PARAMS, codes, 1, 1, 1], codes, dev);
    p['controller.conv.bias'] = uniform([DYNAMIC_PARAMS], codes, dev);
    p['pre.conv.weight'] = uniform([8, cf, 1, 1, 1], cf, dev);
    p['pre.conv.bias'] = uniform([8], cf, dev);
  }

  parameters(): Tensor[] {
    return Object.values(this.params);
  }

  /** The per-sample dynamic parameters (B, 162) from the bottleneck (B, 256, d, h, w) and task ids. */
  controller(bottleneck: Tensor, taskIds: number[], training: boolean): Tensor {
    const B = bottleneck.shape[0];
    if (taskIds.length !== B) throw new Error(`DynamicHead: ${taskIds.length} task ids for a batch of ${B}`);
    taskIds.forEach((t) => {
      if (!Number.isInteger(t) || t < 0 || t > this.tasks) throw new Error(`DynamicHead: task id ${t} is outside [0, ${this.tasks}] (${this.tasks} = the synthetic task)`);
    });
    const T = this.tasks + 1;
    return tidy(() => {
      const pooled = this.bnBottleneck.forward(bottleneck, training).relu().mean([2, 3, 4], true); // (B, 256, 1, 1, 1)
      const code = tensor(
        taskIds.flatMap((t) => Array.from({ length: T }, (_, j) => (j === t ? 1 : 0))),
        { shape: [B, T, 1, 1, 1], dtype: bottleneck.dtype as 'float32', device: bottleneck.device as 'cpu' },
      );
      const params = conv(cat([pooled, code], 1), this.params['controller.conv.weight'], { bias: this.params['controller.conv.bias'] });
      return params.reshape([B, DYNAMIC_PARAMS]);
    });
  }

  /** Background / foreground logits (B, 2, D, H, W) of the last decoder feature (B, 16, D, H, W) under `params`. */
  head(feature: Tensor, params: Tensor, training: boolean): Tensor {
    const [B, , ...sp] = feature.shape;
    return tidy(() => {
      const pre = conv(this.bnFeature.forward(feature, training).relu(), this.params['pre.conv.weight'], { bias: this.params['pre.conv.bias'] });
      let x = pre.reshape([1, B * 8, ...sp]);
      const weightCount = DYNAMIC_LAYERS.reduce((n, l) => n + l.cin * l.cout, 0);
      let wAt = 0;
      let bAt = weightCount;
      DYNAMIC_LAYERS.forEach((l, i) => {
        const w = params.narrow(1, wAt, l.cin * l.cout).reshape([B * l.cout, l.cin, 1, 1, 1]);
        const b = params.narrow(1, bAt, l.cout).reshape([B * l.cout]);
        wAt += l.cin * l.cout;
        bAt += l.cout;
        x = conv(x, w, { bias: b, groups: B });
        if (i + 1 < DYNAMIC_LAYERS.length) x = x.relu();
      });
      return x.reshape([B, 2, ...sp]);
    });
  }

  /** Logits of each sample for its task: controller, then head. */
  forward(bottleneck: Tensor, feature: Tensor, taskIds: number[], training: boolean): Tensor {
    return tidy(() => this.head(feature, this.controller(bottleneck, taskIds, training), training));
  }

  dispose(): void {
    for (const t of [...Object.values(this.params), ...Object.values(this.buffers)]) t.dispose();
  }
}
