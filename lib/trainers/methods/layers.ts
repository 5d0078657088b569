/**
 * Small building blocks of the methods' training-only modules (ICL, VerSemi, ACTION): parameters with
 * PyTorch's default initialisation and functional layers over plain tensors, so autograd covers them.
 */
import { rand, zeros } from '../../create.js';
import { conv } from '../../functional.js';
import { tidy } from '../../scope.js';
import type { StateDict } from '../../named.js';
import type { Tensor } from '../../tensor.js';

/** A trainable tensor U(-1/sqrt(fanIn), 1/sqrt(fanIn)): PyTorch's default for Conv / Linear weights and biases. */
export function uniformParam(shape: number[], fanIn: number, device: string): Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return tidy(() => rand(shape, { device: device as 'cpu' }).mul(2 * bound).sub(bound)).setRequiresGrad();
}

/** A trainable tensor filled with `value`. */
export function constantParam(shape: number[], value: number, device: string): Tensor {
  return tidy(() => zeros(shape, { device: device as 'cpu' }).add(value)).setRequiresGrad();
}

/** x @ w^T + b over the last dimension (torch.nn.functional.linear); b optional. */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  return tidy(() => {
    const y = x.matmul(w.transpose(0, 1));
    return b ? y.add(b) : y;
  });
}

/** LayerNorm over the last dimension (eps 1e-5, affine). */
export function layerNorm(x: Tensor, w: Tensor, b: Tensor): Tensor {
  return tidy(() => {
    const centred = x.sub(x.mean(-1, true));
    const variance = centred.square().mean(-1, true);
    return centred.mul(variance.add(1e-5).rsqrt()).mul(w).add(b);
  });
}

/** A Linear / 1x1-conv layer's parameters under `prefix` ('.weight', '.bias') in `params`. */
export function addLinear(params: Record<string, Tensor>, prefix: string, cin: number, cout: number, device: string, kernel: number[] = [], bias = true): void {
  const fanIn = cin * kernel.reduce((a, k) => a * k, 1);
  params[`${prefix}.weight`] = uniformParam([cout, cin, ...kernel], fanIn, device);
  if (bias) params[`${prefix}.bias`] = uniformParam([cout], fanIn, device);
}

/** A convolution with the parameters under `prefix`. */
export function convWith(params: Record<string, Tensor>, prefix: string, x: Tensor, padding = 0): Tensor {
  return conv(x, params[`${prefix}.weight`], { bias: params[`${prefix}.bias`], padding });
}

/** `dicts` merged, each key under its group's prefix (`{ sspa: params }` -> 'sspa.<key>'): checkpoint names. */
export function prefixed(dicts: Record<string, StateDict>): StateDict {
  const out: StateDict = {};
  for (const [prefix, dict] of Object.entries(dicts)) for (const [k, t] of Object.entries(dict)) out[`${prefix}.${k}`] = t;
  return out;
}
