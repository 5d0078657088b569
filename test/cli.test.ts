// The command line: the demo trains both runs (loss falls, Dice printed), bad arguments give one line and exit 2.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readH5, readNifti } from '../lib/index.js';
import { dataDir } from './helpers/data.js';
import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('demo --json trains supervised-only and BCP and reports validation Dice for three classes', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-demo-'));
  const r = run('demo', '--data', 'synthetic', '--iterations', '45', '--size', '32', '--json', '--threads', '1', '--out', out);
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

test('demo on the bundled hippocampus data: supervised-only and BCP on 6 labeled volumes, Dice per class and the difference', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-demo-'));
  const r = run('demo', '--iterations', '30', '--threads', '1', '--out', out);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /on the bundled Decathlon hippocampus MRI \(40 volumes, CC BY-SA 4\.0\)/);
  t.regex(r.stdout, /6 labeled, 26 unlabeled volumes, 8 validation volumes \(held out\)/);
  t.regex(r.stdout, /validation Dice % +Anterior +Posterior +mean/);
  t.regex(r.stdout, /supervised +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d/);
  t.regex(r.stdout, /bcp - supervised +[+-]\d+\.\d\d +[+-]\d+\.\d\d +[+-]\d+\.\d\d/);
  t.true(existsSync(join(out, 'bcp', 'best.ckpt')));
});

test('demo prints a human summary', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-demo-'));
  const r = run('demo', '--data', 'synthetic', '--iterations', '30', '--size', '32', '--out', out);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /semiseg demo: supervised-only vs BCP, 30 iterations each on synthetic slices/);
  t.regex(r.stdout, /supervised +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\(\d+, \d+ s\)/);
  t.regex(r.stdout, /bcp +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d/);
  // run again into the same folder: each run's folder holds the new run only (its log was appended to)
  const again = run('demo', '--data', 'synthetic', '--iterations', '30', '--size', '32', '--out', out);
  t.is(again.status, 0, again.stderr);
  for (const method of ['supervised', 'bcp']) {
    const events = readFileSync(join(out, method, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    t.is(events.filter((e) => e.type === 'start').length, 1, `${method}: one run in log.jsonl`);
    t.is(events.filter((e) => e.type === 'done').length, 1);
  }
});

for (const [args, message] of [
  [['demo', '--iterations', 'abc'], /option '--iterations <n>' argument 'abc' is invalid. expected an integer between 30 and 1000000/],
  [['demo', '--size', '8'], /argument '8' is invalid. expected an integer between 16 and 512/],
  [['train', '--data', 'synthetic'], /give --recipe <name> or --method <name>/],
  [['train', '--method', 'nope', '--data', 'synthetic'], /--method: unknown method 'nope' \(one of supervised, mt, bcp, coda, icl, action, versemi\)/],
  [['demo', '--network', '3d'], /--network: expected UNet2D or VNet3D, got '3d'/],
  [['train', '--recipe', 'nope', '--data', 'synthetic'], /--recipe: unknown recipe 'nope' \(one of supervised-acdc, mt-acdc, bcp-acdc, coda-acdc/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic', '--batch-size', '5'], /option 'labeledBatch' must be at most batchSize \(5\), got 12/],
  [['train', '--recipe', 'bcp-acdc', '--data', '/no/such/dir'], /--data: '\/no\/such\/dir' does not exist/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic', '--set', 'emaAlpah=0.9'], /unknown key 'emaAlpah'/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic', '--size', '8'], /expected sizes like 256 or 256x256 \(each >= 16\), got '8'/],
  [['train', '--recipe', 'action-acdc', '--data', 'synthetic', '--size', '32', '--set', 'action.window=48'], /option 'action.window' must be at most every side of size \(32x32\), got 48/],
  [['train', '--recipe', 'bcp-acdc', '--data', 'synthetic,synthetic'], /--data: several folders \(one task each\) are for the versemi recipes, not 'bcp-acdc'/],
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
  const parsed = JSON.parse(info.stdout) as { torchVersion: string; cuda: boolean; cpuCache: boolean };
  t.regex(parsed.torchVersion, /^2\./);
  t.is(parsed.cpuCache, process.env.SEMISEG_CPU_CACHE !== '0');
  const v = run('--version');
  t.is(v.status, 0);
  t.regex(v.stdout, /^\d+\.\d+\.\d+/);
});

test('train, then evaluate and predict with its checkpoint (real ACDC data)', async (t) => {
  if (!dataDir) return t.pass('no ../shared/data');
  const out = mkdtempSync(join(tmpdir(), 'semiseg-cli-'));
  const acdc = join(dataDir, 'ACDC');
  const tr = run('train', '--recipe', 'supervised-acdc', '--data', acdc, '--labeled', '1', '--iterations', '4', '--batch-size', '2', '--labeled-batch', '2', '--size', '32', '--validate-every', '4', '--val-cases', '1', '--out', out, '--json', '--threads', '1');
  t.is(tr.status, 0, tr.stderr);
  const events = tr.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  t.deepEqual([...new Set(events.map((e) => e.type))], ['start', 'stage', 'iteration', 'checkpoint', 'validation', 'done']);
  const ckpt = join(out, 'best.ckpt');
  const ev = run('evaluate', '--checkpoint', ckpt, '--data', acdc, '--split', 'val', '--json', '--out', join(out, 'val'));
  t.is(ev.status, 0, ev.stderr);
  const summary = JSON.parse(ev.stdout) as { cases: number; classes: Record<string, { dice: number; hd95: number }>; mean: { dice: number } };
  t.is(summary.cases, 20);
  t.deepEqual(Object.keys(summary.classes), ['1', '2', '3']);
  t.true(existsSync(join(out, 'val.json')) && existsSync(join(out, 'val.csv')));
  t.is(readFileSync(join(out, 'val.csv'), 'utf8').trim().split('\n').length, 1 + 20 * 3);
  const input = join(acdc, 'data', 'patient002_frame01.h5');
  const pr = run('predict', input, '--checkpoint', ckpt, '-o', join(out, 'p.nii.gz'), '--png', join(out, 'p.png'));
  t.is(pr.status, 0, pr.stderr);
  const written = await readNifti(join(out, 'p.nii.gz'));
  const source = await readH5(input);
  t.deepEqual(written.data.shape, source.image.shape);
  t.deepEqual([...readFileSync(join(out, 'p.png')).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const missing = run('evaluate', '--checkpoint', join(out, 'none.ckpt'), '--data', acdc);
  t.is(missing.status, 1);
  t.regex(missing.stderr, /^semiseg: .*none\.ckpt/);
  t.false(/\n\s+at /.test(missing.stderr));
});
