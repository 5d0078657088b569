// `semiseg evaluate` finds a dataset's layout by the split's own list file: a test folder holding only
// test.list and data/ (no train_slices.list) evaluates, and a folder with no list names what is missing.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { nets, saveCheckpoint } from '../lib/index.js';
import { dataDir } from './helpers/data.js';
import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });

async function unetCheckpoint(dir: string): Promise<string> {
  const path = join(dir, 'unet.ckpt');
  const net = nets.UNet2D();
  await saveCheckpoint(path, { network: net, iteration: 0, extra: { config: { method: 'supervised', size: [64, 64], classes: 4 } } });
  net.dispose();
  return path;
}

test('evaluate --split test on an ACDC folder holding only test.list and data/', async (t) => {
  if (!dataDir) return t.pass('skipped: no ../shared/data');
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-layout-'));
  const folder = join(dir, 'acdc-test');
  mkdirSync(join(folder, 'data'), { recursive: true });
  symlinkSync(join(dataDir, 'ACDC', 'data', 'patient002_frame01.h5'), join(folder, 'data', 'patient002_frame01.h5')); // the real volume, linked, not copied
  writeFileSync(join(folder, 'test.list'), 'patient002_frame01\n');
  const ckpt = await unetCheckpoint(dir);
  for (const data of [folder, dir]) {
    // the folder itself, and a folder holding it under the layout's name (as ../shared/data holds ACDC/)
    if (data === dir) symlinkSync(folder, join(dir, 'ACDC'));
    const r = run('evaluate', '--checkpoint', ckpt, '--data', data, '--split', 'test', '--json', '--out', join(dir, 'eval'));
    t.is(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { cases: number; split: string; classes: Record<string, unknown> };
    t.is(summary.cases, 1);
    t.is(summary.split, 'test');
    t.deepEqual(Object.keys(summary.classes), ['1', '2', '3']);
    t.is(readFileSync(join(dir, 'eval.csv'), 'utf8').trim().split('\n').length, 1 + 3);
  }
});

test('evaluate on a folder with no list names the missing file in both layouts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-layout-'));
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const ckpt = await unetCheckpoint(dir);
  const r = run('evaluate', '--checkpoint', ckpt, '--data', empty, '--split', 'test');
  t.is(r.status, 2, r.stderr);
  t.is(r.stderr.trim(), `semiseg: --split test: neither '${join(empty, 'test.list')}' nor '${join(empty, 'ACDC', 'test.list')}' exists (the ACDC layout)`);
  const val = run('evaluate', '--checkpoint', ckpt, '--data', empty, '--split', 'val');
  t.is(val.status, 2);
  t.regex(val.stderr, /--split val: neither '.*empty\/val\.list' nor '.*empty\/ACDC\/val\.list' exists \(the ACDC layout\)/);
  const nowhere = run('evaluate', '--checkpoint', ckpt, '--data', join(dir, 'absent'), '--split', 'test');
  t.is(nowhere.status, 2);
  t.regex(nowhere.stderr, /--data: '.*absent' does not exist/);
});

test('train --data on a folder whose ACDC/ lacks the layout names both places it looked', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-layout-'));
  mkdirSync(join(dir, 'ACDC')); // an ACDC/ folder without train_slices.list
  const r = run('train', '--recipe', 'bcp-acdc', '--data', dir);
  t.is(r.status, 2);
  t.regex(r.stderr, /--data: neither '.*\/train_slices\.list' nor '.*\/ACDC\/train_slices\.list' exists \(the ACDC layout\)/);
});
