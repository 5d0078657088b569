// The CPU-budget LA comparison of issue 7: supervised-only and VerSemi (one task) with the same labeled
// volumes, patch and total iterations (VerSemi: a third in stage 1, the rest in stage 2); validation
// Dice on the held-out volumes (this copy of LA has no test.list: the last 2 unlabeled ones).
//   node scripts/la-budget.mjs <LA root> <out dir> [iterations=600] [patch=64x64x48] [labeled=4] [recipes...]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { setNumThreads, trainers } from '../dist/lib/index.js';

const [root, out, iterationsArg, patchArg, labeledArg, ...methods] = process.argv.slice(2);
const iterations = Number(iterationsArg ?? 600);
const patch = (patchArg ?? '64x64x48').split('x').map(Number);
const labeled = Number(labeledArg ?? 4);
setNumThreads(2);
const stage1 = Math.round(iterations / 3);
const runs = {
  'supervised-la': { iterations, batchSize: 2, labeledBatch: 2 },
  'versemi-la': { pretrainIterations: stage1, iterations: iterations - stage1, batchSize: 4, labeledBatch: 2 },
};
const results = {};
for (const recipe of methods.length ? methods : Object.keys(runs)) {
  const config = trainers.resolveConfig(recipe, { labeled, size: patch, validateEvery: Math.max(1, Math.round(iterations / 4)), ...runs[recipe] });
  const data = trainers.laData(root, { labeled, patch });
  const r = await trainers.train(config, {
    data,
    out: join(out, recipe),
    onEvent: (e) => {
      if (e.type === 'validation') console.log(`${recipe} ${e.stage} ${e.iteration}: val Dice ${e.dice.toFixed(4)} (best ${e.bestDice.toFixed(4)})`);
      if (e.type === 'iteration' && e.iteration % 50 === 0) console.log(`${recipe} ${e.stage} ${e.iteration}/${e.iterations} loss ${e.loss.toFixed(4)} eta ${e.etaSeconds.toFixed(0)} s`);
    },
  });
  data.dispose();
  results[recipe] = { best: r.best, validations: r.validations, seconds: r.seconds, config };
  writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.best?.dice])), null, 2));
