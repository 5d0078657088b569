// Variance across seeds of the BCP ACDC CPU budget (issue 19): 7 labeled patients, 128x128 slices,
// pre-training 400 + self-training 800 iterations, batch 8 (4 labeled), validation every 200 on the 20
// val.list volumes; one run per seed, sequentially, then the mean and spread of the best validation Dice.
//   node scripts/acdc-seeds.mjs <ACDC root> <out dir> [seed ...]   (default seeds 1337 2024 7)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { setNumThreads, trainers } from '../dist/lib/index.js';

const [root, out, ...seedArgs] = process.argv.slice(2);
if (!root || !out) throw new Error('usage: node scripts/acdc-seeds.mjs <ACDC root> <out dir> [seed ...]');
const seeds = seedArgs.length ? seedArgs.map(Number) : [1337, 2024, 7];
setNumThreads(Number(process.env.SEMISEG_THREADS ?? 2));
const results = {};
for (const seed of seeds) {
  const config = trainers.resolveConfig('bcp-acdc', { labeled: 7, size: [128, 128], pretrainIterations: 400, iterations: 800, batchSize: 8, labeledBatch: 4, validateEvery: 200, seed });
  const data = trainers.acdcData(root, { patients: 7, size: [128, 128] });
  try {
    const r = await trainers.train(config, {
      data,
      out: join(out, `seed-${seed}`),
      onEvent: (e) => {
        if (e.type === 'validation') console.log(`seed ${seed} ${e.stage} ${e.iteration}: val Dice ${e.dice.toFixed(4)} (best ${e.bestDice.toFixed(4)})`);
        if (e.type === 'iteration' && e.iteration % 100 === 0) console.log(`seed ${seed} ${e.stage} ${e.iteration}/${e.iterations} loss ${e.loss.toFixed(4)} eta ${e.etaSeconds.toFixed(0)} s`);
      },
    });
    results[seed] = { best: r.best, bests: r.bests, validations: r.validations, seconds: r.seconds };
  } finally {
    data.dispose();
  }
  writeFileSync(join(out, 'results.json'), JSON.stringify({ keepOptimizer: trainers.resolveConfig('bcp-acdc').bcp.keepOptimizer, results }, null, 2));
}
const best = seeds.map((s) => results[s].best.dice); // in the order of the seeds (Object.values sorts numeric keys)
const mean = best.reduce((a, b) => a + b, 0) / best.length;
const sd = Math.sqrt(best.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, best.length - 1));
console.log(JSON.stringify({ seeds, best, mean, sd, min: Math.min(...best), max: Math.max(...best) }));
