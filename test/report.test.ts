// semiseg compare and semiseg report: compare trains two recipes under one (tiny) budget, evaluates each
// best checkpoint and writes the report; its table holds exactly what `semiseg evaluate` computes for the
// same checkpoints; the report (one file) renders in headless Chromium with the network disabled, with
// no console errors, every chart drawn and the overlays decoded; partial run folders still give a report.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { decode } from 'fast-png';
import type { Browser } from 'playwright-core';

import { buildReport, formatCell, markdownTable, METRICS, tableRows, type RunSummary, type TableRow } from '../lib/index.js';
import { parseEvaluationCsv } from '../lib/report/report.js';
import { chartState, chromiumPath, decodedImages, launchChromium, screenshotDir, watchErrors } from './helpers/browser.js';
import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });
const root = mkdtempSync(join(tmpdir(), 'semiseg-report-'));
const out = join(root, 'compare');
const recipes = ['supervised-acdc', 'mt-acdc'];
let compare: ReturnType<typeof run>;
let browser: Browser | null = null;

test.before(async () => {
  // 40 iterations of 32x32 synthetic slices each: seconds, and Dice well above 0
  compare = run('compare', '--recipes', recipes.join(','), '--data', 'synthetic', '--iterations', '40', '--size', '32', '--validate-every', '20', '--labeled', '8', '--batch-size', '4', '--labeled-batch', '2', '--lr', '0.1', '--out', out);
  if (chromiumPath) browser = await launchChromium();
});

test.after.always(async () => {
  await browser?.close();
});

const browserTest = chromiumPath ? test.serial : test.serial.skip;

interface Embedded {
  table: TableRow[];
  boxes: { label: string; values: number[] }[] | null;
  runs: { name: string }[];
}

function embedded(html: string): Embedded {
  const m = /<script type="application\/json" id="semiseg-data">(.*?)<\/script>/s.exec(html);
  if (!m) throw new Error('no embedded data');
  return JSON.parse(m[1]) as Embedded;
}

test.serial("compare: its table's numbers are semiseg evaluate's for the same checkpoints", (t) => {
  t.is(compare.status, 0, compare.stderr);
  t.regex(compare.stdout, /semiseg compare: supervised-acdc, mt-acdc x 1 seed on synthetic; budget: labeled 8, iterations 40, size 32, batch 4, lr 0\.1, labeled batch 2, validate every 20; evaluation on the val split/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  const data = embedded(html);
  t.deepEqual(data.table.map((r) => r.recipe), recipes);
  for (const [i, recipe] of recipes.entries()) {
    const dir = join(out, `${recipe}-seed1337`);
    // a separate `semiseg evaluate` of the same checkpoint
    const r = run('evaluate', '--checkpoint', join(dir, 'best.ckpt'), '--data', 'synthetic', '--split', 'val', '--json', '--out', join(root, `again-${recipe}`));
    t.is(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { classes: Record<string, Record<string, number>>; mean: Record<string, number>; cases: number };
    const row = data.table[i];
    t.is(row.runs, 1);
    t.is(row.cases, summary.cases);
    t.true(summary.mean.dice > 0.2, `${recipe} learned something (Dice ${summary.mean.dice})`);
    for (const m of METRICS) {
      t.is(row.cells.mean[m][0], summary.mean[m], `${recipe} mean ${m}`);
      for (const c of ['1', '2', '3']) t.is(row.cells[c][m][0], summary.classes[c][m], `${recipe} class ${c} ${m}`);
      // and the page prints them
      const cell = new RegExp(`data-metric="${m}" data-class="mean">([^<]*)<`, 'g');
      const printed = [...html.matchAll(cell)].map((x) => x[1]);
      t.is(printed[i], formatCell(m, row.cells.mean[m], row.counts.mean[m]));
    }
    t.true(row.cells.mean.dice[1] >= 0, 'a std over cases');
    t.regex(compare.stdout, new RegExp(`val Dice ${(100 * summary.mean.dice).toFixed(2)} % over ${summary.cases} cases`));
  }
  // the Markdown table beside the report: a row per recipe with the same cells
  const md = readFileSync(join(out, 'report.md'), 'utf8').split('\n');
  t.is(md[0], '| method | recipe | labeled | runs | Dice % | Jaccard % | 95HD (voxels) | ASD (voxels) | RV / Myo / LV Dice % | iterations | wall time |');
  for (const [i, row] of data.table.entries()) {
    const cells = md[2 + i].split(' | ');
    t.is(cells[1], row.recipe);
    t.deepEqual(cells.slice(4, 8), METRICS.map((m) => formatCell(m, row.cells.mean[m], row.counts.mean[m])));
    t.is(cells[8], ['1', '2', '3'].map((c) => (100 * row.cells[c].dice[0]).toFixed(2)).join(' / '));
  }
  t.regex(compare.stdout, /written: .*report\.html, .*report\.md/);
  t.is(data.boxes?.length, 2);
  t.deepEqual(
    data.boxes!.map((b) => b.values.length),
    [2, 2],
  );
});

test.serial('buildReport (the package API) writes the table semiseg compare wrote', async (t) => {
  t.is(compare.status, 0, compare.stderr);
  const file = join(root, 'api.html');
  const { path, runs, rows } = await buildReport({ runs: recipes.map((r) => join(out, `${r}-seed1337`)), out: file, split: 'val', markdown: join(root, 'api.md') });
  t.is(readFileSync(join(root, 'api.md'), 'utf8'), markdownTable(rows));
  t.is(path, file);
  t.deepEqual(runs.map((r) => r.recipe), recipes);
  t.deepEqual(embedded(readFileSync(file, 'utf8')).table, embedded(readFileSync(join(out, 'report.html'), 'utf8')).table);
  t.deepEqual(rows, embedded(readFileSync(file, 'utf8')).table);
});

test.serial('evaluate --overlays: one decodable picture per case (image | reference | prediction rows)', (t) => {
  const dir = join(out, 'supervised-acdc-seed1337', 'best.ckpt.val.overlays');
  const files = readdirSync(dir).sort();
  t.deepEqual(files, ['synthetic_val_0.png', 'synthetic_val_1.png']);
  for (const f of files) {
    const png = decode(readFileSync(join(dir, f)));
    t.is(png.width, 3 * 32 + 2 * 2);
    t.true([32, 66, 100].includes(png.height), `rows of 32 pixels with 2-pixel gaps, got ${png.height}`);
    t.is(png.channels, 3);
  }
});

browserTest('report: one file that renders with the network disabled, every chart drawn, overlays decoded', async (t) => {
  const context = await browser!.newContext({ offline: true, viewport: { width: 1400, height: 900 } });
  t.teardown(() => context.close());
  const requests: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:')) return route.continue();
    requests.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  const errors = watchErrors(page);
  await page.goto(pathToFileURL(join(out, 'report.html')).href);
  await page.waitForFunction(() => (globalThis as unknown as { document: { body: { dataset: { ready?: string } } } }).document.body.dataset.ready === '1');
  t.deepEqual(requests, [], 'nothing fetched from the network');
  const charts = await chartState(page);
  t.deepEqual(Object.keys(charts).sort(), ['boxplot', 'dice', 'loss', 'lr', 'parts', 'time']);
  t.is(charts.loss.datasets, 2);
  t.is(charts.dice.datasets, 2 * 4);
  t.is(charts.boxplot.datasets, 1);
  t.is(charts.boxplot.points, 2, 'one box per method');
  for (const [id, c] of Object.entries(charts)) t.true(c.drawn, `chart ${id} drew nothing`);
  const images = await decodedImages(page);
  t.is(images.length, 2 * 3, 'best, median and worst case of each method');
  for (const im of images) t.is(im.width, 100);
  t.is(await page.locator('#comparison tbody tr').count(), 2 * 4, 'per method: RV, Myo, LV and the mean');
  t.regex(await page.locator('#comparison tbody tr').first().innerText(), /^Supervised \(labeled only\)\s+supervised-acdc\s+8 items\s+1\s+RV\s+\d+\.\d\d ± \d+\.\d\d/);
  t.regex(await page.locator('#comparison tbody tr').nth(3).innerText(), /^mean\s+\d+\.\d\d ± /);
  t.deepEqual(errors, []);
  const shot = join(screenshotDir(), 'report.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.log(`screenshot: ${shot}`);
});

browserTest('report: missing, empty and truncated run folders still give a page (with what is there)', async (t) => {
  const empty = join(root, 'empty');
  const truncated = join(root, 'truncated');
  mkdirSync(empty, { recursive: true });
  mkdirSync(truncated, { recursive: true });
  writeFileSync(join(empty, 'log.jsonl'), '');
  const text = readFileSync(join(out, 'mt-acdc-seed1337', 'log.jsonl'), 'utf8');
  writeFileSync(join(truncated, 'log.jsonl'), text.slice(0, Math.floor(text.length / 2)));
  const file = join(root, 'partial.html');
  const r = run('report', join(root, 'missing'), empty, truncated, '-o', file);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /report: '.*missing' does not exist \(shown as an empty run\)/);
  t.regex(r.stdout, /written: .*partial\.html \(3 runs, 0 evaluated recipes\)/);
  const page = await browser!.newPage();
  t.teardown(() => page.close());
  const errors = watchErrors(page);
  await page.goto(pathToFileURL(file).href);
  await page.waitForFunction(() => (globalThis as unknown as { document: { body: { dataset: { ready?: string } } } }).document.body.dataset.ready === '1');
  t.is(await page.locator('#runs-body tr').count(), 3);
  t.true((await chartState(page)).loss.drawn, 'the truncated run has its first half of the curve');
  t.regex(await page.locator('main').innerText(), /No evaluated runs/);
  t.deepEqual(errors, []);
});

test('the table: mean ± std over cases for one run, over the seeds\' means for several runs of a recipe', (t) => {
  const csv = (a: number, b: number) => `case,class,dice,jaccard,hd95,asd,assd\nc1,1,${a},0.5,2,1,1\nc2,1,${b},0.5,4,1,1\n`;
  const runOf = (seed: number, a: number, b: number): RunSummary => {
    const cases = parseEvaluationCsv(csv(a, b));
    const m = (a + b) / 2;
    const v = { dice: m, jaccard: 0.5, hd95: 3, asd: 1 };
    return { dir: `/r${seed}`, name: `r${seed}`, recipe: 'bcp-acdc', method: 'bcp', data: 'acdc', labeled: 7, seed, iterations: { pretrain: 10, train: 20 }, seconds: 10 * seed, split: 'val', summary: { classes: { 1: v }, mean: v, cases: 2 }, cases, overlays: {}, events: [] };
  };
  const [one] = tableRows([runOf(1, 0.6, 0.8)]);
  t.is(one.spread, 'cases');
  t.is(one.cells.mean.dice[0], 0.7);
  t.true(Math.abs(one.cells.mean.dice[1] - Math.sqrt(0.02)) < 1e-12, 'sample std of 0.6 and 0.8');
  t.is(one.share, '7 patients (10 %)');
  t.is(one.iterations, 'pretrain 10 + train 20');
  const [three] = tableRows([runOf(1, 0.6, 0.8), runOf(2, 0.7, 0.9), runOf(3, 0.8, 1.0)]);
  t.is(three.runs, 3);
  t.is(three.spread, 'seeds');
  t.true(Math.abs(three.cells.mean.dice[0] - 0.8) < 1e-12);
  t.true(Math.abs(three.cells.mean.dice[1] - 0.1) < 1e-12, 'std of the seeds\' means 0.7, 0.8, 0.9');
  t.is(three.seconds, 20);
  t.is(formatCell('dice', three.cells.mean.dice), '80.00 ± 10.00');
  t.is(formatCell('hd95', [NaN, 0]), '–');
});

for (const [args, message] of [
  [['compare', '--recipes', 'supervised-acdc,nope', '--data', 'synthetic'], /--recipes: unknown recipe 'nope' \(one of supervised-acdc/],
  [['compare', '--recipes', 'supervised-acdc', '--data', '/no/such/dir'], /--data: '\/no\/such\/dir' does not exist/],
  [['compare', '--recipes', 'supervised-acdc', '--data', 'synthetic', '--split', 'train'], /--split: expected val or test, got 'train'/],
  [['compare', '--recipes', 'supervised-acdc', '--data', 'synthetic', '--seeds', '0'], /argument '0' is invalid. expected an integer between 1 and 100/],
  [['report', 'x', '--split', 'train'], /--split: expected val or test, got 'train'/],
  [['dashboard', 'x', '--port', '70000'], /argument '70000' is invalid. expected an integer between 0 and 65535/],
] as [string[], RegExp][]) {
  test(`bad arguments: ${args.join(' ')}`, (t) => {
    const r = run(...args);
    t.is(r.status, 2);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split('\n').length <= 2, true, r.stderr);
  });
}

test.serial('compare again: finished runs are reused, an unfinished one resumes, other settings are refused untouched', (t) => {
  t.is(compare.status, 0, compare.stderr);
  const args = ['compare', '--recipes', recipes.join(','), '--data', 'synthetic', '--iterations', '40', '--size', '32', '--validate-every', '20', '--labeled', '8', '--batch-size', '4', '--labeled-batch', '2', '--lr', '0.1'];
  // a copy of the finished runs; the MT run loses final.ckpt, as if stopped after its last checkpoint
  const again = join(root, 'again');
  for (const recipe of recipes) cpSync(join(out, `${recipe}-seed1337`), join(again, `${recipe}-seed1337`), { recursive: true, preserveTimestamps: true });
  rmSync(join(again, 'mt-acdc-seed1337', 'final.ckpt'));
  const best = join(again, 'supervised-acdc-seed1337', 'best.ckpt');
  const stamp = statSync(best).mtimeMs;
  const evaluation = readFileSync(`${best}.val.json`, 'utf8');

  // other settings: refused before anything trains, naming the setting, with the folder as it was
  const clash = run(...args.map((a) => (a === '40' ? '60' : a)), '--out', again);
  t.is(clash.status, 2, clash.stderr);
  t.regex(clash.stderr, /compare: '.*supervised-acdc-seed1337' holds a finished run with iterations = 40, this run 60; use another --out or --retrain/);
  t.false(existsSync(join(again, 'mt-acdc-seed1337', 'final.ckpt')));
  t.is(statSync(best).mtimeMs, stamp);

  const r = run(...args, '--seeds', '2', '--out', again);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /\[1\/4\] supervised-acdc seed 1337 -> .*supervised-acdc-seed1337 \(finished earlier: reused\)/);
  t.regex(r.stdout, /\[2\/4\] supervised-acdc seed 1338 -> .*supervised-acdc-seed1338\n/);
  t.regex(r.stdout, /\[3\/4\] mt-acdc seed 1337 -> .*mt-acdc-seed1337 \(resuming from last\.ckpt\)/);
  t.is(statSync(best).mtimeMs, stamp, 'the finished run was not retrained');
  t.is(readFileSync(`${best}.val.json`, 'utf8'), evaluation, 'nor re-evaluated');
  t.true(existsSync(join(again, 'mt-acdc-seed1337', 'final.ckpt')), 'the resumed run finished');
  for (const seed of [1337, 1338]) t.true(existsSync(join(again, `mt-acdc-seed${seed}`, 'best.ckpt.val.json')));
  const data = embedded(readFileSync(join(again, 'report.html'), 'utf8'));
  t.deepEqual(
    data.table.map((row) => [row.recipe, row.runs, row.spread]),
    recipes.map((recipe) => [recipe, 2, 'seeds']),
  );

  // --retrain: the clashing settings train anew in an emptied folder (one run's log, a fresh evaluation)
  const retrained = run(...args.map((a) => (a === '40' ? '60' : a)).map((a) => (a === recipes.join(',') ? 'supervised-acdc' : a)), '--out', again, '--retrain');
  t.is(retrained.status, 0, retrained.stderr);
  const log = readFileSync(join(again, 'supervised-acdc-seed1337', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  t.is(log.filter((e) => e.type === 'start').length, 1, 'one run in the log');
  t.not(readFileSync(`${best}.val.json`, 'utf8'), evaluation, 're-evaluated');
});
