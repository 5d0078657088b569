/**
 * Step parity: one BCP or Co-DA training iteration in semiseg (the trainers' own step) and in the PyTorch
 * reference (benchmarks/reference/bench_steps.py), from identical weights, batch, box and seed (the same
 * LibTorch generator state, so dropout draws the same masks on both sides; the networks in the default
 * memory layout, as channels-last changes the order of those draws). Compares the loss and every updated
 * weight and buffer. Used by `npm run bench -- --parity` and by test/parity.steps.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { dispose, manualSeed, randint, randn, readTorchStateDict, tidy, trainers, writeTorchStateDict, type StateDict } from '../lib/index.js';
import type { Reference } from './harness.js';

export const PARITY_RECIPES: Record<string, string> = {
  'bcp-acdc-step': 'bcp-acdc',
  'bcp-la-step': 'bcp-la',
  'coda-acdc-step': 'coda-acdc',
};

export interface ParityResult {
  case: string;
  shape: number[];
  loss: { semiseg: number; reference: number; relDiff: number };
  /** Largest |semiseg - reference| over every updated weight and buffer, and where. */
  weights: { maxAbsDiff: number; worst: string; compared: number };
}

function maxAbsDiff(a: ArrayLike<number | bigint>, b: ArrayLike<number | bigint>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])));
  return m;
}

/**
 * One iteration of `caseName` at `shape` ([B, 1, ...spatial]) on the CPU, both sides; see the module comment.
 * `referenceSeed` other than `seed` is the control: the two sides then draw different dropout masks.
 */
export async function stepParity(ref: Reference, caseName: string, shape: number[], seed = 1234, referenceSeed = seed): Promise<ParityResult> {
  const recipe = PARITY_RECIPES[caseName];
  if (!recipe) throw new Error(`parity: unknown case '${caseName}' (one of ${Object.keys(PARITY_RECIPES).join(', ')})`);
  const [B, , ...spatial] = shape;
  // channels-last off: the layout changes the order in which dropout draws its mask from the generator, so
  // only the default layout can draw the same masks as the reference
  const config = trainers.resolveConfig(recipe, { batchSize: B, labeledBatch: B / 2, size: spatial, device: 'cpu', channelsLast: false });
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-parity-'));
  manualSeed(0);
  const method = trainers.buildMethod(config);
  const owned: StateDict[] = [];
  const batch = { images: randn(shape), labels: randint([B, ...spatial], 0, config.classes), indices: Array.from({ length: B }, (_, i) => i) };
  try {
    const stage = method.stages.find((s) => s.name === 'train')!;
    await stage.begin(false, null);
    const names = caseName.startsWith('bcp') ? ['student'] : ['net1', 'net2'];
    const init: StateDict = { x: batch.images, labels: batch.labels };
    for (const n of names) {
      const sd = method.networks[n].stateDict();
      owned.push(sd);
      for (const [k, v] of Object.entries(sd)) init[`${n}.${k}`] = v;
    }
    await writeTorchStateDict(join(dir, 'init.pt'), init);
    const box = caseName.startsWith('bcp') ? trainers.bcpBox(config, spatial, 1, 1) : undefined;
    const w = trainers.rampup(0, config.consistency, config.rampup);
    const theirs = await ref.send<{ loss: number; error?: string }>({ cmd: 'parity', case: caseName, shape, dir, seed: referenceSeed, lr: config.lr, box, w });
    if (theirs.error) throw new Error(`reference: ${theirs.error}`);
    manualSeed(seed);
    const ours = (await stage.step(batch, 1)).loss;
    const after = await readTorchStateDict(join(dir, 'reference_after.pt'));
    owned.push(after);
    let worst = '';
    let maxDiff = 0;
    let compared = 0;
    for (const [n, net] of Object.entries(method.networks)) {
      const sd = net.stateDict();
      owned.push(sd);
      for (const [k, v] of Object.entries(sd)) {
        const r = after[`${n}.${k}`];
        if (!r) throw new Error(`parity: the reference has no '${n}.${k}'`);
        const d = tidy(() => maxAbsDiff(v.data() as ArrayLike<number>, r.to(v.dtype).data() as ArrayLike<number>));
        compared++;
        if (d > maxDiff || !worst) [maxDiff, worst] = [d, `${n}.${k}`];
      }
    }
    return {
      case: caseName,
      shape,
      loss: { semiseg: ours, reference: theirs.loss, relDiff: Math.abs(ours - theirs.loss) / Math.max(1e-12, Math.abs(theirs.loss)) },
      weights: { maxAbsDiff: maxDiff, worst, compared },
    };
  } finally {
    owned.forEach((d) => dispose(d));
    dispose([batch.images, batch.labels]);
    method.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
