// Step parity with the PyTorch reference (the harness's parity mode): one BCP iteration (ACDC U-Net, LA
// V-Net) and one Co-DA iteration in semiseg's trainers and in benchmarks/reference/bench_steps.py, from
// identical weights, batch, box and generator seed, give the same loss (1e-4 relative) and the same
// updated weights and buffers (1e-4). A control run with another dropout seed must not match, so the
// comparison is known to see a difference.
// Serial: the optimizer guard refuses concurrent steps.
import test from 'ava';

import { Reference } from '../benchmarks/harness.js';
import { stepParity } from '../benchmarks/parity.js';
import { setNumThreads } from '../lib/index.js';
import { referencePython } from './helpers/reference.js';

setNumThreads(1);
let ref: Reference | null = null;

test.before(async () => {
  if (!referencePython) return;
  ref = new Reference(referencePython, 'bench_steps.py');
  await ref.send({ cmd: 'setup', threads: 1, device: 'cpu' });
});
test.after.always(() => ref?.close());

const cases: Array<[string, number[]]> = [
  ['bcp-acdc-step', [4, 1, 64, 64]],
  ['bcp-la-step', [4, 1, 32, 32, 32]],
  ['coda-acdc-step', [4, 1, 64, 64]],
];

for (const [name, shape] of cases) {
  test.serial(`${name}: one iteration equals the PyTorch reference (loss and updated weights)`, async (t) => {
    if (!ref) return t.pass('skipped: no python with torch');
    const r = await stepParity(ref, name, shape);
    t.log(`loss ${r.loss.semiseg} vs ${r.loss.reference}; weights max |diff| ${r.weights.maxAbsDiff.toExponential(2)} (${r.weights.worst}, ${r.weights.compared} tensors)`);
    t.true(r.loss.relDiff < 1e-4, `loss ${r.loss.semiseg} vs ${r.loss.reference}`);
    t.true(r.weights.maxAbsDiff < 1e-4, `${r.weights.worst}: ${r.weights.maxAbsDiff}`);
    t.true(r.weights.compared > 100);
  });
}

test.serial('the parity check sees a difference: another dropout seed on the reference side does not match', async (t) => {
  if (!ref) return t.pass('skipped: no python with torch');
  const r = await stepParity(ref, 'bcp-acdc-step', [4, 1, 64, 64], 1234, 999);
  t.true(r.loss.relDiff > 1e-4 || r.weights.maxAbsDiff > 1e-4, JSON.stringify(r));
});
