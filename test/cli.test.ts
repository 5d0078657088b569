// The command line: the demo trains (loss falls, Dice printed), bad arguments give one line and exit 2.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('demo --json trains: the loss falls and Dice is reported for three classes', (t) => {
  const r = run('demo', '--iterations', '150', '--json', '--threads', '1');
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const progress = lines.filter((l) => l.event === 'progress');
  t.is(progress.length, 6);
  t.is(progress.at(-1)!.iteration, 150);
  const result = lines.at(-1)! as { event: string; dice: number[]; meanDice: number; firstLoss: number; lastLoss: number };
  t.is(result.event, 'result');
  t.is(result.dice.length, 3);
  t.true(result.lastLoss < result.firstLoss / 3, `loss ${result.firstLoss} -> ${result.lastLoss}`);
  t.true(result.meanDice > 0.6, `mean Dice ${result.meanDice}`);
});

test('demo prints a human summary', (t) => {
  const r = run('demo', '--iterations', '5', '--size', '32');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /semiseg demo: 5 iterations on synthetic 32x32 slices/);
  t.regex(r.stdout, /Dice on 16 held-out slices: RV \d+\.\d\d {2}Myo \d+\.\d\d {2}LV \d+\.\d\d {2}mean \d+\.\d\d/);
});

for (const [args, message] of [
  [['demo', '--iterations', 'abc'], /option '--iterations <n>' argument 'abc' is invalid. expected an integer between 1 and 1000000/],
  [['demo', '--size', '8'], /argument '8' is invalid. expected an integer between 16 and 512/],
  [['--threads', '0', 'info'], /argument '0' is invalid. expected an integer between 1 and 1024/],
  [['train-everything'], /unknown command 'train-everything'/],
  [['demo', '--bogus'], /unknown option '--bogus'/],
] as [string[], RegExp][]) {
  test(`bad arguments: ${args.join(' ')}`, (t) => {
    const r = run(...args);
    t.is(r.status, 2);
    t.regex(r.stderr, message);
    t.false(/\n\s+at /.test(r.stderr), 'no stack trace');
  });
}

test('info and --version', (t) => {
  const info = run('info');
  t.is(info.status, 0);
  const parsed = JSON.parse(info.stdout) as { torchVersion: string; cuda: boolean };
  t.regex(parsed.torchVersion, /^2\./);
  const v = run('--version');
  t.is(v.status, 0);
  t.regex(v.stdout, /^\d+\.\d+\.\d+/);
});
