/**
 * A training process for the checkpoint tests:
 *   node train-child.js DIR TOTAL SAVE_EVERY [--resume | --stall-after N]
 * Trains a small U-Net (dropout on, so the RNG state matters) with SGD and a poly schedule on batches that
 * depend only on the iteration, saving DIR/run.ckpt every SAVE_EVERY iterations (printing "saved N"),
 * and DIR/final.pt at the end ("done"). With --stall-after N it stops training after iteration N and
 * rewrites its checkpoint in a loop until it is killed (so a kill lands in the middle of a write).
 */
import { join } from 'node:path';

import {
  SGD,
  loadCheckpoint,
  lrAt,
  manualSeed,
  nets,
  poly,
  saveCheckpoint,
  setNumThreads,
  tensor,
  tidy,
  trainStep,
  writeTorchStateDict,
} from '../../lib/index.js';
import { prng } from '../../lib/demo/synthetic.js';

const [dir, totalArg, everyArg, flag, flagArg] = process.argv.slice(2);
const total = Number(totalArg);
const every = Number(everyArg);
setNumThreads(1);
manualSeed(2024);
const net = nets.UNet2D({ features: [4, 8, 16, 32, 64] }).train();
const opt = SGD(net, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4 });
const schedule = poly(0.05, total);
const ckpt = join(dir, 'run.ckpt');

function batch(it: number) {
  const r = prng(1000 + it);
  const x = tensor(Float32Array.from({ length: 4 * 32 * 32 }, () => r()), { shape: [4, 1, 32, 32] });
  const y = tensor(Int32Array.from({ length: 4 * 32 * 32 }, () => Math.floor(r() * 4)), { shape: [4, 32, 32], dtype: 'int64' });
  return { x, y };
}

let start = 0;
if (flag === '--resume') start = (await loadCheckpoint(ckpt, { network: net, optimizer: opt })).iteration;
for (let it = start; it < total; it++) {
  opt.setLr(lrAt(schedule, it));
  const { x, y } = batch(it);
  await trainStep(net, opt, x, y);
  tidy(() => [x, y]).forEach((t) => t.dispose());
  if ((it + 1) % every === 0) {
    await saveCheckpoint(ckpt, { network: net, optimizer: opt, iteration: it + 1, schedule });
    console.log(`saved ${it + 1}`);
  }
  if (flag === '--stall-after' && it + 1 === Number(flagArg)) {
    for (;;) await saveCheckpoint(ckpt, { network: net, optimizer: opt, iteration: it + 1, schedule });
  }
}
const sd = net.stateDict();
await writeTorchStateDict(join(dir, 'final.pt'), sd);
console.log('done');
