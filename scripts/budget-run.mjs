// The loop the CPU-budget comparisons share (acdc-budget.mjs, la-budget.mjs): each recipe with its
// overrides on fresh data, progress lines, results.json after every recipe, best Dice per recipe at the end.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { trainers } from '../dist/lib/index.js';

/** runs: recipe -> overrides; common: overrides for all; makeData(): a fresh TrainData; recipes: which to run (default all). */
export async function runBudget({ runs, common, makeData, out, recipes }) {
  const results = {};
  for (const recipe of recipes.length ? recipes : Object.keys(runs)) {
    const config = trainers.resolveConfig(recipe, { ...common, ...runs[recipe] });
    const data = makeData();
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
}
