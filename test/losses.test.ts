// Losses against the reference (benchmarks/reference/losses.py, per-class loops as the published code):
// values and gradients with respect to the input, on random 2D and 3D inputs, with and without weights.
import test from 'ava';

import {
  ceDiceLoss,
  crossEntropy,
  diceLoss,
  dispose,
  manualSeed,
  rand,
  randint,
  randn,
  softmaxMse,
  tidy,
  type DiceLossOptions,
  type Tensor,
} from '../lib/index.js';
import { closeness, decodeValues, referencePython, runReference, type RefCase } from './helpers/reference.js';

interface LossCase {
  name: string;
  run: (x: Tensor) => Tensor;
  ref: RefCase;
}

function cases(): LossCase[] {
  manualSeed(11);
  const out: LossCase[] = [];
  const shapes: [number[], number][] = [
    [[3, 4, 9, 7], 4],
    [[2, 2, 5, 6, 4], 2],
    [[1, 8, 6, 6], 8],
  ];
  for (const [shape, c] of shapes) {
    const x = randn(shape);
    const target = randint([shape[0], ...shape.slice(2)], 0, c);
    const weights = rand([shape[0], ...shape.slice(2)]).gt(0.4).to('float32').mul(0.5).add(0.5);
    const tag = shape.join('x');
    out.push({ name: `CE ${tag}`, run: (v) => crossEntropy(v, target), ref: { op: 'crossEntropy', inputs: [x, target] } });
    out.push({ name: `CE weighted ${tag}`, run: (v) => crossEntropy(v, target, { weights }), ref: { op: 'crossEntropy', inputs: [x, target, weights] } });
    const diceVariants: [string, DiceLossOptions][] = [
      ['SSL4MIS', { softmax: true }],
      ['linear per-sample smooth 1e-5 (LA)', { softmax: true, squared: false, perSample: true }],
      ['squared smooth 1e-10 no background', { softmax: true, smooth: 1e-10, includeBackground: false }],
      ['probabilities as input', {}],
    ];
    for (const [label, opts] of diceVariants) {
      const input = opts.softmax ? x : x.softmax(1);
      out.push({ name: `Dice ${label} ${tag}`, run: (v) => diceLoss(v, target, opts), ref: { op: 'diceLoss', inputs: [input, target], args: { ...opts } } });
      out.push({
        name: `Dice ${label} weighted ${tag}`,
        run: (v) => diceLoss(v, target, { ...opts, weights }),
        ref: { op: 'diceLoss', inputs: [input, target, weights], args: { ...opts } },
      });
    }
    out.push({ name: `0.5 (CE + Dice) ${tag}`, run: (v) => ceDiceLoss(v, target), ref: { op: 'ceDiceLoss', inputs: [x, target] } });
    out.push({
      name: `0.5 (CE + Dice) BCP masked ${tag}`,
      run: (v) => ceDiceLoss(v, target, { weights, smooth: 1e-10 }),
      ref: { op: 'ceDiceLoss', inputs: [x, target, weights], args: { smooth: 1e-10 } },
    });
    const other = randn(shape);
    out.push({ name: `softmax MSE ${tag}`, run: (v) => softmaxMse(v, other), ref: { op: 'softmaxMse', inputs: [x, other] } });
  }
  return out;
}

test('losses and their gradients equal the reference', (t) => {
  if (!referencePython) return t.pass('skipped: no python with torch');
  const all = tidy(() => cases());
  const results = runReference('tensor_ops.py', all.map((c) => c.ref));
  let compared = 0;
  all.forEach((c, i) => {
    const r = results[i];
    if ('error' in r) return t.fail(`${c.name}: ${r.error}`);
    tidy(() => {
      const x = c.ref.inputs[0].clone().setRequiresGrad();
      const loss = c.run(x);
      loss.backward();
      const [refLoss, refGrad] = r.outputs;
      t.true(closeness(loss.toArray() as Float32Array, decodeValues(refLoss), 1e-6, 1e-5) <= 1, `${c.name}: loss ${loss.item()} vs ${decodeValues(refLoss)[0]}`);
      t.true(closeness(x.grad!.toArray() as Float32Array, decodeValues(refGrad), 1e-7, 1e-4) <= 1, `${c.name}: gradient`);
      compared++;
    });
  });
  t.is(compared, all.length);
  dispose(all.map((c) => c.ref.inputs));
});

test('loss inputs are checked with clear messages', (t) => {
  tidy(() => {
    const x = randn([2, 3, 4, 4]);
    t.throws(() => crossEntropy(x, randint([2, 4, 5], 0, 3)), { message: /crossEntropy\(\): argument 'target' must have shape \[2, 4, 4\] \(input without its class dimension\), got \[2, 4, 5\]/ });
    t.throws(() => diceLoss(x, randint([2, 4, 4], 0, 5)), { message: /diceLoss\(\): argument 'target' must hold labels in \[0, 3\), got values in \[0, 4\]/ });
    t.throws(() => ceDiceLoss(x, randn([2, 4, 4])), { message: /ceDiceLoss\(\): argument 'target' must hold integer labels, got Float/ });
    t.throws(() => crossEntropy(x, randint([2, 4, 4], 0, 3), { weights: rand([2, 4]) }), { message: /crossEntropy\(\): argument 'weights' must have shape \[2, 4, 4\], got \[2, 4\]/ });
    t.throws(() => diceLoss(x, randint([2, 4, 4], 0, 3), { smooth: -1 }), { instanceOf: RangeError, message: /diceLoss\(\): argument 'smooth' must be a number >= 0, got -1/ });
    t.throws(() => softmaxMse(x, randn([2, 3, 4])), { message: /softmaxMse\(\): 'input' and 'target' must have the same shape/ });
    t.throws(() => crossEntropy(randn([2, 3]), randint([2], 0, 3)), { message: /crossEntropy\(\): argument 'input' must be \(N, C, \.\.\.spatial\), got shape \[2, 3\]/ });
  });
});
