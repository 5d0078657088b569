/**
 * The browser files of the dashboard and the report, all from the semiseg package itself (no CDN):
 * Chart.js and its box-plot plugin from their npm packages, the page script and style from `assets/dashboard/`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { packageRoot } from '../native.js';

const require = createRequire(import.meta.url);

/** The folder of an installed npm package (found through Node's resolution, hoisted or not). */
function packageDir(name: string): string {
  let dir = dirname(require.resolve(name));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === name) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`semiseg: cannot find the folder of the package '${name}'`);
    dir = up;
  }
}

/** URL name (under /assets/) -> file and content type. The only files the dashboard serves besides overlays. */
export function assetFiles(): Record<string, { path: string; type: string }> {
  const js = 'text/javascript; charset=utf-8';
  return {
    'chart.js': { path: join(packageDir('chart.js'), 'dist', 'chart.umd.min.js'), type: js },
    'boxplot.js': { path: join(packageDir('@sgratzl/chartjs-chart-boxplot'), 'build', 'index.umd.min.js'), type: js },
    'app.js': { path: join(packageRoot, 'assets', 'dashboard', 'app.js'), type: js },
    'style.css': { path: join(packageRoot, 'assets', 'dashboard', 'style.css'), type: 'text/css; charset=utf-8' },
  };
}

const cache = new Map<string, string>();

/** An asset's text, without its source-map comment (the maps are not shipped to the page). */
export function assetText(name: string): string {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  const file = assetFiles()[name];
  if (!file) throw new Error(`semiseg: no asset '${name}'`);
  const text = readFileSync(file.path, 'utf8').replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
  cache.set(name, text);
  return text;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** JSON that can sit inside a <script> element (no '</script>', no '<!--'). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** The chart panels both pages share (canvas ids match the page script's charts). */
export function chartSections(): string {
  const card = (id: string, title: string) => `<section><h2>${title}</h2><div class="chart"><canvas id="chart-${id}"></canvas></div></section>`;
  return `<div class="grid">
${card('loss', 'Loss')}
${card('parts', 'Loss parts')}
<section><h2>Validation Dice %</h2><div class="chart"><canvas id="chart-dice"></canvas></div><p class="note">Thick: the mean over classes (dashed: BCP's pre-training); thin, in the run's colour: per class, ${['RV', 'Myo', 'LV'].map((c, i) => `${['dashed', 'dotted', 'dash-dot'][i]} class ${i + 1} (ACDC ${c})`).join(', ')}.</p></section>
${card('lr', 'Learning rate')}
${card('time', 'Seconds per iteration')}
</div>`;
}

/** The run summary table (filled by the page script). */
export function runsSection(): string {
  return `<section><h2>Runs</h2><div class="table-wrap"><table><thead><tr><th>run</th><th>recipe</th><th>status</th><th>progress</th><th>loss</th><th>best val Dice % (at)</th><th>s / it</th><th>ETA / time</th></tr></thead><tbody id="runs-body"></tbody></table></div></section>`;
}

/** Class names for a recipe's data: ACDC's three structures, LA's atrium, else none (class k). */
export function classNamesOf(recipe: string | undefined): string[] | null {
  if (!recipe) return null;
  if (/-acdc$/.test(recipe)) return ['RV', 'Myo', 'LV'];
  if (/-la$/.test(recipe)) return ['LA'];
  return null;
}

/** A table's name for class key `c` ('1', '2', ... or 'mean'): its class name, or `class c`. */
export function classLabel(classNames: string[] | null, c: string): string {
  return c === 'mean' ? 'mean' : (classNames?.[Number(c) - 1] ?? `class ${c}`);
}
