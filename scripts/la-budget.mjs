// The CPU-budget LA comparison of issue 7: supervised-only and VerSemi (one task) with the same labeled
// volumes, patch and total iterations (VerSemi: a third in stage 1, the rest in stage 2); validation
// Dice on the held-out volumes (this copy of LA has no test.list: the last 2 unlabeled ones).
//   node scripts/la-budget.mjs <LA root> <out dir> [iterations=600] [patch=64x64x48] [labeled=4] [recipes...]
import { setNumThreads, trainers } from '../dist/lib/index.js';
import { runBudget } from './budget-run.mjs';

const [root, out, iterationsArg, patchArg, labeledArg, ...methods] = process.argv.slice(2);
const iterations = Number(iterationsArg ?? 600);
const patch = (patchArg ?? '64x64x48').split('x').map(Number);
const labeled = Number(labeledArg ?? 4);
setNumThreads(Number(process.env.SEMISEG_THREADS ?? 2));
const stage1 = Math.round(iterations / 3);
const runs = {
  'supervised-la': { iterations, batchSize: 2, labeledBatch: 2 },
  'versemi-la': { pretrainIterations: stage1, iterations: iterations - stage1, batchSize: 4, labeledBatch: 2 },
};
await runBudget({ runs, common: { labeled, size: patch, validateEvery: Math.max(1, Math.round(iterations / 4)) }, makeData: () => trainers.laData(root, { labeled, patch }), out, recipes: methods });
