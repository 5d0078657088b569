// Precision as a setting (issue 20): resolving 'auto' and bad input, the BatchNorm-folded inference copy
// against the unfolded network (U-Net and V-Net, float32 against a float64 reference), its cache, bfloat16
// inference against float32, the fused ops on bfloat16 / float16 inputs on CPU against the float32
// composite, Segmenter.load's precision, and the GradScaler of float16 training.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import {
  buildInfo,
  cpuFeatures,
  dispose,
  manualSeed,
  nets,
  ops,
  rand,
  randint,
  randn,
  resolvePrecision,
  saveCheckpoint,
  Segmenter,
  SGD,
  sliceInference,
  slidingWindowInference,
  tensor,
  tidy,
  trainers,
  type Network,
  type Tensor,
} from '../lib/index.js';
import { GradScaler } from '../lib/train/grad-scaler.js';
import { resolveConfig } from '../lib/trainers/recipes.js';
import { maxAbsDiff } from './helpers/python.js';

const { bidirectionalCopyPaste, classMarginals, composite, marginalAlign, overExpectationCe, regionWeightedCeDice } = ops;

const f32 = (t: Tensor) => t.to('float32').toArray() as Float32Array;
const absMax = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** BatchNorm statistics and affine parameters far from the identity, so that folding changes the weights. */
function randomiseNorms(net: Network): void {
  const sd = net.stateDict();
  tidy(() => {
    for (const [k, t] of Object.entries(sd)) {
      if (/running_mean$/.test(k) || (/\.bias$/.test(k) && t.rank === 1)) t.copyFrom(randn(t.shape).mul(0.2));
      if (/running_var$/.test(k)) t.copyFrom(rand(t.shape).add(0.3));
      if (/\.weight$/.test(k) && t.rank === 1) t.copyFrom(rand(t.shape).add(0.5));
    }
  });
  dispose(Object.values(sd));
}

test('precision resolves on this machine: auto follows native bfloat16, bad names and float16 on the CPU are refused', (t) => {
  const info = buildInfo();
  t.true(Array.isArray(info.cpuFeatures));
  t.is(info.nativeBf16, cpuFeatures().nativeBf16);
  t.is(info.nativeBf16, info.cpuFeatures.includes('avx512_bf16') || info.cpuFeatures.includes('amx_bf16'));
  t.is(resolvePrecision('float32'), 'float32');
  t.is(resolvePrecision('bfloat16'), 'bfloat16');
  t.is(resolvePrecision('auto', 'cpu'), info.nativeBf16 ? 'bfloat16' : 'float32');
  t.throws(() => resolvePrecision('float16', 'cpu'), { instanceOf: RangeError, message: /precision 'float16' runs on CUDA devices only/ });
  t.throws(() => resolvePrecision('half' as 'float16'), { instanceOf: RangeError, message: /argument 'precision' must be one of 'float32', 'bfloat16', 'float16', 'auto', got the string "half"/ });
  t.throws(() => resolveConfig('bcp-acdc', { precision: 'float16' }), { instanceOf: RangeError, message: /resolveConfig\(\): precision 'float16' runs on CUDA/ });
  t.is(resolveConfig('bcp-acdc', { precision: 'auto' }).precision, info.nativeBf16 ? 'bfloat16' : 'float32');
  t.is(resolveConfig('bcp-acdc').precision, 'float32');
});

// Folding rewrites W' = W g / sqrt(v + eps), b' = (b - m) g / sqrt(v + eps) + beta in float64 and rounds
// once to float32: the folded float32 network is as close to the exact (float64) network as the unfolded
// float32 one. Compared on log-probabilities (logits up to a per-pixel constant), tolerance 1e-5.
for (const kind of ['UNet2D', 'VNet3D'] as const) {
  test(`${kind}: the BatchNorm-folded inference copy equals the unfolded network (float32 within 1e-5 of float64)`, async (t) => {
    manualSeed(20);
    const net = kind === 'UNet2D' ? nets.UNet2D({ inChannels: 1, outChannels: 4 }) : nets.VNet3D({ nFilters: 4 });
    randomiseNorms(net);
    net.eval();
    const shape = kind === 'UNet2D' ? [48, 40] : [40, 36, 20];
    const patch = kind === 'UNet2D' ? [32, 32] : [32, 32, 16];
    const strides = kind === 'UNet2D' ? [16, 16] : [18, 18, 4];
    const image = randn(shape);
    const exact = net.clone().to({ dtype: 'float64' });
    const image64 = image.to('float64');
    const ref = await slidingWindowInference(exact, image64, { patch, strides, foldBatchNorm: false });
    const unfolded = await slidingWindowInference(net, image, { patch, strides, foldBatchNorm: false });
    const folded = await slidingWindowInference(net, image, { patch, strides });
    const [lr, lu, lf] = [ref, unfolded, folded].map((p) => tidy(() => p.to('float64').log().toArray() as Float64Array));
    const scale = absMax(lr);
    t.true(scale > 0.1, `log-probabilities are not trivial (${scale})`);
    const errFolded = maxAbsDiff(lf, lr);
    const errUnfolded = maxAbsDiff(lu, lr);
    t.true(errFolded < 1e-5, `folded: ${errFolded}`);
    t.true(errUnfolded < 1e-5, `unfolded: ${errUnfolded}`);
    // the cached copy follows weight changes (version counters) and train() / eval()
    randomiseNorms(net);
    randomiseNorms(exact);
    exact.loadStateDict(net.stateDict());
    const ref2 = await slidingWindowInference(exact, image64, { patch, strides, foldBatchNorm: false });
    const folded2 = await slidingWindowInference(net, image, { patch, strides });
    t.true(maxAbsDiff(f32(folded2), f32(ref2)) < 1e-5, 'folded copy rebuilt after a weight change');
    t.true(maxAbsDiff(f32(folded2), f32(folded)) > 1e-4, 'the new weights give other probabilities');
    net.train();
    net.eval();
    const folded3 = await slidingWindowInference(net, image, { patch, strides });
    t.is(maxAbsDiff(f32(folded3), f32(folded2)), 0);
    dispose([image, image64, ref, unfolded, folded, ref2, folded2, folded3]);
    exact.dispose();
    net.dispose();
  });
}

// bfloat16 keeps 8 significant bits: probabilities of the small random U-Net move by well under 0.02,
// and slice labels agree on >= 99 % of pixels (measured: max 4e-4 and 100 %).
test('bfloat16 inference (emulated on CPUs without native BF16) stays within 0.02 of float32 probabilities', async (t) => {
  manualSeed(21);
  const net = nets.UNet2D({ inChannels: 1, outChannels: 4 });
  randomiseNorms(net);
  net.eval();
  const image = randn([40, 32]);
  const a = await slidingWindowInference(net, image, { patch: [32, 32], strides: [16, 16] });
  const b = await slidingWindowInference(net, image, { patch: [32, 32], strides: [16, 16], precision: 'bfloat16' });
  t.is(b.dtype, 'float32');
  t.true(maxAbsDiff(f32(a), f32(b)) < 0.02, `${maxAbsDiff(f32(a), f32(b))}`);
  const volume = randn([2, 40, 36]);
  const la = await sliceInference(net, volume, { size: [32, 32] });
  const lb = await sliceInference(net, volume, { size: [32, 32], precision: 'bfloat16' });
  const lu = await sliceInference(net, volume, { size: [32, 32], foldBatchNorm: false, batch: 1 });
  t.deepEqual(la.shape, [2, 40, 36]);
  t.is(la.dtype, 'int64');
  const agree = tidy(() => Number(la.eq(lb).to('float32').mean().item()));
  t.true(agree >= 0.99, `${agree}`);
  t.is(tidy(() => Number(la.ne(lu).sum().item())), 0, 'batched folded slices equal unbatched unfolded ones');
  await t.throwsAsync(slidingWindowInference(net, image, { patch: [32, 32], strides: [16, 16], precision: 'float16' }), {
    instanceOf: RangeError,
    message: /slidingWindowInference\(\): precision 'float16' runs on CUDA devices only/,
  });
  await t.throwsAsync(sliceInference(net, volume, { precision: 'int8' as 'float32' }), { instanceOf: RangeError, message: /sliceInference\(\): argument 'precision' must be one of/ });
  dispose([image, a, b, volume, la, lb, lu]);
  net.dispose();
});

test('Segmenter.load takes a precision and reports what it chose', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-precision-'));
  try {
    const net = nets.UNet2D({ inChannels: 1, outChannels: 4 });
    const checkpoint = join(dir, 'model.ckpt');
    await saveCheckpoint(checkpoint, { network: net, iteration: 0, extra: { config: { size: [32, 32], classes: 4, method: 'supervised' } } });
    net.dispose();
    const plain = await Segmenter.load(checkpoint);
    t.is(plain.precision, 'float32');
    plain.dispose();
    const auto = await Segmenter.load(checkpoint, { precision: 'auto' });
    t.is(auto.precision, cpuFeatures().nativeBf16 ? 'bfloat16' : 'float32');
    auto.dispose();
    const bf = await Segmenter.load(checkpoint, { precision: 'bfloat16' });
    t.is(bf.precision, 'bfloat16');
    const v = randn([2, 40, 40]);
    const labels = await bf.segment(v);
    t.deepEqual(labels.shape, [2, 40, 40]);
    dispose([v, labels]);
    bf.dispose();
    await t.throwsAsync(Segmenter.load(checkpoint, { precision: 'float16' }), { instanceOf: RangeError, message: /Segmenter\.load\(\): precision 'float16' runs on CUDA/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The fused ops read bfloat16 / float16 and accumulate in float32 on CPU too. Against the float32
// composite on the same (rounded) values: losses within 1e-5 relative, gradients within the input dtype's
// rounding (2^-8 relative for bfloat16, 2^-11 for float16) of the largest gradient.
for (const [dtype, gradTol] of [['bfloat16', 8e-3], ['float16', 1e-3]] as const) {
  test(`fused ops on ${dtype} inputs on CPU equal the float32 composite (float32 accumulation)`, (t) => {
    manualSeed(22);
    const relLoss = (a: Tensor, b: Tensor) => Math.abs(Number(a.to('float32').item()) - Number(b.item())) / Math.max(1e-6, Math.abs(Number(b.item())));
    tidy(() => {
      const x = randn([4, 3, 16, 24]).mul(3).to(dtype);
      const xr = x.to('float32');
      const y = randint([4, 16, 24], 0, 3);
      const w = rand([4, 16, 24]).to(dtype).to('float32');
      // region-weighted CE + Dice
      for (const squared of [true, false]) {
        const xg = x.detach().setRequiresGrad(true);
        const xrg = xr.detach().setRequiresGrad(true);
        const opts = { weights: w, dice: squared ? ('squared' as const) : ('linear' as const) };
        const fused = regionWeightedCeDice(xg, y, { ...opts, weights: w.to(dtype) });
        const ref = composite.regionWeightedCeDice(xrg, y, opts);
        t.is(fused.dtype, 'float32', 'the loss of reduced-precision logits is float32');
        t.true(relLoss(fused, ref) < 1e-5, `ce+dice loss ${relLoss(fused, ref)}`);
        fused.backward();
        ref.backward();
        t.is(xg.grad!.dtype, dtype);
        const g = f32(xg.grad!), gr = f32(xrg.grad!);
        t.true(maxAbsDiff(g, gr) <= gradTol * absMax(gr), `ce+dice grad ${maxAbsDiff(g, gr)} of ${absMax(gr)}`);
      }
      // marginal alignment, class marginals and the over-expectation CE
      const p = xr.softmax(1).to(dtype);
      const pl = tensor([0.5, 0.3, 0.2]);
      const pu = tensor([0.4, 0.4, 0.2]);
      const q = marginalAlign(p, pl, pu);
      const qr = composite.marginalAlign(p.to('float32'), pl, pu);
      t.true(maxAbsDiff(f32(q), f32(qr)) < 1e-2, 'marginalAlign');
      const m = classMarginals(p);
      const mr = composite.classMarginals(p.to('float32'));
      t.true(maxAbsDiff(f32(m.means), f32(mr.means)) < 1e-5, 'classMarginals');
      const e = tensor([0.3, 0.4, 0.35]);
      const xg = x.detach().setRequiresGrad(true);
      const xrg = xr.detach().setRequiresGrad(true);
      const qb = qr.to(dtype);
      const oe = overExpectationCe(xg, qb, e);
      const oer = composite.overExpectationCe(xrg, qb.to('float32'), e);
      t.is(oe.loss.dtype, 'float32');
      t.true(relLoss(oe.loss, oer.loss) < 1e-5, `over-expectation loss ${relLoss(oe.loss, oer.loss)}`);
      t.is(Number(oe.count.item()), Number(oer.count.item()));
      oe.loss.backward();
      oer.loss.backward();
      t.true(maxAbsDiff(f32(xg.grad!), f32(xrg.grad!)) <= gradTol * absMax(f32(xrg.grad!)), 'over-expectation grad');
      // copy-paste moves values: exact
      const u = randn([4, 1, 16, 24]).to(dtype);
      const l = randn([4, 1, 16, 24]).to(dtype);
      const box = { start: [2, 3], size: [8, 10] };
      const c = bidirectionalCopyPaste(l, y, u, y, box, { alpha: 0.5, pairing: 'inFirst' });
      const cr = composite.bidirectionalCopyPaste(l.to('float32'), y, u.to('float32'), y, box, { alpha: 0.5, pairing: 'inFirst' });
      t.is(c.mixedIn.dtype, dtype);
      t.is(maxAbsDiff(f32(c.mixedIn), f32(cr.mixedIn)), 0);
      t.is(maxAbsDiff(f32(c.weightOut), f32(cr.weightOut)), 0);
    });
  });
}

test.serial('GradScaler: a scaled step equals the plain step; a non-finite gradient skips the step and halves the scale', async (t) => {
  manualSeed(23);
  const make = () => nets.UNet2D({ inChannels: 1, outChannels: 2, features: [4, 8, 16, 32, 64] });
  const a = make().eval(); // no dropout: both see the same function
  const b = a.clone();
  const x = randn([2, 1, 32, 32]);
  const y = randint([2, 32, 32], 0, 2);
  const optA = SGD(a, { lr: 0.1, momentum: 0.9 });
  const optB = SGD(b, { lr: 0.1, momentum: 0.9 });
  const scaler = new GradScaler({ initScale: 1024, growthInterval: 1 });
  const lossOf = async (net: Network) => {
    const logits = await net.forward(x);
    const l = tidy(() => logits.logSoftmax(1).gather(1, y.unsqueeze(1)).mean().neg());
    logits.dispose();
    return l;
  };
  const la = await lossOf(a);
  optA.zeroGrad();
  await la.backwardAsync();
  await optA.stepAsync();
  const lb = await lossOf(b);
  t.true(await scaler.step(optB, lb));
  t.is(scaler.scale, 2048, 'grows after growthInterval good steps');
  const pa = a.parameters();
  const pb = b.parameters();
  const diff = Math.max(...pa.map((p, i) => maxAbsDiff(f32(p), f32(pb[i]))));
  t.true(diff < 1e-6, `${diff}`);
  const lc = await lossOf(b);
  const inf = tidy(() => lc.mul(Infinity));
  const before = f32(pb[0]);
  t.false(await scaler.step(optB, inf));
  t.is(scaler.scale, 1024);
  t.is(scaler.skipped, 1);
  t.is(maxAbsDiff(f32(pb[0]), before), 0, 'no update on a non-finite gradient');
  // a scaler restored from state() (as a resumed run's, from last.ckpt) goes on as the original would
  const grows = new GradScaler({ initScale: 8, growthInterval: 3 });
  for (let k = 0; k < 2; k++) {
    const l = await lossOf(b);
    t.true(await grows.step(optB, l));
    l.dispose();
  }
  const resumed = new GradScaler({ initScale: 8, growthInterval: 3 });
  resumed.restore(JSON.parse(JSON.stringify(grows.state())) as ReturnType<GradScaler['state']>);
  t.deepEqual(resumed.state(), { scale: 8, good: 2, skipped: 0 });
  const l3 = await lossOf(b);
  t.true(await resumed.step(optB, l3));
  l3.dispose();
  t.is(resumed.scale, 16, 'the third finite step in a row grows the restored scaler');
  t.throws(() => resumed.restore({ scale: 0, good: 0, skipped: 0 }), { instanceOf: RangeError, message: /GradScaler\.restore\(\): argument 'state\.scale' must be a number in \(0, / });
  t.throws(() => resumed.restore({ scale: 1, good: -1, skipped: 0 }), { instanceOf: RangeError, message: /argument 'state\.good'/ });
  t.throws(() => new GradScaler({ backoffFactor: 2 }), { instanceOf: RangeError, message: /GradScaler\(\): argument 'backoffFactor' must be a number in \(0, 1\]/ });
  dispose([x, y, la, lb, lc, inf, ...pa, ...pb]);
  a.dispose();
  b.dispose();
});

// Mixed precision in the trainers: one step of BCP, Co-DA and Mean Teacher with precision 'bfloat16'
// (autocast forwards; emulated and slow without native BF16, hence tiny 2-D shapes; the 3-D recipes run
// the same code):
// finite losses, float32 weights that moved, and the same loss as float32 within bfloat16's precision.
for (const [recipe, size] of [['bcp-acdc', [32, 32]], ['coda-acdc', [32, 32]], ['mt-acdc', [32, 32]]] as const) {
  test.serial(`${recipe}: a training step runs in bfloat16 mixed precision with float32 weights`, async (t) => {
    const losses: number[] = [];
    for (const precision of ['float32', 'bfloat16'] as const) {
      const config = trainers.resolveConfig(recipe, { batchSize: 4, labeledBatch: 2, size: [...size], precision });
      t.is(config.precision, precision);
      manualSeed(24);
      const method = trainers.buildMethod(config);
      const stage = method.stages.find((s) => s.name === 'train')!;
      await stage.begin(false, null);
      const images = randn([4, 1, ...size]);
      const labels = randint([4, ...size], 0, config.classes);
      const main = method.networks[method.main];
      const before = tidy(() => main.parameters()[0].clone());
      const r = await stage.step({ images, labels, indices: [0, 1, 2, 3] }, 1);
      t.true(Number.isFinite(r.loss), `${precision}: ${r.loss}`);
      losses.push(r.loss);
      const after = main.parameters();
      t.is(after[0].dtype, 'float32');
      t.true(maxAbsDiff(f32(after[0]), f32(before)) > 0, `${precision}: the weights moved`);
      dispose([images, labels, before, ...after]);
      method.dispose();
    }
    t.true(Math.abs(losses[1] - losses[0]) <= 0.02 * Math.abs(losses[0]) + 1e-3, `float32 ${losses[0]}, bfloat16 ${losses[1]}`);
  });
}
