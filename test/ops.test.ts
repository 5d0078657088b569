// The fused ops against their composite references (ordinary tensor ops, the published code's way):
// forward values and gradients on random 2-D and 3-D inputs (odd batches, C from 2 to 8, boxes at the
// borders, non-contiguous inputs), float64 gradchecks by central differences, errors by message, and
// the empty / all-ignored cases.
import test from 'ava';

import { cuda, manualSeed, ops, rand, randint, randn, tensor, tidy, zeros, type Tensor } from '../lib/index.js';
import { gradients, maxAbsDiff, num, numericGradient } from './helpers/grad.js';

const spatial2 = [7, 9];
const spatial3 = [5, 6, 7];

// A (N, C, ...spatial) tensor that is not contiguous: made channel-last, then permuted back.
function nonContiguous(shape: number[], dtype: 'float32' | 'float64' = 'float32'): Tensor {
  const d = shape.length;
  const last = [0, ...Array.from({ length: d - 2 }, (_, i) => i + 2), 1];
  const t = randn(last.map((i) => shape[i]), { dtype });
  const back = [0, d - 1, ...Array.from({ length: d - 2 }, (_, i) => i + 1)];
  return t.permute(back);
}

function sameTensors(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, a: Tensor, b: Tensor, what: string) {
  t.deepEqual(a.shape, b.shape, `${what} shape`);
  t.deepEqual(a.dtype, b.dtype, `${what} dtype`);
  t.deepEqual(Array.from(a.data() as ArrayLike<number | bigint>), Array.from(b.data() as ArrayLike<number | bigint>), what);
}

test('bidirectionalCopyPaste equals the composite in values and gradients', (t) => {
  manualSeed(3);
  const cases = [
    { sp: spatial2, n: 3, ch: 1, pairing: 'same' as const, box: { start: [0, 0], size: [4, 6] } },
    { sp: spatial2, n: 4, ch: 2, pairing: 'inFirst' as const, box: [{ start: [3, 3], size: [4, 6] }, { start: [0, 1], size: [7, 2] }] },
    { sp: spatial3, n: 2, ch: 1, pairing: 'outFirst' as const, box: { start: [1, 0, 2], size: [3, 6, 5] } },
    { sp: spatial3, n: 5, ch: 3, pairing: 'same' as const, box: { start: [4, 5, 6], size: [1, 1, 1] } },
    { sp: spatial2, n: 2, ch: 1, pairing: 'same' as const, box: { start: [2, 2], size: [0, 3] } },
  ];
  for (const c of cases) {
    tidy(() => {
      const tag = `${c.sp.length}-D ${c.pairing} N=${c.n}`;
      const l = nonContiguous([c.n, c.ch, ...c.sp], 'float64');
      const u = randn([c.n, c.ch, ...c.sp], { dtype: 'float64' });
      const y = randint([c.n, ...c.sp], 0, 4);
      const py = randint([c.n, ...c.sp], 0, 4);
      const fused = ops.bidirectionalCopyPaste(l, y, u, py, c.box, { alpha: 0.3, pairing: c.pairing });
      const ref = ops.composite.bidirectionalCopyPaste(l, y, u, py, c.box, { alpha: 0.3, pairing: c.pairing });
      for (const k of ['mixedIn', 'targetIn', 'weightIn', 'mixedOut', 'targetOut', 'weightOut'] as const) {
        sameTensors(t, fused[k], ref[k], `${tag} ${k}`);
      }
      const rIn = randn(fused.mixedIn.shape, { dtype: 'float64' });
      const rOut = randn(fused.mixedOut.shape, { dtype: 'float64' });
      const loss = (mix: typeof ops.bidirectionalCopyPaste) => (a: Tensor, b: Tensor) => {
        const r = mix(a, y, b, py, c.box, { alpha: 0.3, pairing: c.pairing });
        return r.mixedIn.mul(rIn).sum().add(r.mixedOut.mul(rOut).sum());
      };
      const gf = gradients(loss(ops.bidirectionalCopyPaste), [l, u]);
      const gr = gradients(loss(ops.composite.bidirectionalCopyPaste), [l, u]);
      t.is(maxAbsDiff(gf[0], gr[0]), 0, `${tag} grad labeled`);
      t.is(maxAbsDiff(gf[1], gr[1]), 0, `${tag} grad unlabeled`);
    });
  }
});

const lossOptions: ops.RegionWeightedOptions[] = [
  {},
  { dice: 'squared', smooth: 1e-10 },
  { dice: 'linear', perSample: true },
  { dice: 'linear', perSample: true, includeBackground: false, smooth: 1e-5 },
];

test('regionWeightedCeDice equals the composite CE + Dice in values and gradients', (t) => {
  manualSeed(5);
  const shapes = [
    [3, 4, ...spatial2],
    [1, 2, ...spatial3],
    [5, 8, 6, 5],
    [2, 3, ...spatial3],
  ];
  for (const shape of shapes) {
    for (const [i, base] of lossOptions.entries()) {
      for (const weighted of [false, true]) {
        tidy(() => {
          const tag = `${shape.join('x')} options#${i} weighted=${weighted}`;
          const x = nonContiguous(shape);
          const target = randint([shape[0], ...shape.slice(2)], 0, shape[1]);
          const weights = rand([shape[0], ...shape.slice(2)]).gt(0.5).to('float32').mul(0.5).add(0.5);
          const options = weighted ? { ...base, weights } : base;
          const a = ops.regionWeightedCeDice(x, target, options);
          const b = ops.composite.regionWeightedCeDice(x, target, options);
          t.true(Math.abs(num(a) - num(b)) <= 1e-5 * Math.abs(num(b)), `${tag}: ${num(a)} vs ${num(b)}`);
          const [ga] = gradients((v) => ops.regionWeightedCeDice(v, target, options), [x]);
          const [gb] = gradients((v) => ops.composite.regionWeightedCeDice(v, target, options), [x]);
          t.true(maxAbsDiff(ga, gb) < 1e-6, `${tag} gradient differs by ${maxAbsDiff(ga, gb)}`);
        });
      }
    }
  }
});

function marginal(c: number): Tensor {
  const v = rand([c]).add(0.05);
  return v.div(v.sum());
}

test('marginalAlign and classMarginals equal the composites', (t) => {
  manualSeed(7);
  for (const shape of [
    [3, 4, ...spatial2],
    [2, 2, ...spatial3],
    [1, 8, 5, 5],
  ]) {
    tidy(() => {
      const tag = shape.join('x');
      const p = nonContiguous(shape).softmax(1);
      const piL = marginal(shape[1]);
      const piU = marginal(shape[1]);
      const q = ops.marginalAlign(p, piL, piU, { eps: 1e-6 });
      t.true(maxAbsDiff(q, ops.composite.marginalAlign(p, piL, piU, { eps: 1e-6 })) < 1e-6, `${tag} q`);
      const r = randn(shape);
      const [ga] = gradients((v) => ops.marginalAlign(v, piL, piU).mul(r).sum(), [p]);
      const [gb] = gradients((v) => ops.composite.marginalAlign(v, piL, piU).mul(r).sum(), [p]);
      t.true(maxAbsDiff(ga, gb) < 1e-5, `${tag} gradient differs by ${maxAbsDiff(ga, gb)}`);

      const mask = rand([shape[0], ...shape.slice(2)]).gt(0.3);
      for (const options of [{}, { mask }]) {
        const m = ops.classMarginals(p, options);
        const n = ops.composite.classMarginals(p, options);
        t.true(maxAbsDiff(m.means, n.means) < 1e-6, `${tag} means`);
        t.is(num(m.count), num(n.count), `${tag} count`);
      }
      const none = ops.classMarginals(p, { mask: zeros(mask.shape, { dtype: 'bool' }) });
      t.deepEqual(Array.from(none.means.data() as Float32Array), new Array(shape[1]).fill(0), `${tag} empty mask`);
      t.is(num(none.count), 0);
    });
  }
});

test('overExpectationCe equals the composite, and counts nothing above every expectation', (t) => {
  manualSeed(9);
  for (const shape of [
    [3, 4, ...spatial2],
    [2, 2, ...spatial3],
    [5, 6, 4, 7],
  ]) {
    tidy(() => {
      const tag = shape.join('x');
      const x = nonContiguous(shape);
      const q = randn(shape).mul(2).softmax(1);
      const e = rand([shape[1]]).mul(0.4).add(0.3);
      const a = ops.overExpectationCe(x, q, e);
      const b = ops.composite.overExpectationCe(x, q, e);
      t.true(num(b.count) > 0 && num(b.count) < q.numel / shape[1], `${tag}: some pixels kept, some not`);
      t.true(Math.abs(num(a.loss) - num(b.loss)) < 1e-5, `${tag} loss ${num(a.loss)} vs ${num(b.loss)}`);
      t.is(num(a.count), num(b.count), `${tag} count`);
      t.true(maxAbsDiff(a.classConfidence, b.classConfidence) < 1e-6, `${tag} class confidence`);
      t.deepEqual(Array.from(a.classCount.data() as Float32Array), Array.from(b.classCount.data() as Float32Array));
      const [ga] = gradients((v) => ops.overExpectationCe(v, q, e).loss, [x]);
      const [gb] = gradients((v) => ops.composite.overExpectationCe(v, q, e).loss, [x]);
      t.true(maxAbsDiff(ga, gb) < 1e-6, `${tag} gradient differs by ${maxAbsDiff(ga, gb)}`);

      const high = ops.overExpectationCe(x, q, zeros([shape[1]]).add(2));
      t.is(num(high.loss), 0);
      t.is(num(high.count), 0);
      const [g0] = gradients((v) => ops.overExpectationCe(v, q, zeros([shape[1]]).add(2)).loss, [x]);
      t.is(num(g0.abs().max()), 0, `${tag}: zero gradient when nothing counts`);
    });
  }
});

test('overExpectationCe breaks ties by the first class, as argmax does', (t) => {
  tidy(() => {
    const x = randn([1, 3, 1, 2]);
    const q = tensor([0.4, 0.4, 0.4, 0.4, 0.2, 0.2], { shape: [1, 3, 1, 2] });
    const r = ops.overExpectationCe(x, q, tensor([0.4, 0.9, 0.9]));
    t.deepEqual(Array.from(r.classCount.data() as Float32Array), [2, 0, 0]);
    t.is(num(r.count), 2);
  });
});

test('float64 gradchecks by central differences', (t) => {
  manualSeed(13);
  tidy(() => {
    const shape = [2, 3, 3, 4];
    const px = [2, 3, 4];
    const x = randn(shape, { dtype: 'float64' });
    const target = randint(px, 0, 3);
    const w = rand(px, { dtype: 'float64' });
    const q = randn(shape, { dtype: 'float64' }).softmax(1);
    const e = tensor([0.3, 0.4, 0.35], { dtype: 'float64' });
    const piL = tensor([0.5, 0.3, 0.2], { dtype: 'float64' });
    const piU = tensor([0.2, 0.3, 0.5], { dtype: 'float64' });
    const r = randn(shape, { dtype: 'float64' });
    const u = randn([2, 1, 3, 4], { dtype: 'float64' });
    const l = randn([2, 1, 3, 4], { dtype: 'float64' });
    const rl = randn([2, 1, 3, 4], { dtype: 'float64' });
    const box = { start: [1, 1], size: [2, 2] };
    const fns: [string, (v: Tensor) => Tensor, Tensor][] = [
      ['regionWeightedCeDice squared', (v) => ops.regionWeightedCeDice(v, target, { weights: w, smooth: 1e-3 }), x],
      ['regionWeightedCeDice linear per sample', (v) => ops.regionWeightedCeDice(v, target, { weights: w, dice: 'linear', perSample: true }), x],
      ['marginalAlign', (v) => ops.marginalAlign(v, piL, piU).mul(r).sum(), q],
      ['overExpectationCe', (v) => ops.overExpectationCe(v, q, e).loss, x],
      ['bidirectionalCopyPaste', (v) => {
        const m = ops.bidirectionalCopyPaste(v, target, u, target, box);
        return m.mixedIn.mul(rl).sum().add(m.mixedOut.mul(m.mixedOut).sum());
      }, l],
    ];
    for (const [name, f, input] of fns) {
      const [analytic] = gradients(f, [input]);
      const numeric = numericGradient(f, input);
      const err = maxAbsDiff(analytic, numeric);
      t.true(err < 1e-7, `${name}: analytic and numeric gradients differ by ${err}`);
    }
  });
});

test('all-zero region weights give a zero loss and gradient; empty batches give empty mixes', (t) => {
  tidy(() => {
    const x = randn([2, 3, 4, 4]);
    const target = randint([2, 4, 4], 0, 3);
    const w = zeros([2, 4, 4]);
    const a = ops.regionWeightedCeDice(x, target, { weights: w });
    t.is(num(a), num(ops.composite.regionWeightedCeDice(x, target, { weights: w })));
    t.is(num(a), 0);
    const [g] = gradients((v) => ops.regionWeightedCeDice(v, target, { weights: w }), [x]);
    t.is(num(g.abs().max()), 0);
    const empty = zeros([0, 1, 4, 4]);
    const lbl = zeros([0, 4, 4], { dtype: 'int64' });
    const m = ops.bidirectionalCopyPaste(empty, lbl, empty, lbl, { start: [0, 0], size: [2, 2] }, { pairing: 'inFirst' });
    t.deepEqual(m.mixedIn.shape, [0, 1, 4, 4]);
    t.deepEqual(m.weightOut.shape, [0, 4, 4]);
  });
});

test('fused ops name the bad argument', (t) => {
  tidy(() => {
    const img = randn([2, 1, 6, 6]);
    const lbl = randint([2, 6, 6], 0, 2);
    const box = { start: [0, 0], size: [4, 4] };
    const cp = (b: unknown, o?: unknown) =>
      ops.bidirectionalCopyPaste(img, lbl, img, lbl, b as ops.Box, o as ops.CopyPasteOptions);
    t.throws(() => cp({ start: [3, 0], size: [4, 4] }), {
      message: /bidirectionalCopyPaste\(\): argument 'box' row 0 must lie inside the image: on spatial axis 0 \(size 6\) it spans \[3, 7\)/,
    });
    t.throws(() => cp({ start: [0, 0, 0], size: [1, 1, 1] }), { message: /argument 'box' must be \(1, 4\) or \(2, 4\)/ });
    t.throws(() => cp({ start: [0], size: [1, 1] }), { message: /argument 'box' must be start and size with one value per spatial axis/ });
    t.throws(() => cp(box, { alpha: 1.5 }), { message: /bidirectionalCopyPaste\(\): argument 'alpha' must be a number in \[0, 1\], got 1.5/ });
    t.throws(() => cp(box, { pairing: 'halves' }), { message: /argument 'pairing' must be one of/ });
    t.throws(() => cp(box, { alhpa: 0.5 }), { message: /alhpa/ });
    t.throws(() => ops.bidirectionalCopyPaste(img, lbl, randn([2, 2, 6, 6]), lbl, box), {
      message: /argument 'unlabeled' must have the shape of 'labeled' \[2, 1, 6, 6\], got \[2, 2, 6, 6\]/,
    });
    t.throws(() => ops.bidirectionalCopyPaste(randn([3, 1, 6, 6]), randint([3, 6, 6], 0, 2), randn([3, 1, 6, 6]), randint([3, 6, 6], 0, 2), box, { pairing: 'inFirst' }), {
      message: /pairing by halves needs an even batch, got 'labeled' with N = 3/,
    });
    t.throws(() => ops.bidirectionalCopyPaste(img, lbl.to('float32'), img, lbl, box), { message: /argument 'labels' must hold integer labels, got Float/ });

    const logits = randn([2, 3, 6, 6]);
    t.throws(() => ops.regionWeightedCeDice(logits, randint([2, 6, 6], 0, 4)), {
      message: /regionWeightedCeDice\(\): argument 'target' must hold labels in \[0, 3\), got 3/,
    });
    t.throws(() => ops.regionWeightedCeDice(logits, randint([2, 6, 5], 0, 3)), { message: /argument 'target' must have shape \[2, 6, 6\], got \[2, 6, 5\]/ });
    t.throws(() => ops.regionWeightedCeDice(logits, lbl, { weights: zeros([2, 6]) }), { message: /argument 'weights' must have shape \[2, 6, 6\]/ });
    t.throws(() => ops.regionWeightedCeDice(logits.to('int32'), lbl), { message: /argument 'input' must be float32, float64, float16 or bfloat16, got Int/ });
    t.throws(() => ops.regionWeightedCeDice(randn([2, 3, 6]), randint([2, 6], 0, 3)), { message: /argument 'input' must be \(N, C, H, W\) or \(N, C, D, H, W\), got shape \[2, 3, 6\]/ });
    t.throws(() => ops.regionWeightedCeDice(logits, lbl, { dice: 'cubic' as 'linear' }), { message: /argument 'dice' must be one of/ });
    t.throws(() => ops.regionWeightedCeDice(logits, lbl, { smooth: -1 }), { message: /argument 'smooth' must be a number >= 0/ });

    const p = logits.softmax(1);
    t.throws(() => ops.marginalAlign(p, tensor([0.5, 0.5]), tensor([0.3, 0.3, 0.4])), {
      message: /marginalAlign\(\): argument 'labeledMarginal' must be a 1-D tensor of 3 values \(one per class\), got shape \[2\]/,
    });
    t.throws(() => ops.marginalAlign(p, tensor([0.3, 0.3, 0.4]), tensor([0.3, 0.3, 0.4]), { eps: 0 }), { message: /argument 'eps' must be a number > 0/ });
    t.throws(() => ops.classMarginals(p, { mask: zeros([2, 6, 7], { dtype: 'bool' }) }), { message: /classMarginals\(\): argument 'mask' must have shape \[2, 6, 6\]/ });
    t.throws(() => ops.overExpectationCe(logits, p.narrow(1, 0, 2), tensor([0.5, 0.5, 0.5])), {
      message: /overExpectationCe\(\): argument 'aligned' must have the shape of 'input' \[2, 3, 6, 6\], got \[2, 2, 6, 6\]/,
    });
    t.throws(() => ops.overExpectationCe(logits, p, tensor([0.5, 0.5])), { message: /argument 'expectations' must be a 1-D tensor of 3 values/ });
  });
});

test('on CUDA the fused ops equal their CPU results (float32; float16 and bfloat16 within their precision)', (t) => {
  if (!cuda.isAvailable()) return t.pass('no CUDA device');
  manualSeed(17);
  for (const shape of [
    [4, 4, 33, 47],
    [2, 2, 9, 17, 12],
    [3, 9, 16, 16],
  ]) {
    tidy(() => {
      const tag = shape.join('x');
      const px = [shape[0], ...shape.slice(2)];
      const x = randn(shape);
      const target = randint(px, 0, shape[1]);
      const w = rand(px);
      const q = randn(shape).mul(2).softmax(1);
      const e = rand([shape[1]]).mul(0.4).add(0.3);
      const piL = marginal(shape[1]);
      const piU = marginal(shape[1]);
      const r = randn(shape);
      const box = { start: px.slice(1).map((s) => Math.floor(s / 4)), size: px.slice(1).map((s) => Math.floor(s / 2)) };
      const half = shape[0] - (shape[0] % 2);
      const l = randn([half, 2, ...px.slice(1)]);
      const u = randn([half, 2, ...px.slice(1)]);
      const y = randint([half, ...px.slice(1)], 0, shape[1]);
      const cases: [string, (v: Tensor, device: 'cpu' | 'cuda', dtype: 'float32' | 'float16' | 'bfloat16') => Tensor, Tensor][] = [
        ['regionWeightedCeDice', (v, d, dt) => ops.regionWeightedCeDice(v, target.to(d), { weights: w.to(d).to(dt), dice: 'linear', perSample: true }), x],
        ['marginalAlign', (v, d) => ops.marginalAlign(v, piL.to(d), piU.to(d)).to('float32').mul(r.to(d)).sum(), q],
        ['overExpectationCe', (v, d, dt) => ops.overExpectationCe(v, q.to(d).to(dt), e.to(d)).loss, x],
        ['bidirectionalCopyPaste', (v, d, dt) => {
          const m = ops.bidirectionalCopyPaste(v, y.to(d), u.to(d).to(dt), y.to(d), box, { pairing: 'inFirst' });
          return m.mixedIn.to('float32').square().sum().add(m.mixedOut.to('float32').sum()).add(m.targetIn.to('float32').sum());
        }, l],
      ];
      for (const [name, f, input] of cases) {
        const [gCpu] = gradients((v) => f(v, 'cpu', 'float32'), [input]);
        const vCpu = num(f(input, 'cpu', 'float32'));
        for (const [dtype, tol] of [['float32', 1e-4], ['float16', 2e-2], ['bfloat16', 1e-1]] as const) {
          const onGpu = input.to('cuda').to(dtype);
          const vGpu = num(f(onGpu, 'cuda', dtype));
          t.true(Math.abs(vGpu - vCpu) <= tol * Math.max(1, Math.abs(vCpu)), `${tag} ${name} ${dtype}: ${vGpu} vs ${vCpu}`);
          const [gGpu] = gradients((v) => f(v, 'cuda', dtype), [onGpu]);
          const err = maxAbsDiff(gGpu.to('cpu').to('float32'), gCpu);
          t.true(err <= tol * Math.max(1, num(gCpu.abs().max())), `${tag} ${name} ${dtype} gradient differs by ${err}`);
        }
      }
      const a = ops.bidirectionalCopyPaste(l, y, u, y, box, { pairing: 'inFirst', alpha: 0.25 });
      const b = ops.bidirectionalCopyPaste(l.to('cuda'), y.to('cuda'), u.to('cuda'), y.to('cuda'), box, { pairing: 'inFirst', alpha: 0.25 });
      for (const k of ['mixedIn', 'targetIn', 'weightIn', 'mixedOut', 'targetOut', 'weightOut'] as const) sameTensors(t, a[k], b[k].to('cpu'), `${tag} copy-paste ${k} on CUDA`);
      const m = ops.classMarginals(q, { mask: w.gt(0.5) });
      const mg = ops.classMarginals(q.to('cuda'), { mask: w.gt(0.5).to('cuda') });
      t.true(maxAbsDiff(m.means, mg.means.to('cpu')) < 1e-5 && num(m.count) === num(mg.count), `${tag} classMarginals on CUDA`);
    });
  }
});
