/**
 * SGD and Adam (torch.optim semantics, step for step) over a network's parameters or tensors, with
 * parameter groups. zeroGrad() sets gradients to none, as torch.optim does by default.
 */
import { namedFromNative, namedToNative, type StateDict } from '../named.js';
import { native, type NativeOptimizerHandle, type NativeTensorHandle } from '../native.js';
import { Network } from '../nets/network.js';
import { Tensor } from '../tensor.js';
import type { ProcessGroup } from '../dist.js';
import type { GradScaler } from './grad-scaler.js';
import { checkBool, checkFinite, checkInt, checkObject, rangeError, typeError } from '../validate.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export type Params = Network | Tensor[];
/** A parameter group: its params and options overriding the optimizer's. */
export type ParamGroup<O> = { params: Params } & Partial<O>;

/** The parameter handles; a Network's parameter wrappers go into `owned`, to dispose once native holds them. */
function handlesOf(fn: string, params: unknown, name: string, owned: Tensor[]): NativeTensorHandle[] {
  if (params instanceof Network) {
    const ps = params.parameters();
    owned.push(...ps);
    return ps.map((p) => p.handle(fn, name));
  }
  if (!Array.isArray(params)) throw typeError(fn, name, 'a Network or an array of Tensors', params);
  return params.map((p, i) => {
    if (!(p instanceof Tensor)) throw typeError(fn, `${name}[${i}]`, 'a Tensor', p);
    return p.handle(fn, `${name}[${i}]`);
  });
}

function nonNegative(fn: string, name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const x = checkFinite(fn, name, v);
  if (x < 0) throw rangeError(fn, name, 'a number >= 0', x);
  return x;
}

function sgdOptions(fn: string, o: Record<string, unknown>, base?: Record<string, number | boolean>) {
  const lr = o.lr === undefined && base ? (base.lr as number) : nonNegative(fn, 'lr', o.lr, NaN);
  if (Number.isNaN(lr)) throw typeError(fn, 'lr', 'a learning rate >= 0', o.lr);
  const momentum = nonNegative(fn, 'momentum', o.momentum, (base?.momentum as number) ?? 0);
  const dampening = nonNegative(fn, 'dampening', o.dampening, (base?.dampening as number) ?? 0);
  const nesterov = o.nesterov === undefined ? ((base?.nesterov as boolean) ?? false) : checkBool(fn, 'nesterov', o.nesterov);
  if (nesterov && (momentum <= 0 || dampening !== 0)) throw rangeError(fn, 'nesterov', 'used with momentum > 0 and dampening 0', nesterov);
  return { lr, momentum, dampening, nesterov, weightDecay: nonNegative(fn, 'weightDecay', o.weightDecay, (base?.weightDecay as number) ?? 0) };
}

function adamOptions(fn: string, o: Record<string, unknown>, base?: Record<string, number | boolean>) {
  let [beta1, beta2] = [(base?.beta1 as number) ?? 0.9, (base?.beta2 as number) ?? 0.999];
  if (o.betas !== undefined) {
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw typeError(fn, 'betas', 'a pair [beta1, beta2]', o.betas);
    [beta1, beta2] = o.betas.map((b, i) => {
      const x = checkFinite(fn, `betas[${i}]`, b);
      if (x < 0 || x >= 1) throw rangeError(fn, `betas[${i}]`, 'a number in [0, 1)', x);
      return x;
    });
  }
  return {
    lr: nonNegative(fn, 'lr', o.lr, (base?.lr as number) ?? 1e-3),
    beta1,
    beta2,
    eps: nonNegative(fn, 'eps', o.eps, (base?.eps as number) ?? 1e-8),
    weightDecay: nonNegative(fn, 'weightDecay', o.weightDecay, (base?.weightDecay as number) ?? 0),
  };
}

export class Optimizer {
  /** @internal */
  readonly native: NativeOptimizerHandle;
  /** The process group whose gradient all-reduce is attached (ProcessGroup.attach), if any. */
  group?: ProcessGroup;
  /** Loss scaling for float16 training (the trainers' optimizeStep uses it when set). */
  scaler?: GradScaler;
  readonly kind: 'sgd' | 'adam';

  private constructor(kind: 'sgd' | 'adam', params: unknown, options: unknown) {
    const fn = kind === 'sgd' ? 'SGD' : 'Adam';
    const o = checkObject(fn, 'options', options);
    const parse = kind === 'sgd' ? sgdOptions : adamOptions;
    const base = parse(fn, o);
    const owned: Tensor[] = [];
    try {
      const groups = (Array.isArray(params) && params.length > 0 && !(params[0] instanceof Tensor) ? params : [{ params }]).map(
        (g: unknown, i: number) => {
          const go = checkObject(fn, `groups[${i}]`, g);
          return { params: handlesOf(fn, go.params, `groups[${i}].params`, owned), options: parse(fn, go, base) };
        },
      );
      this.kind = kind;
      this.native = native.createOptimizer(kind, groups);
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  /** SGD(params, { lr, momentum, dampening, weightDecay, nesterov }); params: a Network, tensors or groups. */
  static sgd(params: Params | ParamGroup<SGDOptions>[], options: SGDOptions): Optimizer {
    return new Optimizer('sgd', params, options);
  }
  /** Adam(params, { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0 }). */
  static adam(params: Params | ParamGroup<AdamOptions>[], options?: AdamOptions): Optimizer {
    return new Optimizer('adam', params, options ?? {});
  }

  /**
   * Sets the gradients to none. zeroGrad, step and stepAsync throw while a pending native call of this
   * thread touches these parameters or their gradients (a forward of their network, a backward through
   * it, a read of a weight): await it first. Calls on other tensors do not count.
   */
  zeroGrad(): void {
    this.native.zeroGrad();
  }
  step(): void {
    this.native.step();
  }
  /**
   * The step on the native compute threads. With a process group attached (ProcessGroup.attach) the step
   * first waits for the gradient all-reduce; this keeps that wait off the JS thread.
   */
  stepAsync(): Promise<void> {
    return this.native.stepAsync();
  }
  get groupCount(): number {
    return this.native.groupCount();
  }
  lr(group = 0): number {
    return this.native.lr(checkInt('lr', 'group', group, 0, this.groupCount - 1));
  }
  /** Sets the learning rate of every group, or of one. */
  setLr(lr: number, group?: number): void {
    const x = checkFinite('setLr', 'lr', lr);
    if (x < 0) throw rangeError('setLr', 'lr', 'a number >= 0', x);
    this.native.setLr(x, group === undefined ? undefined : checkInt('setLr', 'group', group, 0, this.groupCount - 1));
  }
  /** Buffers by name ("<group>.<param>.momentum_buffer", ".exp_avg", ".exp_avg_sq", ".step"). */
  stateDict(): StateDict {
    return namedFromNative(this.native.state());
  }
  loadStateDict(state: StateDict): void {
    const [names, handles] = namedToNative('Optimizer.loadStateDict', 'state', state);
    this.native.loadState(names, handles);
  }
}

export const SGD = Optimizer.sgd;
export const Adam = Optimizer.adam;
