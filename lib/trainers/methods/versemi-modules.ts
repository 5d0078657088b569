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
 * heads do. The task-independent part (both BatchNorms, the pooling, the pre-head conv) runs once per
 * forward of the backbone (encode); only the task code varies between the heads asked of it (decode).
 * Ordinary tensor ops: autograd covers everything.
 */
import { tensor, zeros } from '../../create.js';
import { cat, conv } from '../../functional.js';
import type { StateDict } from '../../named.js';
import { noGrad } from '../../runtime.js';
import { dispose, tidy } from '../../scope.js';
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

/** The head's task-independent inputs of a batch ({@link DynamicHead.encode}). */
export interface HeadInputs {
  /** BN -> ReLU -> GAP of the bottleneck: (B, 256, 1, 1, 1). */
  pooled: Tensor;
  /** BN -> ReLU -> 1x1 conv of the last decoder feature: (B, 8, ...spatial). */
  pre: Tensor;
}

/** Rows [from, from + n) of encoded inputs (views). */
export function headRows(inputs: HeadInputs, from: number, n: number): HeadInputs {
  return { pooled: inputs.pooled.narrow(0, from, n), pre: inputs.pre.narrow(0, from, n) };
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

  private checkTasks(taskIds: number[], B: number): void {
    if (taskIds.length !== B) throw new Error(`DynamicHead: ${taskIds.length} task ids for a batch of ${B}`);
    taskIds.forEach((t) => {
      if (!Number.isInteger(t) || t < 0 || t > this.tasks) throw new Error(`DynamicHead: task id ${t} is outside [0, ${this.tasks}] (${this.tasks} = the synthetic task)`);
    });
  }

  /**
   * The task-independent part of the head, once per forward of the backbone: the pooled controller input
   * BN -> ReLU -> GAP of the bottleneck (B, 256, 1, 1, 1) and the pre-head BN -> ReLU -> 1x1 conv of the
   * last decoder feature (B, 8, ...spatial). In training mode each BatchNorm's running statistics advance
   * once here, whatever the number of tasks asked of {@link DynamicHead.decode} afterwards (as in the
   * reference model, where the controller runs once per forward).
   */
  encode(bottleneck: Tensor, feature: Tensor, training: boolean): HeadInputs {
    if (bottleneck.shape[0] !== feature.shape[0]) throw new Error(`DynamicHead: a bottleneck of ${bottleneck.shape[0]} samples and a feature of ${feature.shape[0]}`);
    const pooled = tidy(() => this.bnBottleneck.forward(bottleneck, training).relu().mean([2, 3, 4], true));
    const pre = tidy(() => conv(this.bnFeature.forward(feature, training).relu(), this.params['pre.conv.weight'], { bias: this.params['pre.conv.bias'] }));
    return { pooled, pre };
  }

  /** Background / foreground logits (B, 2, ...spatial) of encoded samples, each under its task id. */
  decode(inputs: HeadInputs, taskIds: number[]): Tensor {
    return tidy(() => this.dynamic(inputs.pre, this.taskParameters(inputs.pooled, taskIds)));
  }

  /** The per-sample dynamic parameters (B, 162) from the bottleneck (B, 256, d, h, w) and task ids. */
  controller(bottleneck: Tensor, taskIds: number[], training: boolean): Tensor {
    this.checkTasks(taskIds, bottleneck.shape[0]);
    return tidy(() => this.taskParameters(this.bnBottleneck.forward(bottleneck, training).relu().mean([2, 3, 4], true), taskIds));
  }

  // (B, 162) from the pooled controller input (B, 256, 1, 1, 1) and a one-hot code of each task id
  private taskParameters(pooled: Tensor, taskIds: number[]): Tensor {
    const B = pooled.shape[0];
    this.checkTasks(taskIds, B);
    const T = this.tasks + 1;
    return tidy(() => {
      const code = tensor(
        taskIds.flatMap((t) => Array.from({ length: T }, (_, j) => (j === t ? 1 : 0))),
        { shape: [B, T, 1, 1, 1], dtype: pooled.dtype as 'float32', device: pooled.device as 'cpu' },
      );
      const params = conv(cat([pooled, code], 1), this.params['controller.conv.weight'], { bias: this.params['controller.conv.bias'] });
      return params.reshape([B, DYNAMIC_PARAMS]);
    });
  }

  // the three dynamic 1x1 layers on the pre-head output (B, 8, ...spatial), one grouped conv each
  private dynamic(pre: Tensor, params: Tensor): Tensor {
    const [B, , ...sp] = pre.shape;
    return tidy(() => {
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

  /** Logits of each sample for its task: encode, then decode (one task list per forward of the backbone). */
  forward(bottleneck: Tensor, feature: Tensor, taskIds: number[], training: boolean): Tensor {
    this.checkTasks(taskIds, bottleneck.shape[0]);
    const inputs = this.encode(bottleneck, feature, training);
    try {
      return this.decode(inputs, taskIds);
    } finally {
      dispose([inputs.pooled, inputs.pre]);
    }
  }

  dispose(): void {
    for (const t of [...Object.values(this.params), ...Object.values(this.buffers)]) t.dispose();
  }
}
