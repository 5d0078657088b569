/** What every method gives the training loop, and the pieces the methods share. */
import type { Batch } from '../../data/loader.js';
import type { ProcessGroup } from '../../dist.js';
import { nets } from '../../nets/index.js';
import type { Network } from '../../nets/network.js';
import type { StateDict } from '../../named.js';
import { dispose } from '../../scope.js';
import type { Tensor } from '../../tensor.js';
import { Adam, SGD, type Optimizer } from '../../train/optimizer.js';
import type { TrainData, Volume } from '../data.js';
import type { TrainConfig } from '../recipes.js';
import type { InferenceSettings, PredictionHook, ValidationResult } from '../validate.js';
import { withLossScaling } from './precision.js';

export interface StepResult {
  loss: number;
  /** Named loss terms and weights, for logs. */
  parts: Record<string, number>;
}

export interface Stage {
  name: 'pretrain' | 'global' | 'local' | 'train';
  iterations: number;
  /** Batches of labeled items only (labeledBatch of them). */
  labeledOnly: boolean;
  /** Best checkpoints of this stage also hold the optimizer state (the next stage takes it over: BCP's bcp.keepOptimizer). */
  bestKeepsOptimizer?: boolean;
  /** Called when the stage starts; `resuming`: weights come from a checkpoint next. */
  begin(resuming: boolean, bestOfPrevious: string | null): Promise<void>;
  step(batch: Batch, it: number): Promise<StepResult>;
}

export interface MethodRuntime {
  /** Every network of the method, by name; `main` is validated, kept as best and used for inference. */
  networks: Record<string, Network>;
  main: string;
  optimizer(): Optimizer;
  stages: Stage[];
  /** Trainable tensors outside the networks (training-only modules), by name: saved for resuming only. */
  tensors?(): StateDict;
  /** Tensors the model needs for inference besides `main` (VerSemi's head): saved in best / final too. */
  inferenceTensors?(): StateDict;
  /**
   * Networks whose class probabilities inference averages with `main`'s (Co-DA's coda.inference = 'mean'),
   * by name: saved in best / final too, and validation averages them.
   */
  inferenceNetworks?(): Record<string, Network>;
  /** Called with the training data before the first stage (VerSemi reads the items' tasks). */
  attach?(data: TrainData): void;
  /** Validation when `main`'s forward alone is not the model (VerSemi); default validateDice(main). */
  validate?(volumes: Volume[], settings: InferenceSettings, signal?: AbortSignal, onPrediction?: PredictionHook): Promise<ValidationResult>;
  /** Data-parallel runs: the group, for statistics that must be those of the whole group's batch. */
  useGroup?(group: ProcessGroup | undefined): void;
  /** Running statistics outside the networks (VerSemi's head BatchNorm): broadcast from rank 0 after each step. */
  buffers?(): StateDict;
  /** JSON-serialisable running state (EMAs) for checkpoints. */
  state(): Record<string, unknown>;
  restore(state: Record<string, unknown>): void;
  dispose(): void;
}

/** A network of the recipe on its device, in channels-last layout when the recipe says so. */
export function makeNetwork(c: TrainConfig, inChannels: number): Network {
  const net = nets.fromOptions(c.network, { ...c.networkOptions, inChannels, outChannels: c.classes }).to(c.device as 'cpu');
  return c.channelsLast ? net.channelsLast(true) : net;
}

/** Consistency ramp-up of the spec (1.3): lambda * exp(-5 (1 - clip(t, 0, L) / L)^2), t = it // 150. */
export function rampup(iteration: number, lambda: number, length: number): number {
  if (length === 0) return lambda;
  const t = Math.min(Math.max(Math.floor(iteration / 150), 0), length);
  const phase = 1 - t / length;
  return lambda * Math.exp(-5 * phase * phase);
}

/** The recipe's optimizer, for every method: SGD (momentum, weight decay, Nesterov) or Adam (betas, weight decay). */
export function makeOptimizer(params: Network | { params: Network | Tensor[] }[], c: TrainConfig): Optimizer {
  if (c.optimizer === 'adam') return withLossScaling(Adam(params as Network, { lr: c.lr, betas: c.betas, weightDecay: c.weightDecay }), c);
  return withLossScaling(SGD(params as Network, { lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay, nesterov: c.nesterov }), c);
}

/** The scalar value of a loss, or an error naming the iteration when it is not finite. */
export function finiteLoss(loss: Tensor, it: number): number {
  const v = Number(loss.item());
  if (!Number.isFinite(v)) throw new Error(`the loss is ${v} at iteration ${it}; the weights were not updated`);
  return v;
}

/**
 * One optimisation step on `loss` (refused, before any update, when it is not finite); its value. With a
 * process group attached, the ranks agree first, so all refuse together instead of leaving the others
 * waiting in the gradient all-reduce.
 */
export async function optimizeStep(optimizer: Optimizer, loss: Tensor, it: number): Promise<number> {
  const group = optimizer.group;
  let value: number;
  if (group) {
    value = Number(loss.item());
    const [bad] = await group.allreduceNumbers([Number.isFinite(value) ? 0 : 1]);
    if (bad > 0)
      throw new Error(`the loss is not finite on ${bad} of ${group.worldSize} rank(s) at iteration ${it} (this rank: ${value}); the weights were not updated`);
  } else {
    value = finiteLoss(loss, it);
  }
  if (optimizer.scaler) {
    // the scaler unscales the gradients before the step, which with a process group would run before the
    // gradient all-reduce has finished
    if (group) throw new Error("precision 'float16' (loss scaling) does not train data-parallel yet: use 'bfloat16', which needs no scaling, or one process");
    await optimizer.scaler.step(optimizer, loss);
    return value;
  }
  optimizer.zeroGrad();
  await loss.backwardAsync();
  await optimizer.stepAsync();
  return value;
}

/** Tensors made during one step, disposed together at its end. */
export class Bag {
  readonly items: Tensor[] = [];
  add<T extends Tensor>(t: T): T {
    this.items.push(t);
    return t;
  }
  free(): void {
    dispose(this.items);
    this.items.length = 0;
  }
}

export function setMode(net: Network, mode: 'train' | 'eval'): void {
  if (mode === 'train') net.train();
  else net.eval();
}
