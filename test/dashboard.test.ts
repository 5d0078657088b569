// The live dashboard in headless Chromium: the page loads without console errors, every chart draws its
// series, a validation appended to log.jsonl shows within a few seconds, the overlays decode; it serves
// only its own routes (404 otherwise), binds 127.0.0.1 by default, and renders missing, empty and
// truncated run folders. The run folder is a real (tiny) training run of the command line.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Browser } from 'playwright-core';

import { RunLog } from '../lib/report/runlog.js';
import { startDashboard } from '../lib/index.js';
import { chartState, chromiumPath, decodedImages, launchChromium, screenshotDir, watchErrors } from './helpers/browser.js';
import { repoRoot } from './helpers/reference.js';

const cli = join(repoRoot, 'dist/lib/cli.js');
const root = mkdtempSync(join(tmpdir(), 'semiseg-dashboard-'));
const fixture = join(root, 'supervised');
// 20 iterations of 32x32 synthetic slices, validated every 5: four validations and their overlays
const trainArgs = ['--threads', '1', 'train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--iterations', '20', '--size', '32', '--validate-every', '5', '--labeled', '8', '--batch-size', '4', '--labeled-batch', '2'];
let browser: Browser | null = null;

test.before(async () => {
  const r = spawnSync(process.execPath, [cli, ...trainArgs, '--out', fixture], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`training the fixture run failed: ${r.stderr}`);
  if (chromiumPath) browser = await launchChromium();
});

test.after.always(async () => {
  await browser?.close();
});

const browserTest = chromiumPath ? test.serial : test.serial.skip;
if (!chromiumPath) test('headless Chromium (Debian package chromium) is not installed: the browser tests are skipped', (t) => t.pass());

const lines = () => readFileSync(join(fixture, 'log.jsonl'), 'utf8').split('\n').filter(Boolean);

test.serial('the training loop writes the latest validation overlays: three slices and an index', (t) => {
  const index = JSON.parse(readFileSync(join(fixture, 'overlays', 'index.json'), 'utf8')) as { iteration: number; files: string[]; volume: string; dice: number };
  t.is(index.iteration, 20);
  t.deepEqual(index.files, ['slice-0.png', 'slice-1.png', 'slice-2.png']);
  t.is(index.volume, 'synthetic_val_0');
  const last = lines().map((l) => JSON.parse(l) as { type: string; dice?: number }).filter((e) => e.type === 'validation').at(-1)!;
  t.is(index.dice, last.dice as number);
  const png = readFileSync(join(fixture, 'overlays', 'slice-0.png'));
  t.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  t.is(png.readUInt32BE(16), 3 * 32 + 2 * 2, 'width: image | reference | prediction with 2-pixel gaps');
  t.is(png.readUInt32BE(20), 32);
});

browserTest('dashboard: charts of two runs on the same axes, overlays, and a new validation within seconds of log.jsonl growing', async (t) => {
  const all = lines();
  // a second run folder that has logged up to its second validation so far
  const live = join(root, 'live');
  mkdirSync(live, { recursive: true });
  let cut = 0;
  for (let seen = 0; cut < all.length && seen < 2; cut++) if (all[cut].includes('"type":"validation"')) seen++;
  writeFileSync(join(live, 'log.jsonl'), all.slice(0, cut).join('\n') + '\n');
  cpSync(join(fixture, 'overlays'), join(live, 'overlays'), { recursive: true });

  const d = await startDashboard({ runs: [fixture, live], pollMs: 200 });
  t.teardown(() => d.close());
  t.regex(d.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
  t.teardown(() => page.close());
  const errors = watchErrors(page);
  await page.goto(d.url);
  await page.waitForFunction(() => (globalThis as unknown as { semiseg: { validations(i: number): number } }).semiseg.validations(0) === 4, null, { timeout: 10000 });
  await page.waitForFunction(() => (globalThis as unknown as { document: { body: { dataset: { ready?: string } } } }).document.body.dataset.ready === '1');

  const parts = Object.keys((JSON.parse(all.find((l) => l.includes('"type":"iteration"'))!) as { parts: Record<string, number> }).parts).length;
  const charts = await chartState(page);
  t.deepEqual(Object.keys(charts).sort(), ['dice', 'loss', 'lr', 'parts', 'time']);
  t.is(charts.loss.datasets, 2, 'one loss series per run');
  t.is(charts.lr.datasets, 2);
  t.is(charts.time.datasets, 2);
  t.is(charts.parts.datasets, 2 * parts);
  t.is(charts.dice.datasets, 2 * 4, 'per run: the mean and three classes');
  t.is(charts.loss.points, 20 + cutIterations(all, cut));
  for (const [id, c] of Object.entries(charts)) t.true(c.drawn, `chart ${id} drew nothing`);
  const images = await decodedImages(page);
  t.is(images.length, 6, 'three slices of each run');
  for (const im of images) t.deepEqual(im, { width: 100, height: 32 });
  t.is(await page.locator('#runs-body tr').count(), 2);

  // the log grows: the rest of the run, its last two validations among it
  const before = await page.evaluate(() => (globalThis as unknown as { semiseg: { validations(i: number): number } }).semiseg.validations(1));
  t.is(before, 2);
  const grew = Date.now();
  appendFileSync(join(live, 'log.jsonl'), all.slice(cut).join('\n') + '\n');
  await page.waitForFunction(() => (globalThis as unknown as { semiseg: { validations(i: number): number } }).semiseg.validations(1) === 4, null, { timeout: 5000 });
  t.log(`new validation points shown ${Date.now() - grew} ms after log.jsonl grew`);
  t.is((await chartState(page)).dice.points, 2 * 4 * 4);
  await page.waitForTimeout(300); // one animation frame for the table
  t.regex(await page.locator('#runs-body tr').nth(1).innerText(), /done/);
  t.deepEqual(errors, []);
  const shot = join(screenshotDir(), 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  t.log(`screenshot: ${shot}`);
});

function cutIterations(all: string[], cut: number): number {
  return all.slice(0, cut).filter((l) => l.includes('"type":"iteration"')).length;
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      if (res.headers['content-type']?.startsWith('text/event-stream')) {
        res.once('data', (c: Buffer) => {
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body: c });
          req.destroy();
        });
        return;
      }
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test.serial('dashboard: serves its own routes only (path traversal and unknown routes are 404) and binds 127.0.0.1', async (t) => {
  const d = await startDashboard({ runs: [fixture] });
  t.teardown(() => d.close());
  t.is(d.host, '127.0.0.1');
  t.is((await get(d.port, '/')).status, 200);
  const js = await get(d.port, '/assets/chart.js');
  t.is(js.status, 200);
  t.regex(js.type, /javascript/);
  t.notRegex(js.body.toString(), /sourceMappingURL/);
  const png = await get(d.port, '/runs/0/overlays/slice-1.png');
  t.is(png.status, 200);
  t.is(png.type, 'image/png');
  const sse = await get(d.port, '/events');
  t.is(sse.status, 200);
  t.regex(sse.type, /^text\/event-stream/);
  for (const path of [
    '/../package.json',
    '/assets/../package.json',
    '/assets/..%2f..%2fpackage.json',
    '/assets/%2e%2e/%2e%2e/package.json',
    '/assets/app.js/../../package.json',
    '/runs/0/overlays/../log.jsonl',
    '/runs/0/overlays/..%2Flog.jsonl',
    '/runs/0/overlays/index.json',
    '/runs/0/overlays/missing.png',
    '/runs/1/overlays/slice-0.png',
    '/runs/0/log.jsonl',
    '/runs/0/best.ckpt',
    '/log.jsonl',
    '/package.json',
    '/assets/chart.umd.min.js.map',
    '/etc/passwd',
    '//etc/passwd',
    '/nope',
  ]) {
    const r = await get(d.port, path);
    t.is(r.status, 404, path);
    t.false(r.body.toString().includes('"type"'), `${path} leaked a log`);
  }
  t.is((await get(d.port, '/', 'POST')).status, 405);
  // nothing answers on the other interfaces of this machine
  const other = await new Promise<string>((resolve) => {
    const req = request({ host: '::1', port: d.port, path: '/' }, () => resolve('answered'));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    req.end();
  });
  t.not(other, 'answered');
});

test.serial('run logs are read tolerantly: a corrupt line is skipped, a truncated last line waits for its newline', (t) => {
  const dir = join(root, 'tolerant');
  mkdirSync(dir, { recursive: true });
  const all = lines();
  const log = new RunLog(dir);
  t.is(log.status, 'missing');
  t.deepEqual(log.poll(), []);
  writeFileSync(join(dir, 'log.jsonl'), '');
  t.deepEqual(log.poll(), []);
  t.is(log.status, 'empty');
  const half = all[5].slice(0, 40);
  writeFileSync(join(dir, 'log.jsonl'), [all[0], all[1], '{"type": "iteration", "loss": 0.', all[2], all[3], all[4]].join('\n') + '\n' + half);
  const first = log.poll() as { type: string }[];
  t.is(first.length, 5);
  t.is(log.skipped, 1);
  t.is(log.all().length, 5, 'the truncated line is left out');
  appendFileSync(join(dir, 'log.jsonl'), all[5].slice(40) + '\n');
  const next = log.poll() as { type: string }[];
  t.is(next.length, 1);
  t.deepEqual(next[0], JSON.parse(all[5]));
  writeFileSync(join(dir, 'log.jsonl'), all[0] + '\n');
  t.is(log.poll(), 'reset', 'a log that shrank (a new run) is read again');
  t.is(log.events.length, 1);
});

browserTest('dashboard: a missing, an empty and a truncated run folder still render', async (t) => {
  const empty = join(root, 'empty');
  const truncated = join(root, 'truncated');
  mkdirSync(empty, { recursive: true });
  mkdirSync(truncated, { recursive: true });
  writeFileSync(join(empty, 'log.jsonl'), '');
  const text = readFileSync(join(fixture, 'log.jsonl'), 'utf8');
  writeFileSync(join(truncated, 'log.jsonl'), text.slice(0, text.length - 30));
  const d = await startDashboard({ runs: [join(root, 'does-not-exist'), empty, truncated], pollMs: 200 });
  t.teardown(() => d.close());
  const page = await browser!.newPage();
  t.teardown(() => page.close());
  const errors = watchErrors(page);
  await page.goto(d.url);
  await page.waitForFunction(() => (globalThis as unknown as { document: { body: { dataset: { ready?: string } } } }).document.body.dataset.ready === '1');
  const rows = await page.locator('#runs-body tr').allInnerTexts();
  t.is(rows.length, 3);
  t.regex(rows[0], /does-not-exist.*no log yet/s);
  t.regex(rows[1], /empty.*empty log/s);
  t.regex(rows[2], /truncated.*supervised-acdc/s);
  t.true((await chartState(page)).loss.drawn);
  t.is(await page.evaluate(() => (globalThis as unknown as { semiseg: { validations(i: number): number } }).semiseg.validations(2)), 4);
  t.deepEqual(errors, []);
});

async function busyPort(): Promise<{ port: number; close: () => void }> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as { port: number }).port, close: () => s.close() };
}

test.serial('semiseg dashboard prints its 127.0.0.1 address and stops on Ctrl-C; a busy port is one clear line', async (t) => {
  const child = spawn(process.execPath, [cli, 'dashboard', fixture], { stdio: ['ignore', 'pipe', 'pipe'] });
  const first = await new Promise<string>((resolve) => child.stdout.once('data', (c: Buffer) => resolve(c.toString())));
  t.regex(first, /^semiseg dashboard: http:\/\/127\.0\.0\.1:\d+\/ \(1 run; Ctrl-C stops\)/);
  const port = Number(/:(\d+)\//.exec(first)![1]);
  t.is((await get(port, '/')).status, 200);
  child.kill('SIGINT');
  t.is(await new Promise<number | null>((r) => child.once('exit', (code) => r(code))), 0);

  const busy = await busyPort();
  t.teardown(busy.close);
  const r = spawnSync(process.execPath, [cli, 'dashboard', fixture, '--port', String(busy.port)], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.is(r.stderr.trim(), `semiseg: dashboard: port ${busy.port} on 127.0.0.1 is in use (choose another with --port, or 0 for any free one)`);
  const bad = spawnSync(process.execPath, [cli, 'train', '--recipe', 'supervised-acdc', '--data', 'synthetic', '--dashboard', 'x:y'], { encoding: 'utf8' });
  t.is(bad.status, 2);
  t.regex(bad.stderr, /expected a port \(0-65535\) or host:port, got 'x:y'/);
});

test.serial('semiseg train --dashboard serves the run while it trains', (t) => {
  const out = join(root, 'with-dashboard');
  const r = spawnSync(process.execPath, [cli, ...trainArgs, '--out', out, '--dashboard'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /^dashboard: http:\/\/127\.0\.0\.1:\d+\/ \(until this command ends; later: semiseg dashboard /m);
  t.true(existsSync(join(out, 'overlays', 'index.json')));
});

test.serial('semiseg train --no-overlays writes no validation pictures', (t) => {
  const out = join(root, 'no-overlays');
  const r = spawnSync(process.execPath, [cli, ...trainArgs, '--iterations', '5', '--out', out, '--no-overlays'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.true(existsSync(join(out, 'best.ckpt')));
  t.false(existsSync(join(out, 'overlays')));
});
