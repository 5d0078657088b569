// The command line: the demo trains both runs (loss falls, Dice printed), bad arguments give one line and exit 2.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('demo --json trains supervised-only and BCP and reports validation Dice for three classes', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-demo-'));
  const r = run('demo', '--iterations', '45', '--size', '32', '--json', '--threads', '1', '--out', out);
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.true(lines.some((l) => l.type === 'iteration' && l.stage === 'pretrain'), 'BCP pre-training progress');
  const result = lines.at(-1)! as { event: string; runs: { method: string; perClass: number[]; dice: number; firstLoss: number; lastLoss: number }[] };
  t.is(result.event, 'result');
  t.deepEqual(result.runs.map((x) => x.method), ['supervised', 'bcp']);
  for (const run of result.runs) {
    t.is(run.perClass.length, 3);
    t.true(run.lastLoss < run.firstLoss, `${run.method} loss ${run.firstLoss} -> ${run.lastLoss}`);
    t.true(Math.abs(run.dice - run.perClass.reduce((a, b) => a + b, 0) / 3) < 1e-9);
  }
  t.true(existsSync(join(out, 'bcp', 'best.ckpt')) && existsSync(join(out, 'supervised', 'final.ckpt')));
});

test('demo prints a human summary', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-demo-'));
  const r = run('demo', '--iterations', '30', '--size', '32', '--out', out);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /semiseg demo: supervised-only vs BCP, 30 iterations each on synthetic slices/);
  t.regex(r.stdout, /supervised +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\(\d+, \d+ s\)/);
  t.regex(r.stdout, /bcp +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d/);
});

for (const [args, message] of [
  [['demo', '--iterations', 'abc'], /option '--iterations <n>' argument 'abc' is invalid. expected an integer between 30 and 1000000/],
  [['demo', '--size', '8'], /argument '8' is invalid. expected an integer between 32 and 512/],
  [['train', '--data', 'synthetic'], /required option '--recipe <name>' not specified/],
  [['train', '--recipe', 'nope', '--data', 'synthetic'], /--recipe: unknown recipe 'nope' \(one of supervised-acdc, mt-acdc, bcp-acdc, coda-acdc/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic', '--batch-size', '5'], /option 'labeledBatch' must be at most batchSize \(5\), got 12/],
  [['train', '--recipe', 'bcp-acdc', '--data', '/no/such/dir'], /--data: '\/no\/such\/dir' does not exist/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic', '--set', 'emaAlpah=0.9'], /unknown key 'emaAlpah'/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic', '--size', '8'], /expected sizes like 256 or 256x256 \(each >= 16\), got '8'/],
  [['evaluate', '--checkpoint', 'x.ckpt', '--data', 'synthetic', '--split', 'train'], /--split: expected val or test, got 'train'/],
  [['predict', 'in.png', '--checkpoint', 'x.ckpt', '-o', 'out.png'], /--output: 'out.png' must end in .nii or .nii.gz/],
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
