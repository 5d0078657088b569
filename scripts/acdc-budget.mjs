// The CPU-budget ACDC comparison of issues 6 and 7: supervised-only, BCP, Co-DA, ICL and ACTION with 7 labeled patients,
// reduced slice size and iterations (same budget for each), validation Dice on val.list.
//   node scripts/acdc-budget.mjs <ACDC root> <out dir> [iterations=600] [size=128]
import { setNumThreads, trainers } from '../dist/lib/index.js';
import { runBudget } from './budget-run.mjs';

const [root, out, iterationsArg, sizeArg, ...methods] = process.argv.slice(2);
const iterations = Number(iterationsArg ?? 600);
const size = Number(sizeArg ?? 128);
setNumThreads(2);
const runs = {
  'supervised-acdc': { iterations, batchSize: 4, labeledBatch: 4 },
  'bcp-acdc': { pretrainIterations: Math.round(iterations / 3), iterations: iterations - Math.round(iterations / 3), batchSize: 8, labeledBatch: 4 },
  // the ramp-up (200 units of 150 iterations, for 30k iterations) scaled to the budget
  'coda-acdc': { iterations, batchSize: 8, labeledBatch: 4, rampup: Math.max(1, Math.round((200 * iterations) / 30000)) },
  'icl-acdc': { iterations, batchSize: 8, labeledBatch: 4 },
  // stages 1 and 2 a sixth of the budget each; CPU-sized anco: a 64-channel representation at a quarter
  // of the slice size, 64 queries and 64 negatives per class
  'action-acdc': {
    iterations: iterations - 2 * Math.round(iterations / 6),
    batchSize: 8,
    labeledBatch: 4,
    action: { ...trainers.RECIPES['action-acdc'].action, globalIterations: Math.round(iterations / 6), localIterations: Math.round(iterations / 6), representation: 64, representationScale: 0.25, queries: 64, negatives: 64 },
  },
};
await runBudget({ runs, common: { labeled: 7, size: [size, size], validateEvery: 100 }, makeData: () => trainers.acdcData(root, { patients: 7, size: [size, size] }), out, recipes: methods });
