// The training progress reporter (lines mode, as in a log): the validation Dice shown beside each
// iteration is the current run's, also when one reporter serves several runs (semiseg demo trains two).
import test from 'ava';

import { progressReporter } from '../lib/cli/progress.js';
import type { TrainEvent } from '../lib/trainers/loop.js';

test('progress lines show the latest validation Dice of the current run only', (t) => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => void lines.push(s);
  try {
    const report = progressReporter('lines');
    const start = (recipe: string): TrainEvent => ({ type: 'start', recipe, method: 'x', data: 'd', stages: [{ name: 'train', iterations: 100 }] });
    const iteration = (stage: string, n: number): TrainEvent => ({ type: 'iteration', stage, iteration: n, iterations: 100, loss: 0.5, parts: {}, lr: 0.01, elapsedSeconds: 1, etaSeconds: 1 });
    report(start('first'));
    report(iteration('train', 50));
    report({ type: 'validation', stage: 'train', iteration: 50, dice: 0.7853, perClass: [0.7853], bestDice: 0.7853, improved: true });
    report(iteration('train', 100));
    report(start('second'));
    report(iteration('pretrain', 50));
  } finally {
    console.log = log;
  }
  t.regex(lines[1], /train 50\/100 .* val Dice - /);
  t.regex(lines[2], /^ {2}train 50: validation Dice 0\.7853 \(best 0\.7853\) \*$/);
  t.regex(lines[3], /train 100\/100 .* val Dice 0\.7853 /);
  t.regex(lines[4], /^semiseg train: second/);
  t.regex(lines[5], /pretrain 50\/100 .* val Dice - /, 'the first run\'s Dice is not shown in the second');
});
