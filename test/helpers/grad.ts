// Gradient helpers for op tests: analytic gradients through backward(), central finite differences
// (float64 gradcheck), and the largest absolute difference of two tensors.
import { tensor, type Tensor } from '../../lib/index.js';

export function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.data();
  const y = b.data();
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(Number(x[i]) - Number(y[i])));
  return m;
}

/** Gradients of the scalar f(...inputs) with respect to each input (inputs get requiresGrad). */
export function gradients(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): Tensor[] {
  const leaves = inputs.map((x) => x.detach().setRequiresGrad());
  const y = f(...leaves);
  y.backward();
  const out = leaves.map((x) => {
    const g = x.grad;
    if (!g) throw new Error('no gradient');
    return g;
  });
  y.dispose();
  return out;
}

/** Central differences of the scalar f at x (float64) with step h, as a tensor shaped like x. */
export function numericGradient(f: (x: Tensor) => Tensor, x: Tensor, h = 1e-6): Tensor {
  const base = Float64Array.from(x.data() as Float64Array);
  const grad = new Float64Array(base.length);
  const at = (v: Float64Array) => {
    const t = tensor(v, { shape: x.shape, dtype: 'float64' });
    const y = f(t);
    const r = Number(y.item());
    y.dispose();
    t.dispose();
    return r;
  };
  for (let i = 0; i < base.length; i++) {
    const v = base[i];
    base[i] = v + h;
    const up = at(base);
    base[i] = v - h;
    const down = at(base);
    base[i] = v;
    grad[i] = (up - down) / (2 * h);
  }
  return tensor(grad, { shape: x.shape, dtype: 'float64' });
}

/** The value of a one-element tensor as a number. */
export function num(t: Tensor): number {
  return Number(t.item());
}
