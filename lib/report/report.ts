/**
 * `semiseg report`: one self-contained HTML file (scripts, styles, data and pictures inlined; it opens
 * offline) over run folders: the training curves, the papers' comparison table (method, labeled share,
 * Dice / Jaccard / 95HD / ASD per class and mean, mean ± std over cases, or over seeds when several runs
 * of a recipe are given, iterations, wall time), per-case Dice box plots per method and the best, median
 * and worst case of each method as overlays.
 *
 * The numbers come from `semiseg evaluate`'s files in each run folder: `best.ckpt.<split>.json` (the
 * means, used as they are) and `.csv` (per case), and its pictures from `best.ckpt.<split>.overlays/`
 * (`evaluate --overlays`). A run folder without them still gets its curves.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

import { readCheckpointInfo } from '../io/checkpoint.js';
import { buildInfo, getNumThreads } from '../runtime.js';
import { assetText, chartSections, classLabel, classNamesOf, escapeHtml, runsSection, scriptJson } from './assets.js';
import { caseFileName, writeAtomic } from './overlays.js';
import { readRun, thinIterations, type LogEvent } from './runlog.js';

/** The metrics of the table, as `semiseg evaluate` names them. */
export const METRICS = ['dice', 'jaccard', 'hd95', 'asd'] as const;
export type Metric = (typeof METRICS)[number];
type Values = Record<Metric, number>;

/** One case's metrics per class (1..C-1) and their mean over classes, from the evaluation CSV. */
export interface CaseResult {
  id: string;
  classes: Record<number, Values>;
  mean: Values;
}

/** What the report knows of one run folder. */
export interface RunSummary {
  dir: string;
  name: string;
  recipe: string;
  method: string;
  dataset?: string;
  /** The data the run trained on, as the log names it ('acdc', 'la', 'synthetic-2d', ...). */
  data?: string;
  labeled?: number;
  seed?: number;
  device?: string;
  size?: number[];
  /** Iterations of every stage, e.g. { pretrain: 100, train: 300 }. */
  iterations: Record<string, number>;
  /** Training wall time in seconds (the log's `done`, else its last iteration's). */
  seconds?: number;
  /** The evaluation split found ('test' or 'val'), or null when the run was not evaluated. */
  split: string | null;
  /** `semiseg evaluate`'s summary: per-class and mean metrics over cases, exactly as it wrote them. */
  summary: { classes: Record<number, Values>; mean: Values; cases: number } | null;
  cases: CaseResult[];
  /** Case id -> the overlay PNG `evaluate --overlays` wrote. */
  overlays: Record<string, string>;
  events: LogEvent[];
}

/** One row of the comparison table: the runs of one recipe and labeled count (seeds). */
export interface TableRow {
  label: string;
  recipe: string;
  labeled?: number;
  share?: string;
  runs: number;
  split: string;
  cases: number;
  /** Per class then 'mean': { metric: [mean, std] }; std over cases (one run) or over seeds (several). */
  cells: Record<string, Record<Metric, [number, number]>>;
  spread: 'cases' | 'seeds';
  iterations: string;
  seconds: number;
}

/** Options of {@link buildReport}. */
export interface ReportOptions {
  runs: string[];
  /** The output HTML file. */
  out: string;
  /** Which evaluation to use: 'test' or 'val' (default: test where present, else val). */
  split?: string;
  title?: string;
  /** Extra lines for the "how it was made" note (the compare command's budget). */
  notes?: string[];
  /** Also write the comparison table as Markdown to this file. */
  markdown?: string;
}

const METHOD_NAMES: Record<string, string> = {
  supervised: 'Supervised (labeled only)',
  meanTeacher: 'Mean Teacher',
  bcp: 'BCP',
  coda: 'Co-DA',
  icl: 'ICL',
  versemi: 'VerSemi',
  action: 'ACTION',
};

const num = (x: unknown): number => (typeof x === 'number' ? x : x === null || x === undefined ? NaN : Number(x));

function values(o: Record<string, unknown> | undefined): Values {
  return { dice: num(o?.dice), jaccard: num(o?.jaccard), hd95: num(o?.hd95), asd: num(o?.asd) };
}

/** Per-case results from `semiseg evaluate`'s CSV (case,class,dice,jaccard,hd95,asd,assd). */
export function parseEvaluationCsv(text: string): CaseResult[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift()?.split(',') ?? [];
  const col = (name: string) => header.indexOf(name);
  if (col('case') < 0 || col('class') < 0 || METRICS.some((m) => col(m) < 0)) throw new Error(`not a semiseg evaluation CSV (header '${header.join(',')}')`);
  const byCase = new Map<string, CaseResult>();
  for (const line of lines) {
    const f = line.split(',');
    const id = f[col('case')];
    const c = Number(f[col('class')]);
    const r = byCase.get(id) ?? { id, classes: {}, mean: values(undefined) };
    r.classes[c] = { dice: Number(f[col('dice')]), jaccard: Number(f[col('jaccard')]), hd95: Number(f[col('hd95')]), asd: Number(f[col('asd')]) };
    byCase.set(id, r);
  }
  for (const r of byCase.values()) {
    const cls = Object.values(r.classes);
    for (const m of METRICS) r.mean[m] = cls.reduce((s, v) => s + v[m], 0) / cls.length;
  }
  return [...byCase.values()];
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n - 1); 0 for a single value. */
function std(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}

/** Reads one run folder (never throws for a missing or partial one). */
export async function summarizeRun(dir: string, split?: string): Promise<RunSummary> {
  const log = readRun(dir);
  const events = log.all();
  const start = [...events].reverse().find((e) => e.type === 'start');
  const done = [...events].reverse().find((e) => e.type === 'done');
  const lastIt = [...events].reverse().find((e) => e.type === 'iteration');
  const run: RunSummary = {
    dir: log.dir,
    name: log.name,
    recipe: String(start?.recipe ?? ''),
    method: String(start?.method ?? ''),
    data: typeof start?.data === 'string' ? start.data : undefined,
    iterations: Object.fromEntries(((start?.stages as { name: string; iterations: number }[] | undefined) ?? []).map((s) => [s.name, s.iterations])),
    seconds: done ? num(done.seconds) : lastIt ? num(lastIt.elapsedSeconds) : undefined,
    split: null,
    summary: null,
    cases: [],
    overlays: {},
    events: thinIterations(events, 1500),
  };
  const best = join(log.dir, 'best.ckpt');
  if (existsSync(best)) {
    try {
      const config = (await readCheckpointInfo(best)).extra?.config as Record<string, unknown> | undefined;
      if (config) {
        run.recipe ||= String(config.recipe);
        run.method ||= String(config.method);
        run.dataset = String(config.dataset);
        run.labeled = num(config.labeled);
        run.seed = num(config.seed);
        run.device = String(config.device);
        run.size = config.size as number[];
      }
    } catch {
      // an unreadable checkpoint: the log's facts only
    }
  }
  for (const s of split ? [split] : ['test', 'val']) {
    const prefix = join(log.dir, `best.ckpt.${s}`);
    if (!existsSync(`${prefix}.json`) || !existsSync(`${prefix}.csv`)) continue;
    const json = JSON.parse(readFileSync(`${prefix}.json`, 'utf8')) as { classes: Record<string, Record<string, unknown>>; mean: Record<string, unknown>; cases: number };
    run.summary = {
      classes: Object.fromEntries(Object.entries(json.classes).map(([c, v]) => [Number(c), values(v)])),
      mean: values(json.mean),
      cases: json.cases,
    };
    run.cases = parseEvaluationCsv(readFileSync(`${prefix}.csv`, 'utf8'));
    run.split = s;
    const pictures = `${prefix}.overlays`;
    if (existsSync(pictures)) {
      const files = new Set(readdirSync(pictures));
      for (const c of run.cases) if (files.has(caseFileName(c.id))) run.overlays[c.id] = join(pictures, caseFileName(c.id));
    }
    break;
  }
  return run;
}

function shareOf(run: RunSummary): string | undefined {
  if (run.labeled === undefined || Number.isNaN(run.labeled)) return undefined;
  const data = run.data ?? run.dataset;
  const total = data === 'acdc' ? 70 : data === 'la' ? 80 : undefined;
  const unit = data === 'acdc' ? 'patients' : data === 'la' ? 'volumes' : 'items';
  return total ? `${run.labeled} ${unit} (${((100 * run.labeled) / total).toFixed(0)} %)` : `${run.labeled} ${unit}`;
}

/** The comparison table: runs grouped by recipe and labeled count, evaluated ones only. */
export function tableRows(runs: RunSummary[]): TableRow[] {
  const groups = new Map<string, RunSummary[]>();
  for (const r of runs) {
    if (!r.summary) continue;
    const key = `${r.recipe}|${r.labeled ?? ''}|${r.split}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0];
    const classes = Object.keys(first.summary!.classes).map(Number);
    const cells: TableRow['cells'] = {};
    const cell = (pick: (s: NonNullable<RunSummary['summary']>) => Values, perCase: (c: CaseResult) => Values | undefined) => {
      const out = {} as Record<Metric, [number, number]>;
      for (const m of METRICS) {
        if (g.length === 1) {
          const cases = first.cases.map((c) => perCase(c)?.[m]).filter((x): x is number => x !== undefined);
          out[m] = [pick(first.summary!)[m], std(cases)];
        } else {
          const seeds = g.map((r) => pick(r.summary!)[m]);
          out[m] = [mean(seeds), std(seeds)];
        }
      }
      return out;
    };
    for (const c of classes) cells[String(c)] = cell((s) => s.classes[c], (x) => x.classes[c]);
    cells.mean = cell((s) => s.mean, (x) => x.mean);
    const stages = Object.entries(first.iterations).map(([s, n]) => (Object.keys(first.iterations).length > 1 ? `${s} ${n}` : String(n)));
    const secs = g.map((r) => r.seconds).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return {
      label: `${METHOD_NAMES[first.method] ?? first.method}`,
      recipe: first.recipe,
      labeled: first.labeled,
      share: shareOf(first),
      runs: g.length,
      split: first.split!,
      cases: first.summary!.cases,
      cells,
      spread: g.length === 1 ? 'cases' : 'seeds',
      iterations: stages.join(' + '),
      seconds: secs.length ? mean(secs) : NaN,
    };
  });
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/** A table cell as the papers print it: Dice and Jaccard in %, distances in voxels, mean ± std. */
export function formatCell(metric: Metric, [m, s]: [number, number]): string {
  const k = metric === 'dice' || metric === 'jaccard' ? 100 : 1;
  return Number.isFinite(m) ? `${f2(k * m)} ± ${f2(k * s)}` : '–';
}

function duration(s: number): string {
  if (!Number.isFinite(s)) return '–';
  const r = Math.round(s);
  return r >= 3600 ? `${Math.floor(r / 3600)} h ${Math.floor((r % 3600) / 60)} min` : r >= 60 ? `${Math.floor(r / 60)} min ${r % 60} s` : `${r} s`;
}

function tableHtml(rows: TableRow[], classNames: string[] | null): string {
  if (rows.length === 0)
    return '<p class="note">No evaluated runs: run <code>semiseg evaluate --checkpoint &lt;run&gt;/best.ckpt --data &lt;folder&gt; --split val --overlays &lt;run&gt;/best.ckpt.val.overlays</code> on each run folder (or use <code>semiseg compare</code>).</p>';
  const classes = Object.keys(rows[0].cells).filter((k) => k !== 'mean');
  const cname = (c: string) => classLabel(classNames, c);
  const cols = [...classes, 'mean'];
  const heads = { dice: 'Dice %', jaccard: 'Jaccard %', hd95: '95HD (voxels)', asd: 'ASD (voxels)' };
  // the papers' layout: one block per method, a row per class and the mean, the four metrics as columns
  const head = `<tr><th>method</th><th>recipe</th><th>labeled</th><th>runs</th><th>class</th>${METRICS.map((m) => `<th>${heads[m]}</th>`).join('')}<th>iterations</th><th>wall time</th></tr>`;
  const span = `rowspan="${cols.length}"`;
  const body = rows
    .map((r) =>
      cols
        .map((c, k) => {
          const lead = k === 0 ? `<td ${span}>${escapeHtml(r.label)}</td><td ${span}>${escapeHtml(r.recipe)}</td><td ${span}>${escapeHtml(r.share ?? '–')}</td><td ${span}>${r.runs}${r.runs > 1 ? ' seeds' : ''}</td>` : '';
          const tail = k === 0 ? `<td ${span}>${escapeHtml(r.iterations)}</td><td ${span}>${duration(r.seconds)}</td>` : '';
          const cells = METRICS.map((m) => `<td class="cell" data-metric="${m}" data-class="${c}">${r.cells[c] ? formatCell(m, r.cells[c][m]) : '–'}</td>`).join('');
          return `<tr class="${c === 'mean' ? 'mean' : 'class'}${k === 0 ? ' first' : ''}">${lead}<td class="cls">${escapeHtml(cname(c))}</td>${cells}${tail}</tr>`;
        })
        .join('\n'),
    )
    .join('\n');
  const spread = rows.some((r) => r.spread === 'seeds')
    ? 'mean ± std over seeds (rows with several runs: the std of the runs\' means) or over cases (one run)'
    : 'mean ± std over cases';
  return `<div class="table-wrap"><table id="comparison"><thead>${head}</thead><tbody>${body}</tbody></table></div>
<p class="note">Best checkpoint of each run, on the ${escapeHtml([...new Set(rows.map((r) => r.split))].join(' / '))} split (${rows[0].cases} cases); ${spread}. Dice and Jaccard in %, 95HD and ASD in voxels (lower is better). The same numbers as <code>semiseg evaluate</code>.</p>`;
}

/**
 * The comparison table as Markdown (for a README or a paper draft): one row per recipe, the mean over
 * classes of each metric, then each class's Dice, iterations and wall time; the same numbers as the HTML
 * table, ± std over cases (one run) or over seeds (several).
 */
export function markdownTable(rows: TableRow[], classNames: string[] | null = classNamesOf(rows[0]?.recipe)): string {
  if (rows.length === 0) return '(no evaluated runs)\n';
  const classes = Object.keys(rows[0].cells).filter((k) => k !== 'mean');
  const cname = (c: string) => classLabel(classNames, c);
  const heads = ['method', 'recipe', 'labeled', 'runs', 'Dice %', 'Jaccard %', '95HD (voxels)', 'ASD (voxels)', `${classes.map(cname).join(' / ')} Dice %`, 'iterations', 'wall time'];
  const cell = (x: string) => x.replace(/\|/g, '\\|');
  const lines = rows.map((r) => {
    const perClass = classes.map((c) => (r.cells[c] ? f2(100 * r.cells[c].dice[0]) : '–')).join(' / ');
    const values = [r.label, r.recipe, r.share ?? '–', r.runs > 1 ? `${r.runs} seeds` : '1', ...METRICS.map((m) => formatCell(m, r.cells.mean[m])), perClass, r.iterations, duration(r.seconds)];
    return `| ${values.map(cell).join(' | ')} |`;
  });
  const spread = rows.some((r) => r.spread === 'seeds') ? 'mean ± std over seeds (the std of the runs\' means; one run: over cases)' : 'mean ± std over cases';
  return [`| ${heads.join(' | ')} |`, `| ${heads.map(() => '---').join(' | ')} |`, ...lines, '', `${rows[0].split} split, ${rows[0].cases} cases; ${spread}; wall time per run.`, ''].join('\n');
}

function dataUri(path: string): string {
  return `data:image/png;base64,${readFileSync(path).toString('base64')}`;
}

function casesHtml(runs: RunSummary[]): string {
  const seen = new Set<string>();
  const blocks: string[] = [];
  for (const r of runs) {
    const key = `${r.recipe}|${r.labeled ?? ''}`;
    if (!r.summary || seen.has(key) || r.cases.length === 0) continue;
    seen.add(key);
    const sorted = [...r.cases].sort((a, b) => b.mean.dice - a.mean.dice);
    const picks: [string, CaseResult][] = [
      ['best', sorted[0]],
      ['median', sorted[Math.floor((sorted.length - 1) / 2)]],
      ['worst', sorted[sorted.length - 1]],
    ];
    const figs = picks
      .map(([what, c]) => {
        const caption = `${what}: ${escapeHtml(c.id)}, Dice ${f2(100 * c.mean.dice)} %`;
        const img = r.overlays[c.id] ? `<img class="overlay" alt="${escapeHtml(`${r.name} ${what} ${c.id}`)}" src="${dataUri(r.overlays[c.id])}">` : '<p class="note">(no picture: evaluate with --overlays)</p>';
        return `<figure><figcaption>${caption}</figcaption>${img}</figure>`;
      })
      .join('');
    blocks.push(`<h3>${escapeHtml(METHOD_NAMES[r.method] ?? r.method)} <small>(${escapeHtml(r.name)})</small></h3><div class="cases">${figs}</div>`);
  }
  return blocks.length ? blocks.join('\n') : '<p class="note">No evaluated runs.</p>';
}

/** A script's text for an inline <script> element (a '</script' inside would end it early). */
function inlineScript(name: string): string {
  return assetText(name).replace(/<\/(script)/gi, '<\\/$1');
}

/** Builds the report's HTML (everything inlined). */
export function reportHtml(runs: RunSummary[], o: { title?: string; notes?: string[] } = {}): string {
  const recipe = runs.find((r) => r.recipe)?.recipe;
  const classNames = classNamesOf(recipe);
  const rows = tableRows(runs);
  const boxes = rows.length
    ? [...new Map(runs.filter((r) => r.summary).map((r) => [`${r.recipe}|${r.labeled ?? ''}`, r])).keys()].map((key) => {
        const group = runs.filter((r) => r.summary && `${r.recipe}|${r.labeled ?? ''}` === key);
        return { label: `${METHOD_NAMES[group[0].method] ?? group[0].method}${group.length > 1 ? ` (${group.length} seeds)` : ''}`, values: group.flatMap((r) => r.cases.map((c) => 100 * c.mean.dice)) };
      })
    : null;
  const data = {
    classNames,
    runs: runs.map((r) => ({ name: r.name, dir: r.dir, status: r.events.length ? 'ok' : 'empty', events: r.events })),
    table: rows,
    boxes,
  };
  const cpu = cpus();
  const hardware = `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; LibTorch ${buildInfo().torchVersion}; ${getNumThreads()} thread${getNumThreads() === 1 ? '' : 's'}; training devices: ${[...new Set(runs.map((r) => r.device).filter(Boolean))].join(', ') || 'unknown'}`;
  const title = o.title ?? 'semiseg report';
  const notes = [...(o.notes ?? []), `Written ${new Date().toISOString()} on ${hardware}.`];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="icon" href="data:,">
<style>${assetText('style.css')}</style>
</head><body data-mode="report">
<header><h1>${escapeHtml(title)}</h1><span class="status">${runs.length} run${runs.length === 1 ? '' : 's'}</span></header>
<main>
<section><h2>Comparison</h2>${tableHtml(rows, classNames)}</section>
${boxes ? '<section><h2>Per-case Dice (mean over classes)</h2><div class="chart tall"><canvas id="chart-boxplot"></canvas></div></section>' : ''}
<section><h2>Best, median and worst case of each method: image | reference | prediction</h2>${casesHtml(runs)}
<p class="note">Class colours: 1 red, 2 green, 3 blue, 4 yellow.</p></section>
${runsSection()}
${chartSections()}
<section><h2>How this was made</h2>${notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}</section>
</main>
<script type="application/json" id="semiseg-data">${scriptJson(data)}</script>
<script>${inlineScript('chart.js')}</script>
<script>${inlineScript('boxplot.js')}</script>
<script>${inlineScript('app.js')}</script>
</body></html>
`;
}

/** Reads the run folders and writes the report to `o.out` (atomically). */
export async function buildReport(o: ReportOptions): Promise<{ path: string; runs: RunSummary[]; rows: TableRow[] }> {
  if (!Array.isArray(o.runs) || o.runs.length === 0) throw new Error('report: give at least one run folder');
  const runs: RunSummary[] = [];
  for (const dir of o.runs) runs.push(await summarizeRun(dir, o.split));
  writeAtomic(o.out, reportHtml(runs, o));
  const rows = tableRows(runs);
  if (o.markdown) writeAtomic(o.markdown, markdownTable(rows, classNamesOf(runs.find((r) => r.recipe)?.recipe)));
  return { path: o.out, runs, rows };
}
