#!/usr/bin/env node
// Screenshot of a dashboard (http://...) or a report (a file) in headless Chromium, for the README:
//   node scripts/screenshot.mjs <url or file> <out.png|out.jpg> [width] [height: the top of the page only]
// Waits until the page script has drawn (body[data-ready]); the network stays off for files.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { chromium } from 'playwright-core';

const [target, out, width = '1400', height] = process.argv.slice(2);
if (!target || !out) {
  console.error('usage: node scripts/screenshot.mjs <url or file> <out.png> [width]');
  process.exit(2);
}
const executablePath = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p && existsSync(p));
if (!executablePath) {
  console.error('screenshot: no chromium found (apt-get install chromium, or set CHROMIUM_PATH)');
  process.exit(1);
}
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const file = !/^https?:/.test(target);
  const context = await browser.newContext({ viewport: { width: Number(width), height: Number(height ?? 900) }, offline: file });
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && console.error(`console: ${m.text()}`));
  await page.goto(file ? pathToFileURL(resolve(target)).href : target);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 20000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: out, fullPage: height === undefined, ...(/\.jpe?g$/i.test(out) ? { type: 'jpeg', quality: 80 } : {}) });
  console.log(`written: ${out}`);
} finally {
  await browser.close();
}
