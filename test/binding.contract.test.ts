// The raw binding's contract (lib/native.ts declares it): what it exports, what it takes, and that
// malformed calls from JS throw instead of aborting.
import test from 'ava';

import { native } from '../lib/native.js';
import { buildInfo, cuda, getNumThreads, setNumThreads } from '../lib/index.js';

test('the addon exports what lib/native.ts declares', (t) => {
  for (const name of ['op', 'opAsync', 'fromData', 'toData', 'toDataAsync', 'liveTensors', 'externalMemory', 'manualSeed',
    'setNumThreads', 'getNumThreads', 'isGradEnabled', 'setGradEnabled', 'cudaIsAvailable', 'cudaDeviceCount', 'cudaSynchronize', 'opNames', 'buildInfo'])
    t.is(typeof (native as unknown as Record<string, unknown>)[name], 'function', name);
  const ops = native.opNames();
  for (const op of ['add', 'matmul', 'sum', 'softmax', 'interpolate', 'oneHot', 'backward', 'cat', 'stack', 'where'])
    t.true(ops.includes(op), op);
  for (const op of ['bidirectionalCopyPaste', 'regionWeightedCeDice', 'marginalAlign', 'classMarginals', 'overExpectationCe'])
    t.true(ops.includes(op) && ops.includes(`composite.${op}`) === (op !== 'regionWeightedCeDice'), op);
});

test('buildInfo names the LibTorch the addon was built against', (t) => {
  const info = buildInfo();
  t.regex(info.torchVersion, /^2\.\d+/);
  t.is(info.napiVersion, 8);
  t.is(typeof info.cuda, 'boolean');
  t.false(cuda.isAvailable() && !info.cuda);
  t.is(cuda.deviceCount() > 0, cuda.isAvailable());
  if (!cuda.isAvailable()) t.throws(() => cuda.synchronize(), { message: /cuda.synchronize\(\): this LibTorch has no CUDA or no GPU is visible/ });
  t.throws(() => cuda.synchronize(-1), { message: /cuda.synchronize\(\): argument 'device' must be/ });
});

test('malformed raw calls throw JS errors', (t) => {
  const n = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  t.throws(() => n.op('noSuchOp', []), { message: "unknown tensor op 'noSuchOp'" });
  t.throws(() => n.op(42, []), { instanceOf: TypeError, message: 'op name must be a string' });
  t.throws(() => n.op('add', 'x'), { instanceOf: TypeError, message: 'op arguments must be an array' });
  t.throws(() => n.op('add', [{}, 1]), { instanceOf: TypeError, message: /argument 0 has a type the native layer does not take/ });
  t.throws(() => n.op('add', [1, 1]), { message: "add(): argument 'input' must be a tensor, got an integer" });
  t.throws(() => n.op('zeros', [[1.5], 'float32', 'cpu']), { instanceOf: TypeError, message: /element 0 is a number/ });
  t.throws(() => n.op('zeros', [[2], 'float32']), { message: "zeros(): argument 'device' must be a string, got nothing" });
  t.throws(() => n.fromData([1, 2], [2], 'float32', 'float32', 'cpu', false), { instanceOf: TypeError, message: 'data must be a TypedArray' });
  t.throws(() => n.fromData(new Float32Array(3), [2], 'float32', 'float32', 'cpu', false), { message: /needs 2 elements but the data holds 3/ });
  t.throws(() => n.fromData(new Float32Array(2), [2], 'int64', 'float32', 'cpu', false), { instanceOf: TypeError, message: /element size does not match/ });
  t.throws(() => n.toData({}), { instanceOf: TypeError, message: 'tensor must be a tensor handle' });
  t.throws(() => n.op('add', [[1n << 70n], 1]), { instanceOf: TypeError });
  t.throws(() => n.manualSeed(-3), { instanceOf: RangeError, message: 'seed must be an integer >= 0' });
});

test('setNumThreads sets the intra-op thread count', (t) => {
  const prev = getNumThreads();
  setNumThreads(1);
  t.is(getNumThreads(), 1);
  setNumThreads(prev);
  t.is(getNumThreads(), prev);
});
