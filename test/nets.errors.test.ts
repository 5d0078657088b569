// Networks refuse bad input with messages naming the argument, and refuse to be changed while async work
// uses them; the process stays alive and nothing leaks.
import test from 'ava';

import { SGD, dispose, liveTensors, nets, ones, ones as onesOf, randint, randn, tidy, trainStep, zeros as zerosOf, type Network, type Tensor } from '../lib/index.js';

const any = (v: unknown) => v as never;

test.serial('bad inputs to forward name the problem', async (t) => {
  const start = liveTensors();
  const u = nets.UNet2D();
  const v = nets.VNet3D({ nFilters: 4 });
  const inputs: Tensor[] = [];
  const ones = (shape: number[]) => (inputs.push(onesOf(shape)), inputs[inputs.length - 1]);
  const zeros = (shape: number[], o?: { dtype: 'int64' }) => (inputs.push(zerosOf(shape, o)), inputs[inputs.length - 1]);
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    ['3-D input to the U-Net', () => u.forward(ones([1, 32, 32])), /UNet2D\.forward\(\): argument 'input' must be 4-D \(N, C, H, W\), got 3-D with shape \[1, 32, 32\]/],
    ['channels', () => u.forward(ones([1, 3, 32, 32])), /UNet2D\.forward\(\): argument 'input' must have 1 channel\(s\) in dimension 1, got 3/],
    ['size not a multiple of 16', () => u.forward(ones([1, 1, 30, 32])), /every spatial size of 'input' must be a positive multiple of 16, got shape \[1, 1, 30, 32\]/],
    ['integer input', () => u.forward(zeros([1, 1, 32, 32], { dtype: 'int64' })), /argument 'input' must be a floating-point tensor, got Long/],
    ['empty batch', () => u.forward(zeros([0, 1, 32, 32])), /argument 'input' has an empty batch/],
    ['4-D input to the V-Net', () => v.forward(ones([1, 1, 32, 32])), /VNet3D\.forward\(\): argument 'input' must be 5-D \(N, C, D, H, W\)/],
    ['not a tensor', () => u.forward(any([1, 2, 3])), /UNet2D\.forward\(\): argument 'input' must be a Tensor, got an array \[1, 2, 3\]/],
    ['bad autocast', () => u.forward(ones([1, 1, 16, 16]), { autocast: any('float8') }), /argument 'autocast' must be one of 'bfloat16', 'float16', got the string "float8"/],
    ['float16 autocast on CPU', () => u.forward(ones([1, 1, 16, 16]), { autocast: 'float16' }), /autocast: use 'bfloat16' \(CPU or CUDA\) or 'float16' \(CUDA only\)/],
  ];
  for (const [name, fn, message] of cases) await t.throwsAsync(fn, { message }, name);
  t.throws(() => nets.UNet2D({ features: [16, 32] }), { instanceOf: RangeError, message: /UNet2D\(\): argument 'features' must be an array of 5 channel counts/ });
  t.throws(() => nets.UNet2D({ dropout: [0, 0, 0, 0, 1.5] }), { instanceOf: RangeError, message: /argument 'dropout\[4\]' must be a rate in \[0, 1\), got 1.5/ });
  t.throws(() => nets.VNet3D({ normalization: any('layernorm') }), { instanceOf: RangeError, message: /argument 'normalization' must be one of 'batchnorm', 'instancenorm', 'groupnorm', 'none'/ });
  t.throws(() => nets.VNet3D({ normalization: 'groupnorm', nFilters: 8 }), { message: /^VNet3D\(\): argument 'nFilters' must be a multiple of 16 with 'groupnorm' \(16 groups\), got 8$/ });
  t.throws(() => nets.UNet2D(any({ inChanels: 1 })), { instanceOf: RangeError, message: /UNet2D\(\): unknown key 'inChanels' in argument 'options' \(expected one of inChannels, outChannels, features, dropout\)/ });
  t.throws(() => u.to(any('gpu')), { instanceOf: RangeError, message: /UNet2D\.to\(\): argument 'device' must be 'cpu', 'cuda' or 'cuda:N'/ });
  t.throws(() => u.to({ dtype: 'int32' }), { message: /a network's dtype must be floating-point/ });
  // the networks still work
  const y = await u.eval().forward(ones([1, 1, 16, 16]));
  t.deepEqual(y.shape, [1, 4, 16, 16]);
  y.dispose();
  u.dispose();
  v.dispose();
  dispose(inputs);
  t.is(liveTensors(), start);
});

test.serial('a network is not changed while async calls use it', async (t) => {
  const u: Network = nets.UNet2D().train();
  const x = randn([8, 1, 64, 64]);
  const pending = u.forward(x);
  t.throws(() => u.eval(), { message: /UNet2D\.eval\(\): the network is busy with 1 async call\(s\); await them first/ });
  t.throws(() => u.to('cpu'), { message: /busy/ });
  t.throws(() => u.loadStateDict({}), { message: /busy/ });
  t.throws(() => u.dispose(), { message: /busy/ });
  await t.throwsAsync(() => u.forward(x), { message: /UNet2D\.forward\(\): the network is busy with 1 async call\(s\) that train it/ });
  const y = await pending;
  u.eval();
  // eval-mode forwards may overlap
  const [a, b] = await Promise.all([u.forward(x), u.forward(x)]);
  t.deepEqual(a.toArray(), b.toArray());
  // a train step holds both the network and the optimizer
  u.train();
  const opt = SGD(u, { lr: 0.01 });
  const labels = randint([8, 64, 64], 0, 4);
  const step = trainStep(u, opt, x, labels);
  t.throws(() => opt.step(), { message: /optimizer: busy with an async train step/ });
  await t.throwsAsync(() => trainStep(u, opt, x, labels), { message: /busy/ });
  t.true(Number.isFinite(await step));
  tidy(() => [x, y, a, b, labels]).forEach((z) => z.dispose());
  u.dispose();
  t.true(u.isDisposed);
  t.throws(() => u.parameterCount(), { message: /UNet2D\.parameterCount\(\): the network has been disposed/ });
  await t.throwsAsync(() => u.forward(ones([1, 1, 16, 16])), { message: /the network has been disposed/ });
});

test.serial('a NaN loss stops the step before the weights change', async (t) => {
  const u = nets.UNet2D({ features: [2, 2, 2, 2, 2], dropout: [0, 0, 0, 0, 0] }).train();
  const opt = SGD(u, { lr: 0.1 });
  const before = tidy(() => u.stateDict()['decoder.out_conv.weight'].clone());
  const x = tidy(() => ones([2, 1, 16, 16]).mul(Number.NaN));
  const y = randint([2, 16, 16], 0, 4);
  await t.throwsAsync(trainStep(u, opt, x, y), { message: /trainStep\(\): the loss is nan; the weights were not updated/ });
  const after = tidy(() => u.stateDict()['decoder.out_conv.weight'].clone());
  t.deepEqual(after.toArray(), before.toArray());
  tidy(() => [before, after, x, y]).forEach((z) => z.dispose());
  u.dispose();
});
