// `semiseg evaluate` / `report` guards: a checkpoint's class count checked against HDF5 data, means over
// cases that leave a case's undefined (NaN) distance out and say how many cases they are over, the
// empty-mask policy stated in the JSON / CSV / table, class names and distance units of the report from
// the evaluation (or the checkpoint's plan), output folders created before any work, plain progress
// lines off a terminal.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { evaluationProgress, formatTable } from '../lib/cli/evaluate.js';
import { nets, perClassMetrics, saveCheckpoint, tensor } from '../lib/index.js';
import { emptyMaskPolicy, emptyMaskPolicyLine, MetricsTable } from '../lib/metrics.js';
import { buildReport, markdownTable, parseEvaluationCsv, summarizeRun, tableRows } from '../lib/report/report.js';
import { dataDir } from './helpers/data.js';
import { testPlan } from './helpers/nifti.js';
import { runPythonCode } from './helpers/python.js';
import { referencePython, repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, '--threads', '1', ...args], { encoding: 'utf8' });
const tmp = () => mkdtempSync(join(tmpdir(), 'semiseg-evalguard-'));

/** An untrained 2-D checkpoint of `classes` classes (a plan's class names when given). */
async function unetCheckpoint(dir: string, classes: number, planClasses?: string[]): Promise<string> {
  const path = join(dir, `unet${classes}.ckpt`);
  const net = nets.UNet2D({ outChannels: classes, features: [2, 4, 8, 16, 32] });
  const plan = planClasses ? { plan: testPlan({ network: 'UNet2D', classes: planClasses, size: [32, 32] }) } : {};
  const config = { method: 'supervised', recipe: 'supervised-la', size: [32, 32], classes, ...plan };
  await saveCheckpoint(path, { network: net, iteration: 0, extra: { config } });
  net.dispose();
  return path;
}

/** A one-volume ACDC test folder (the real volume, linked). */
function acdcFolder(dir: string): string {
  const folder = join(dir, 'acdc');
  mkdirSync(join(folder, 'data'), { recursive: true });
  symlinkSync(join(dataDir!, 'ACDC', 'data', 'patient002_frame01.h5'), join(folder, 'data', 'patient002_frame01.h5'));
  writeFileSync(join(folder, 'test.list'), 'patient002_frame01\n');
  return folder;
}

// 6 x 6 masks: case a has class 2 in both maps (finite distances), case b's reference lacks class 2
// while its prediction has some (distances undefined), class 1 is never predicted (empty prediction).
const A_REF = [
  [0, 0, 0, 0, 0, 0],
  [0, 2, 2, 2, 0, 0],
  [0, 2, 2, 2, 0, 0],
  [0, 2, 2, 2, 0, 1],
  [0, 0, 0, 0, 0, 1],
  [0, 0, 0, 0, 0, 0],
];
const A_PRED = [
  [0, 0, 0, 0, 0, 0],
  [0, 0, 2, 2, 2, 0],
  [0, 0, 2, 2, 2, 2],
  [0, 0, 0, 2, 2, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
];
const B_REF = [
  [1, 1, 0, 0, 0, 0],
  [1, 1, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
];
const B_PRED = [
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 0, 0, 0],
  [0, 0, 0, 2, 2, 0],
  [0, 0, 0, 2, 2, 0],
  [0, 0, 0, 0, 0, 0],
];

async function nanTable(): Promise<MetricsTable> {
  const table = new MetricsTable();
  for (const [id, pred, ref] of [['a', A_PRED, A_REF], ['b', B_PRED, B_REF]] as const) {
    const p = tensor(pred.flat(), { shape: [6, 6], dtype: 'int64' });
    const r = tensor(ref.flat(), { shape: [6, 6], dtype: 'int64' });
    table.add(id, await perClassMetrics(p, r, { classes: [1, 2] }));
    p.dispose();
    r.dispose();
  }
  return table;
}

test('evaluate refuses a checkpoint whose class count is not the HDF5 data\'s, naming both, before evaluating', async (t) => {
  if (!dataDir) return t.pass('skipped: no ../shared/data');
  const dir = tmp();
  const folder = acdcFolder(dir);
  const three = await unetCheckpoint(dir, 3, ['background', 'Anterior', 'Posterior']);
  const r = run('evaluate', '--checkpoint', three, '--data', folder, '--split', 'test', '--out', join(dir, 'ev'));
  t.is(r.status, 2, r.stderr);
  t.is(
    r.stderr.trim(),
    `semiseg: --data: '${folder}' (the ACDC HDF5 layout: background, RV, Myo, LV) has 4 classes (background included); the checkpoint '${three}' was trained on 3`,
  );
  t.false(existsSync(join(dir, 'ev.json')));
  // the matching count still evaluates, and names the ACDC classes in its JSON
  const four = await unetCheckpoint(dir, 4);
  const ok = run('evaluate', '--checkpoint', four, '--data', folder, '--split', 'test', '--json', '--out', join(dir, 'ok'));
  t.is(ok.status, 0, ok.stderr);
  const summary = JSON.parse(ok.stdout) as { classNames: Record<string, string>; counts: { classes: Record<string, { dice: number }> } };
  t.deepEqual(summary.classNames, { 1: 'RV', 2: 'Myo', 3: 'LV' });
  t.is(summary.counts.classes['3'].dice, 1);
});

test('the overall mean is the mean of the class means: a case with one undefined class still counts for the others', (t) => {
  const m = (hd95: number) => ({ dice: 0.5, jaccard: 0.4, hd95, asd: hd95 / 2, assd: hd95 / 2, predictionEmpty: false, referenceEmpty: Number.isNaN(hd95), emptyPolicy: 'zero' as const });
  const table = new MetricsTable();
  table.add('x', { classes: { 1: m(1), 2: m(NaN) }, mean: { dice: 0.5, jaccard: 0.4, hd95: NaN, asd: NaN, assd: NaN } });
  table.add('y', { classes: { 1: m(3), 2: m(5) }, mean: { dice: 0.5, jaccard: 0.4, hd95: 4, asd: 2, assd: 2 } });
  const s = table.summary();
  t.is(s.classes[1].hd95, 2);
  t.is(s.classes[2].hd95, 5);
  t.is(s.mean.hd95, 3.5, "(2 + 5) / 2, not case y's 4 alone");
  t.is(s.mean.asd, 1.75);
  t.is(s.mean.dice, 0.5);
  t.deepEqual(s.counts.mean, { dice: 2, jaccard: 2, hd95: 1, asd: 1, assd: 1 });
});

test('means over cases leave a case\'s undefined distance out and count the cases (medpy values)', async (t) => {
  const table = await nanTable();
  const a = table.rows[0].result.classes[2];
  const b = table.rows[1].result.classes[2];
  t.true(Number.isNaN(b.hd95) && Number.isNaN(b.asd), 'the per-case value stays undefined');
  t.true(Number.isFinite(a.hd95) && a.hd95 > 0);
  if (referencePython) {
    // case a's class-2 distances by medpy's definitions (benchmarks/reference/metrics.py)
    const code = `import sys, json, numpy as np; sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'benchmarks/reference'))}); import metrics as m
r = np.array(${JSON.stringify(A_PRED)}) == 2; g = np.array(${JSON.stringify(A_REF)}) == 2
print(json.dumps([m.dc(r, g), m.hd95(r, g), m.asd(r, g)]))`;
    const [dice, hd95, asd] = JSON.parse(runPythonCode(code)) as number[];
    t.true(Math.abs(a.dice - dice) < 1e-9 && Math.abs(a.hd95 - hd95) < 1e-9 && Math.abs(a.asd - asd) < 1e-9, `${a.dice} ${a.hd95} ${a.asd} vs ${dice} ${hd95} ${asd}`);
  }
  const s = table.summary();
  t.is(s.classes[2].hd95, a.hd95);
  t.is(s.classes[2].asd, a.asd);
  t.is(s.classes[2].dice, (a.dice + b.dice) / 2);
  t.deepEqual(s.counts.classes[2], { dice: 2, jaccard: 2, hd95: 1, asd: 1, assd: 1 });
  t.deepEqual(s.counts.classes[1], { dice: 2, jaccard: 2, hd95: 2, asd: 2, assd: 2 });
  // the overall mean: the mean of the class means (as the papers' tables), so case b's class-1 distances
  // count although its class 2 is undefined; its count is the fewest cases behind a class mean
  const classOne = (table.rows[0].result.classes[1].hd95 + table.rows[1].result.classes[1].hd95) / 2;
  t.is(s.mean.hd95, (classOne + a.hd95) / 2);
  t.is(s.mean.dice, (s.classes[1].dice + s.classes[2].dice) / 2);
  t.deepEqual(s.counts.mean, { dice: 2, jaccard: 2, hd95: 1, asd: 1, assd: 1 });
  t.is(JSON.parse(JSON.stringify(s)).mean.hd95, s.mean.hd95, 'no null in the JSON');
  // the printed table marks the means over fewer cases and says over how many
  const text = formatTable(table, { 1: 'Anterior', 2: 'Posterior' }, 'mm');
  const lines = text.split('\n');
  t.is(lines[0], 'class         Dice %  Jacc. %     95HD      ASD empty pred.');
  t.is(lines[2], `Posterior    ${(100 * s.classes[2].dice).toFixed(2).padStart(7)} ${(100 * s.classes[2].jaccard).toFixed(2).padStart(8)} ${`${a.hd95.toFixed(2)}*`.padStart(8)} ${`${a.asd.toFixed(2)}*`.padStart(8)}         0/2`);
  t.true(lines.includes('* Posterior: 95HD over 1, ASD over 1 of 2 volumes (undefined in the others: reference empty, prediction not)'));
  t.true(lines.includes('* mean: the mean of the class means; 95HD, ASD of a class over as few as 1 of 2 volumes'));
  t.false(text.includes('–'));
});

test('the empty-mask policy and the empty predictions per class are in the summary and the table', async (t) => {
  const table = await nanTable();
  const s = table.summary();
  t.deepEqual(s.emptyPredictions, { 1: 2, 2: 0 }, 'class 1 is never predicted');
  t.deepEqual(s.classes[1], { dice: 0, jaccard: 0, hd95: 0, asd: 0, assd: 0 });
  t.deepEqual(s.policy, emptyMaskPolicy('zero'));
  t.is(s.policy.emptyPolicy, 'zero');
  t.regex(s.policy.emptyPrediction, /^every metric 0/);
  t.regex(s.policy.emptyReference, /dice and jaccard 0; hd95 \/ asd \/ assd undefined/);
  t.regex(s.policy.bothEmpty, /every metric 0/);
  const line = emptyMaskPolicyLine('zero');
  t.is(table.toCSV().trimEnd().split('\n').length, 1 + 2 * 2, 'a plain CSV: one line per case and class');
  const cases = parseEvaluationCsv(table.toCSV());
  t.deepEqual(cases.map((c) => c.id), ['a', 'b']);
  const text = formatTable(table, { 1: 'Anterior', 2: 'Posterior' });
  t.true(text.split('\n')[1].startsWith('Anterior        0.00     0.00     0.00     0.00         2/2'));
  t.is(text.split('\n').at(-1), line);
});

/** A run folder as train + evaluate leave it (a log, an evaluation JSON and CSV, optionally a checkpoint). */
async function runFolder(dir: string, json: Record<string, unknown>, csv: string, checkpoint?: () => Promise<void>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'log.jsonl'), `${JSON.stringify({ type: 'start', recipe: 'supervised-la', method: 'supervised', stages: [{ name: 'train', iterations: 4 }] })}\n`);
  writeFileSync(join(dir, 'best.ckpt.val.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'best.ckpt.val.csv'), csv);
  if (checkpoint) await checkpoint();
}

test('report and its Markdown name the classes and the distance unit after the evaluation, and mark means over fewer cases', async (t) => {
  const dir = tmp();
  const table = await nanTable();
  const s = table.summary();
  const runDir = join(dir, 'run');
  await runFolder(runDir, { checkpoint: 'x', split: 'val', units: 'mm', classNames: { 1: 'Anterior', 2: 'Posterior' }, ...s }, table.toCSV());
  const summary = await summarizeRun(runDir);
  t.deepEqual(summary.classNames, ['Anterior', 'Posterior']);
  const rows = tableRows([summary]);
  t.is(rows[0].units, 'mm');
  t.deepEqual(rows[0].counts.mean, { hd95: 1, asd: 1 });
  t.deepEqual(rows[0].emptyPredictions, { 1: 2, 2: 0 });
  const md = markdownTable(rows).split('\n');
  t.is(md[0], '| method | recipe | labeled | runs | Dice % | Jaccard % | 95HD (mm) | ASD (mm) | Anterior / Posterior Dice % | iterations | wall time |');
  t.true(md[2].includes(`| ${s.mean.hd95.toFixed(2)} ± 0.00 (n=1) |`), md[2]);
  t.false(md.join('\n').includes('LA') || md.join('\n').includes('voxels'));
  t.true(md.includes('Cases with an empty prediction (every metric 0, 95HD and ASD too): Supervised (labeled only): Anterior 2 of 2.'));
  t.true(md.includes(`E${emptyMaskPolicyLine('zero').slice(1)}.`));
  const { path } = await buildReport({ runs: [runDir], out: join(dir, 'r.html') });
  const html = readFileSync(path, 'utf8');
  t.true(html.includes('<th>95HD (mm)</th>') && html.includes('<td class="cls">Anterior</td>') && html.includes('<td class="cls">Posterior</td>'));
  t.false(html.includes('95HD (voxels)') || html.includes('<td class="cls">LA</td>'));
  t.true(html.includes(`${s.mean.hd95.toFixed(2)} ± 0.00 (n=1)`));
});

test('report takes the class names from the checkpoint\'s plan when the evaluation names none (older JSON: voxels)', async (t) => {
  const dir = tmp();
  const runDir = join(dir, 'run');
  const json = { checkpoint: 'x', split: 'val', classes: { 1: { dice: 0.5, jaccard: 0.4, hd95: 2, asd: 1 }, 2: { dice: 0.5, jaccard: 0.4, hd95: 2, asd: 1 } }, mean: { dice: 0.5, jaccard: 0.4, hd95: 2, asd: 1 }, cases: 1 };
  await runFolder(runDir, json, 'case,class,dice,jaccard,hd95,asd,assd\nc,1,0.5,0.4,2,1,1\nc,2,0.5,0.4,2,1,1\n', async () => {
    renameSync(await unetCheckpoint(runDir, 3, ['background', 'Anterior', 'Posterior']), join(runDir, 'best.ckpt'));
  });
  const rows = tableRows([await summarizeRun(runDir)]);
  const md = markdownTable(rows);
  t.true(md.includes('| 95HD (voxels) | ASD (voxels) | Anterior / Posterior Dice % |'), md);
  t.false(md.includes('(n='));
});

test('evaluate --out and report -o into missing folders create them up front; an impossible one fails first, naming it', async (t) => {
  if (!dataDir) return t.pass('skipped: no ../shared/data');
  const dir = tmp();
  const folder = acdcFolder(dir);
  const ckpt = await unetCheckpoint(dir, 4);
  const prefix = join(dir, 'new', 'deeper', 'ev');
  const r = run('evaluate', '--checkpoint', ckpt, '--data', folder, '--split', 'test', '--out', prefix);
  t.is(r.status, 0, r.stderr);
  t.true(existsSync(`${prefix}.json`) && existsSync(`${prefix}.csv`));
  t.regex(readFileSync(`${prefix}.csv`, 'utf8').trimEnd().split('\n').at(-1)!, /^patient\d+_frame\d+,3,/, 'a plain CSV, one line per case and class');
  t.false(r.stderr.includes('\r') || r.stderr.includes('\x1b'), 'stderr is a pipe: plain lines');
  t.is(r.stderr, 'evaluating 1/1 (patient002_frame01)\n');
  t.regex(r.stdout, /^empty masks: empty prediction -> every metric 0/m);
  t.regex(r.stdout, /^RV .* \d+\/1$/m);
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const started = Date.now();
  const bad = run('evaluate', '--checkpoint', ckpt, '--data', folder, '--split', 'test', '--out', join(file, 'x', 'ev'));
  t.is(bad.status, 2);
  t.is(bad.stderr, `semiseg: --out: cannot create the folder '${join(file, 'x')}' (ENOTDIR)\n`);
  t.true(Date.now() - started < 60_000);
  // report: the run folder of the evaluation above
  const runDir = dirname(prefix);
  const html = join(dir, 'reports', 'r.html');
  const md = join(dir, 'tables', 'r.md');
  const rep = run('report', runDir, '-o', html, '--markdown', md);
  t.is(rep.status, 0, rep.stderr);
  t.true(existsSync(html) && existsSync(md));
  const badReport = run('report', runDir, '-o', join(file, 'r.html'));
  t.is(badReport.status, 2);
  t.is(badReport.stderr, `semiseg: --output: cannot create the folder '${file}' of '${join(file, 'r.html')}' (EEXIST)\n`);
});

test('evaluate progress: one rewritten line on a terminal, plain lines at each tenth and the end elsewhere', (t) => {
  const written: string[] = [];
  const pipe = evaluationProgress({ isTTY: false, write: (s: string) => written.push(s) });
  for (let i = 1; i <= 25; i++) pipe.onVolume(`case${i}`, i, 25);
  pipe.end();
  t.deepEqual(
    written,
    [3, 5, 8, 10, 13, 15, 18, 20, 23, 25].map((i) => `evaluating ${i}/25 (case${i})\n`),
  );
  const few: string[] = [];
  const small = evaluationProgress({ write: (s: string) => few.push(s) });
  for (let i = 1; i <= 3; i++) small.onVolume(`c${i}`, i, 3);
  small.end();
  t.deepEqual(few, ['evaluating 1/3 (c1)\n', 'evaluating 2/3 (c2)\n', 'evaluating 3/3 (c3)\n']);
  const tty: string[] = [];
  const term = evaluationProgress({ isTTY: true, write: (s: string) => tty.push(s) });
  term.onVolume('a', 1, 2);
  term.onVolume('b', 2, 2);
  term.end();
  t.deepEqual(tty, ['\revaluating 1/2 (a)\x1b[K', '\revaluating 2/2 (b)\x1b[K', '\n']);
});
