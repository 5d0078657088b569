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
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';

import { readCheckpointInfo } from '../io/checkpoint.js';
import { emptyMaskPolicyLine } from '../metrics.js';
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
  /**
   * `semiseg evaluate`'s summary: per-class and mean metrics over cases, exactly as it wrote them, with
   * (evaluations that wrote them) how many cases each mean is over, the cases with an empty prediction
   * per class, the distances' unit ('mm' for NIfTI data, else voxels) and the empty-mask policy line.
   */
  summary: {
    classes: Record<number, Values>;
    mean: Values;
    cases: number;
    counts?: { classes: Record<number, Partial<Values>>; mean: Partial<Values> };
    emptyPredictions?: Record<number, number>;
    units?: string;
    policy?: string;
  } | null;
  /** Class names (classes 1..C-1) of the evaluation JSON, else of the checkpoint's plan; undefined when neither names them. */
  classNames?: string[];
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
  /** Per class then 'mean': how many cases a metric's mean is over, where fewer than `cases` (undefined values left out). */
  counts: Record<string, Partial<Record<Metric, number>>>;
  /** Per class: cases with an empty prediction (every metric 0); absent for evaluations that did not count them. */
  emptyPredictions?: Record<string, number>;
  /** The distances' unit: 'mm' (NIfTI data) or 'voxels'. */
  units: string;
  /** Class names (classes 1..C-1), from the evaluation or the checkpoint's plan; null: the recipe's. */
  classNames: string[] | null;
  /** The empty-mask policy line of the evaluation. */
  policy?: string;
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
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')); // comment lines (a note) are skipped
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

/** Mean of the defined values (NaN, a case's undefined distance, left out); NaN when none is. */
function mean(values: number[]): number {
  const xs = values.filter((x) => !Number.isNaN(x));
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Sample standard deviation (n - 1) of the defined values; 0 for a single value. */
function std(values: number[]): number {
  const xs = values.filter((x) => !Number.isNaN(x));
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
      const planClasses = (config?.plan as { classes?: unknown } | undefined)?.classes;
      if (Array.isArray(planClasses) && planClasses.length > 1) run.classNames = planClasses.slice(1).map(String);
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
    const json = JSON.parse(readFileSync(`${prefix}.json`, 'utf8')) as {
      classes: Record<string, Record<string, unknown>>;
      mean: Record<string, unknown>;
      cases: number;
      counts?: { classes?: Record<string, Record<string, unknown>>; mean?: Record<string, unknown> };
      emptyPredictions?: Record<string, unknown>;
      units?: unknown;
      classNames?: Record<string, unknown>;
      policy?: { emptyPolicy?: unknown };
    };
    run.summary = {
      classes: Object.fromEntries(Object.entries(json.classes).map(([c, v]) => [Number(c), values(v)])),
      mean: values(json.mean),
      cases: json.cases,
      units: typeof json.units === 'string' ? json.units : 'voxels',
    };
    if (json.counts?.classes && json.counts.mean)
      run.summary.counts = { classes: Object.fromEntries(Object.entries(json.counts.classes).map(([c, v]) => [Number(c), values(v)])), mean: values(json.counts.mean) };
    if (json.emptyPredictions) run.summary.emptyPredictions = Object.fromEntries(Object.entries(json.emptyPredictions).map(([c, n]) => [Number(c), num(n)]));
    if (json.policy) run.summary.policy = emptyMaskPolicyLine(json.policy.emptyPolicy === 'nan' ? 'nan' : 'zero');
    if (json.classNames && typeof json.classNames === 'object') {
      const ids = Object.keys(json.classes).map(Number);
      run.classNames = Array.from({ length: Math.max(0, ...ids) }, (_, i) => String(json.classNames![String(i + 1)] ?? `class ${i + 1}`));
    }
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
    // how many cases a mean is over, where some were left out (one run: evaluate's counts)
    const counts: TableRow['counts'] = {};
    const fewer = (n: Partial<Values> | undefined): Partial<Record<Metric, number>> =>
      Object.fromEntries(METRICS.filter((m) => g.length === 1 && n?.[m] !== undefined && n[m]! < first.summary!.cases).map((m) => [m, n![m]!]));
    for (const c of classes) counts[String(c)] = fewer(first.summary!.counts?.classes[c]);
    counts.mean = fewer(first.summary!.counts?.mean);
    const empty = first.summary!.emptyPredictions;
    const emptyPredictions = g.length === 1 && empty ? Object.fromEntries(classes.map((c) => [String(c), empty[c] ?? 0])) : undefined;
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
      counts,
      emptyPredictions,
      units: [...new Set(g.map((r) => r.summary!.units ?? 'voxels'))].join(' / '),
      classNames: first.classNames ?? classNamesOf(first.recipe),
      policy: first.summary!.policy,
    };
  });
}

const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/**
 * A table cell as the papers print it: Dice and Jaccard in %, distances in the evaluation's unit, mean ±
 * std; `n`: the mean is over n cases only (the others' value undefined), shown as ' (n=…)'.
 */
export function formatCell(metric: Metric, [m, s]: [number, number], n?: number): string {
  const k = metric === 'dice' || metric === 'jaccard' ? 100 : 1;
  return Number.isFinite(m) ? `${f2(k * m)} ± ${f2(k * s)}${n !== undefined ? ` (n=${n})` : ''}` : '–';
}

/** The distances' unit of the rows ('voxels', 'mm', or both when the rows differ). */
function unitsOf(rows: TableRow[]): string {
  return [...new Set(rows.flatMap((r) => r.units.split(' / ')))].join(' / ') || 'voxels';
}

/** The notes under a table: means over fewer cases, empty predictions, the empty-mask policy. */
function tableNotes(rows: TableRow[], cname: (c: string) => string): string[] {
  const notes: string[] = [];
  if (rows.some((r) => Object.values(r.counts).some((n) => Object.keys(n).length > 0)))
    notes.push('(n=k): the mean is over k of the cases only; in the others the metric is undefined (reference empty, prediction not).');
  const empty = rows
    .filter((r) => r.emptyPredictions && Object.values(r.emptyPredictions).some((n) => n > 0))
    .map((r) => `${r.label}: ${Object.entries(r.emptyPredictions!).filter(([, n]) => n > 0).map(([c, n]) => `${cname(c)} ${n} of ${r.cases}`).join(', ')}`);
  if (empty.length) notes.push(`Cases with an empty prediction (every metric 0, 95HD and ASD too): ${empty.join('; ')}.`);
  const policies = [...new Set(rows.map((r) => r.policy).filter((p): p is string => p !== undefined))];
  notes.push(...(policies.length ? policies : [emptyMaskPolicyLine('zero')]).map((p) => p.charAt(0).toUpperCase() + p.slice(1) + '.'));
  return notes;
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
  const units = unitsOf(rows);
  const heads = { dice: 'Dice %', jaccard: 'Jaccard %', hd95: `95HD (${units})`, asd: `ASD (${units})` };
  // the papers' layout: one block per method, a row per class and the mean, the four metrics as columns
  const head = `<tr><th>method</th><th>recipe</th><th>labeled</th><th>runs</th><th>class</th>${METRICS.map((m) => `<th>${heads[m]}</th>`).join('')}<th>iterations</th><th>wall time</th></tr>`;
  const span = `rowspan="${cols.length}"`;
  const body = rows
    .map((r) =>
      cols
        .map((c, k) => {
          const lead = k === 0 ? `<td ${span}>${escapeHtml(r.label)}</td><td ${span}>${escapeHtml(r.recipe)}</td><td ${span}>${escapeHtml(r.share ?? '–')}</td><td ${span}>${r.runs}${r.runs > 1 ? ' seeds' : ''}</td>` : '';
          const tail = k === 0 ? `<td ${span}>${escapeHtml(r.iterations)}</td><td ${span}>${duration(r.seconds)}</td>` : '';
          const cells = METRICS.map((m) => `<td class="cell" data-metric="${m}" data-class="${c}">${r.cells[c] ? formatCell(m, r.cells[c][m], r.counts[c]?.[m]) : '–'}</td>`).join('');
          return `<tr class="${c === 'mean' ? 'mean' : 'class'}${k === 0 ? ' first' : ''}">${lead}<td class="cls">${escapeHtml(cname(c))}</td>${cells}${tail}</tr>`;
        })
        .join('\n'),
    )
    .join('\n');
  const spread = rows.some((r) => r.spread === 'seeds')
    ? 'mean ± std over seeds (rows with several runs: the std of the runs\' means) or over cases (one run)'
    : 'mean ± std over cases';
  return `<div class="table-wrap"><table id="comparison"><thead>${head}</thead><tbody>${body}</tbody></table></div>
<p class="note">Best checkpoint of each run, on the ${escapeHtml([...new Set(rows.map((r) => r.split))].join(' / '))} split (${rows[0].cases} cases); ${spread}. Dice and Jaccard in %, 95HD and ASD in ${escapeHtml(units)} (lower is better). The same numbers as <code>semiseg evaluate</code>.</p>
${tableNotes(rows, cname)
  .map((n) => `<p class="note">${escapeHtml(n)}</p>`)
  .join('\n')}`;
}

/**
 * The comparison table as Markdown (for a README or a paper draft): one row per recipe, the mean over
 * classes of each metric, then each class's Dice, iterations and wall time; the same numbers as the HTML
 * table, ± std over cases (one run) or over seeds (several).
 */
export function markdownTable(rows: TableRow[], classNames: string[] | null = rows[0]?.classNames ?? classNamesOf(rows[0]?.recipe)): string {
  if (rows.length === 0) return '(no evaluated runs)\n';
  const classes = Object.keys(rows[0].cells).filter((k) => k !== 'mean');
  const cname = (c: string) => classLabel(classNames, c);
  const units = unitsOf(rows);
  const heads = ['method', 'recipe', 'labeled', 'runs', 'Dice %', 'Jaccard %', `95HD (${units})`, `ASD (${units})`, `${classes.map(cname).join(' / ')} Dice %`, 'iterations', 'wall time'];
  const cell = (x: string) => x.replace(/\|/g, '\\|');
  const lines = rows.map((r) => {
    const perClass = classes.map((c) => (r.cells[c] ? f2(100 * r.cells[c].dice[0]) : '–')).join(' / ');
    const values = [r.label, r.recipe, r.share ?? '–', r.runs > 1 ? `${r.runs} seeds` : '1', ...METRICS.map((m) => formatCell(m, r.cells.mean[m], r.counts.mean?.[m])), perClass, r.iterations, duration(r.seconds)];
    return `| ${values.map(cell).join(' | ')} |`;
  });
  const spread = rows.some((r) => r.spread === 'seeds') ? 'mean ± std over seeds (the std of the runs\' means; one run: over cases)' : 'mean ± std over cases';
  return [`| ${heads.join(' | ')} |`, `| ${heads.map(() => '---').join(' | ')} |`, ...lines, '', `${rows[0].split} split, ${rows[0].cases} cases; ${spread}; wall time per run.`, '', ...tableNotes(rows, cname).flatMap((n) => [n, '']) ].join('\n');
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

/** The class names of the report: the evaluation's (or the checkpoint plan's) when known, else the recipe's. */
function namesOf(runs: RunSummary[], rows: TableRow[]): string[] | null {
  return rows[0]?.classNames ?? runs.find((r) => r.classNames)?.classNames ?? classNamesOf(runs.find((r) => r.recipe)?.recipe);
}

/** Creates the folder of an output file up front (before any run is read), naming the path when it cannot. */
function outputFolder(file: string, what: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (err) {
    throw new Error(`report: cannot create the folder of ${what} '${file}' (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Builds the report's HTML (everything inlined). */
export function reportHtml(runs: RunSummary[], o: { title?: string; notes?: string[] } = {}): string {
  const rows = tableRows(runs);
  const classNames = namesOf(runs, rows);
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
  outputFolder(o.out, 'the report');
  if (o.markdown) outputFolder(o.markdown, 'the Markdown table');
  const runs: RunSummary[] = [];
  for (const dir of o.runs) runs.push(await summarizeRun(dir, o.split));
  writeAtomic(o.out, reportHtml(runs, o));
  const rows = tableRows(runs);
  if (o.markdown) writeAtomic(o.markdown, markdownTable(rows, namesOf(runs, rows)));
  return { path: o.out, runs, rows };
}
