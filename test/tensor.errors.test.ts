// Bad input never aborts the process: each case throws a JS error of the right class whose message
// names the argument (JS-side checks) or carries LibTorch's message (native checks, no C++ backtrace).
import test from 'ava';

import {
  arange,
  cat,
  interpolate,
  liveTensors,
  manualSeed,
  noGrad,
  ones,
  oneHot,
  rand,
  randint,
  setNumThreads,
  stack,
  tensor,
  tidy,
  where,
  zeros,
  type Tensor,
} from '../lib/index.js';

type Ctor = typeof Error | typeof TypeError | typeof RangeError;
interface BadCase {
  name: string;
  fn: () => unknown;
  error: Ctor;
  message: RegExp;
}

const x = ones([2, 3]);
const disposed = ones([2]);
disposed.dispose();
const any = (v: unknown) => v as never;

const cases: BadCase[] = [
  // shapes
  { name: 'matmul shape mismatch', fn: () => x.matmul(x), error: Error, message: /mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/ },
  { name: 'reshape to the wrong numel', fn: () => x.reshape([4, 2]), error: Error, message: /shape '\[4, 2\]' is invalid for input of size 6/ },
  { name: 'broadcast mismatch', fn: () => x.add(ones([4])), error: Error, message: /size of tensor a \(3\) must match the size of tensor b \(4\)/ },
  { name: 'cat of different shapes', fn: () => cat([x, ones([2, 4])], 0), error: Error, message: /Sizes of tensors must match/ },
  { name: 'ragged nested array', fn: () => tensor([[1, 2], [3]]), error: RangeError, message: /tensor\(\): argument 'data\[1\]' must be an array of length 2 \(data is ragged\)/ },
  { name: 'shape option of the wrong size', fn: () => tensor([1, 2, 3], { shape: [2, 2] }), error: RangeError, message: /tensor\(\): argument 'shape' must be a shape of 3 elements/ },
  { name: 'interpolate of a 2-D tensor', fn: () => interpolate(x, { size: 4 }), error: Error, message: /interpolate\(\): argument 'input' must be 3-D, 4-D or 5-D/ },
  { name: 'interpolate with size and scale', fn: () => interpolate(ones([1, 1, 2, 2]), { size: 4, scaleFactor: 2 }), error: RangeError, message: /exactly one of size and scaleFactor/ },
  { name: 'bilinear on a 5-D tensor', fn: () => interpolate(ones([1, 1, 2, 2, 2]), { size: 4, mode: 'bilinear' }), error: Error, message: /must be 'nearest', 'nearest-exact' or 'trilinear' for a 5-D input, got 'bilinear'/ },
  { name: 'stack of nothing', fn: () => stack([]), error: RangeError, message: /stack\(\): argument 'tensors' must be a non-empty array of Tensors, got an array of length 0/ },
  // dtypes
  { name: 'where with a float condition', fn: () => where(x, 1, 0), error: Error, message: /where expected condition to be a boolean tensor/ },
  { name: 'oneHot of floats', fn: () => oneHot(x, 3), error: Error, message: /one_hot is only applicable to index tensor/ },
  { name: 'oneHot label out of range', fn: () => oneHot(tensor([5], { dtype: 'int64' }), 3), error: Error, message: /Class values must be smaller than num_classes/ },
  { name: 'mean of integers', fn: () => randint([3], 0, 5).mean(), error: Error, message: /mean\(\): could not infer output dtype/ },
  { name: 'requiresGrad on integers', fn: () => tensor([1], { dtype: 'int32', requiresGrad: true }), error: TypeError, message: /tensor\(\): option 'requiresGrad' needs a floating-point dtype; only those have gradients, got int32/ },
  { name: 'unknown dtype', fn: () => zeros([2], { dtype: any('float128') }), error: RangeError, message: /zeros\(\): argument 'dtype' must be one of 'float32', .*got the string "float128"/ },
  { name: 'mixed numbers and booleans', fn: () => tensor(any([1, true])), error: TypeError, message: /must be a number like the first, got true/ },
  { name: 'a string as data', fn: () => tensor(any('abc')), error: TypeError, message: /tensor\(\): argument 'data' must be an array, a number, a boolean or a numeric TypedArray, got the string "abc"/ },
  // NaN, negative and non-integer sizes or dims
  { name: 'NaN size', fn: () => zeros([NaN, 2]), error: RangeError, message: /zeros\(\): argument 'shape\[0\]' must be an integer >= 0, got NaN/ },
  { name: 'negative size', fn: () => ones([2, -3]), error: RangeError, message: /ones\(\): argument 'shape\[1\]' must be an integer >= 0, got -3/ },
  { name: 'fractional size', fn: () => rand([2.5]), error: RangeError, message: /rand\(\): argument 'shape\[0\]' must be an integer >= 0, got 2.5/ },
  { name: 'shape is not an array', fn: () => zeros(any(5)), error: TypeError, message: /zeros\(\): argument 'shape' must be an array of integers, got 5/ },
  { name: 'negative dim out of range', fn: () => x.sum(-5), error: RangeError, message: /Dimension out of range \(expected to be in range of \[-2, 1\], but got -5\)/ },
  { name: 'dim out of range', fn: () => x.softmax(2), error: RangeError, message: /Dimension out of range/ },
  { name: 'NaN dim', fn: () => x.argmax(NaN), error: RangeError, message: /argmax\(\): argument 'dim' must be an integer, got NaN/ },
  { name: 'narrow past the end', fn: () => x.narrow(1, 2, 5), error: Error, message: /start \(2\) \+ length \(5\) exceeds dimension size \(3\)/ },
  { name: 'negative narrow length', fn: () => x.narrow(1, 0, -1), error: RangeError, message: /narrow\(\): argument 'length' must be an integer >= 0, got -1/ },
  { name: 'permute with a repeated dim', fn: () => x.permute([0, 0]), error: Error, message: /permute\(\): duplicate dims are not allowed/ },
  { name: 'slice step 0', fn: () => x.slice(0, 0, 1, 0), error: RangeError, message: /slice\(\): argument 'step' must be an integer >= 1, got 0/ },
  { name: 'indexSelect index out of range', fn: () => x.indexSelect(1, tensor([7], { dtype: 'int64' })), error: Error, message: /INDICES element is out of DATA bounds, id=7 axis_dim=3/ },
  { name: 'arange with step 0', fn: () => arange(0, 5, 0), error: RangeError, message: /arange\(\): argument 'step' must be a non-zero number, got 0/ },
  { name: 'randint with high <= low', fn: () => randint([2], 5, 5), error: RangeError, message: /randint\(\): argument 'high' must be an integer >= 6, got 5/ },
  // disposed tensors
  { name: 'a disposed tensor as input', fn: () => disposed.sum(), error: Error, message: /sum\(\): argument 'input' is a disposed tensor/ },
  { name: 'a disposed tensor as operand', fn: () => x.mul(disposed), error: Error, message: /mul\(\): argument 'other' is a disposed tensor/ },
  { name: 'a disposed tensor inside cat', fn: () => cat([x, disposed]), error: Error, message: /cat\(\): argument 'tensors\[1\]' is a disposed tensor/ },
  { name: 'reading a disposed tensor', fn: () => disposed.toArray(), error: Error, message: /toArray\(\): argument 'input' is a disposed tensor/ },
  { name: 'shape of a disposed tensor', fn: () => disposed.shape, error: Error, message: /shape\(\): argument 'input' is a disposed tensor/ },
  // devices
  { name: 'CUDA on a machine without it', fn: () => zeros([2], { device: 'cuda' }), error: Error, message: /argument 'device' is 'cuda' but CUDA is not available|only \d+ CUDA device/ },
  { name: 'an unknown device', fn: () => zeros([2], { device: any('gpu') }), error: RangeError, message: /zeros\(\): argument 'device' must be 'cpu', 'cuda' or 'cuda:N', got the string "gpu"/ },
  { name: 'to() an unknown target', fn: () => x.to(any('tpu')), error: RangeError, message: /to\(\): argument 'target' must be a dtype \(float32, float64, float16, bfloat16, int32, int64, uint8, bool\) or a device \('cpu', 'cuda', 'cuda:N'\), got 'tpu'/ },
  { name: 'cuda:99', fn: () => x.to('cuda:99'), error: Error, message: /CUDA is not available|only \d+ CUDA device/ },
  // huge sizes
  { name: 'a 4 EB allocation', fn: () => zeros([1e6, 1e6, 1e6]), error: Error, message: /can't allocate memory|not enough memory/ },
  { name: 'a size past 2^53', fn: () => zeros([2 ** 60]), error: RangeError, message: /must be an integer >= 0, got 1152921504606847000/ },
  { name: 'an int64 overflow of elements', fn: () => tensor(new Float32Array(0), { shape: [2 ** 31, 2 ** 31, 2 ** 31] }), error: RangeError, message: /tensor\(\): argument 'shape' must be a shape of 0 elements/ },
  { name: 'huge rand', fn: () => rand([4e9, 4e9]), error: Error, message: /Storage size calculation overflowed with sizes=\[4000000000, 4000000000\]/ },
  { name: 'an empty shape whose other sizes overflow', fn: () => tensor(new Float32Array(0), { shape: [2 ** 40, 2 ** 40, 0] }), error: Error, message: /Storage size calculation overflowed/ },
  // wrong argument kinds
  { name: 'a string operand', fn: () => x.add(any('1')), error: TypeError, message: /add\(\): argument 'other' must be a Tensor, a number or a boolean, got the string "1"/ },
  { name: 'a plain object as a tensor', fn: () => x.matmul(any({})), error: TypeError, message: /matmul\(\): argument 'other' must be a Tensor, got an object/ },
  { name: 'keepdim not boolean', fn: () => x.sum(0, any('yes')), error: TypeError, message: /sum\(\): argument 'keepdim' must be a boolean, got the string "yes"/ },
  { name: 'negative seed', fn: () => manualSeed(-1), error: RangeError, message: /manualSeed\(\): argument 'seed' must be an integer >= 0, got -1/ },
  { name: 'zero threads', fn: () => setNumThreads(0), error: RangeError, message: /setNumThreads\(\): argument 'n' must be an integer between 1 and 1024, got 0/ },
  { name: 'noGrad without a function', fn: () => noGrad(any(3)), error: TypeError, message: /noGrad\(\): argument 'fn' must be a function, got 3/ },
  { name: 'backward of a tensor without grad', fn: () => x.sum().backward(), error: Error, message: /does not require grad/ },
  { name: 'backward of a non-scalar', fn: () => rand([3], { requiresGrad: true }).mul(2).backward(), error: Error, message: /a gradient is needed for a non-scalar tensor/ },
  { name: 'item of many elements', fn: () => x.item(), error: Error, message: /item\(\): the tensor must have exactly one element, got 6/ },
];

test(`${cases.length} bad inputs throw clear errors and leave the process alive`, (t) => {
  t.true(cases.length >= 20);
  const start = liveTensors();
  for (const c of cases) {
    tidy(() => {
      const err = t.throws(c.fn, { instanceOf: c.error, message: c.message }, c.name);
      if (err) t.false(/Exception raised from|\.cpp:\d+ \(most recent call first\)/.test(err.message), `${c.name}: backtrace leaked`);
    });
  }
  t.is(liveTensors(), start);
  // the process is alive and the library still computes
  const r = tidy(() => ones([2, 2]).matmul(ones([2, 2])).sum().item());
  t.is(r, 8);
});

test('async errors reject with the LibTorch message and a stack through user code', async (t) => {
  const a = ones([2, 3]);
  async function userCode(): Promise<Tensor> {
    return a.matmulAsync(a);
  }
  const err = await t.throwsAsync(userCode(), { instanceOf: Error, message: /mat1 and mat2 shapes cannot be multiplied/ });
  t.regex(err!.stack ?? '', /userCode/);
  const disposedErr = await t.throwsAsync(async () => disposed.matmulAsync(a), { message: /matmulAsync\(\): argument 'input' is a disposed tensor/ });
  t.truthy(disposedErr);
  a.dispose();
});

test.after.always(() => {
  x.dispose();
});
