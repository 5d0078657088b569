/**
 * `semiseg dashboard`, `semiseg report` and `semiseg compare`: seeing what training does. The dashboard
 * serves a live page over run folders, the report writes one self-contained HTML file, and compare
 * trains several recipes (and seeds) under one budget, evaluates each best checkpoint with `evaluate`'s
 * code and writes the report.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { type Command, InvalidArgumentError } from 'commander';

import { buildReport, formatCell } from '../report/report.js';
import { startDashboard, type Dashboard } from '../report/server.js';
import { getNumThreads } from '../runtime.js';
import { canonicalJson, train, type TrainEvent } from '../trainers/loop.js';
import { recipeNames, RECIPES } from '../trainers/recipes.js';
import { trainData } from './datasets.js';
import { evaluateCheckpoint } from './evaluation.js';
import { intOption, UsageError } from './options.js';
import { progressReporter } from './progress.js';
import { configFrom, plannedRunConfig, plannedRunData, sizeOption, STOP_SIGNALS, type TrainOpts } from './train.js';
import { isImageDataset, readImageDataset } from '../data/folders.js';
import type { TrainConfig } from '../trainers/recipes.js';
import { readCheckpointInfo } from '../io/checkpoint.js';

/**
 * What compare finds in a run folder: a finished run of exactly this config is reused ('done'), an
 * unfinished one of this run resumes from last.ckpt ('resume'), an empty folder trains ('new'). A folder
 * holding a finished run of another config is refused, naming the first setting that differs, so a
 * rerun never overwrites results it did not produce.
 */
export async function priorRun(dir: string, config: TrainConfig): Promise<'done' | 'resume' | 'new'> {
  const final = join(dir, 'final.ckpt');
  if (existsSync(final)) {
    const saved = ((await readCheckpointInfo(final)).extra as { config?: Record<string, unknown> } | undefined)?.config;
    if (!saved) throw new UsageError(`compare: '${final}' was not written by the training loop; use another --out or --retrain`);
    const now = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])].sort();
    const differs = keys.find((k) => canonicalJson(saved[k]) !== canonicalJson(now[k]));
    if (differs !== undefined)
      throw new UsageError(
        `compare: '${dir}' holds a finished run with ${differs} = ${canonicalJson(saved[differs]) ?? 'unset'}, this run ${canonicalJson(now[differs]) ?? 'unset'}; use another --out or --retrain`,
      );
    return 'done';
  }
  return existsSync(join(dir, 'last.ckpt')) ? 'resume' : 'new';
}

/** The evaluation compare wrote earlier for this checkpoint, if it is newer than the checkpoint. */
function priorEvaluation(checkpoint: string, split: string): { cases: number; mean: { dice: number } } | null {
  const json = `${checkpoint}.${split}.json`;
  if (!existsSync(json) || !existsSync(`${checkpoint}.${split}.overlays`) || statSync(json).mtimeMs < statSync(checkpoint).mtimeMs) return null;
  try {
    return JSON.parse(readFileSync(json, 'utf8')) as { cases: number; mean: { dice: number } };
  } catch {
    return null;
  }
}

/** Creates the folder of an output file before any work (as train does), or fails naming the path. */
export function outputFolder(file: string, flag: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (err) {
    throw new UsageError(`${flag}: cannot create the folder '${dirname(file)}' of '${file}' (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Where to listen: `port`, `host:port` or `[v6]:port` (port 0: any free one). */
export interface Listen {
  host?: string;
  port: number;
}

/** Parses `--dashboard [[host:]port]` / `--port`: commander's InvalidArgumentError on anything else. */
export function listenOption(value: string): Listen {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`expected a port (0-65535) or host:port, got '${value}'`);
  return { host: m[1]?.replace(/^\[|\]$/g, ''), port };
}

/**
 * Starts a dashboard for `--dashboard` (true: any free port on 127.0.0.1) and prints its address on
 * stderr; null when the option was not given.
 */
export async function dashboardFor(option: Listen | boolean | undefined, runs: string[]): Promise<Dashboard | null> {
  if (option === undefined || option === false) return null;
  const listen = option === true ? { port: 0 } : option;
  const d = await startDashboard({ runs, host: listen.host, port: listen.port });
  process.stderr.write(`dashboard: ${d.url} (until this command ends; later: semiseg dashboard ${runs.join(' ')})\n`);
  return d;
}

function splitDefault(data: string): 'val' | 'test' {
  if (data === 'synthetic') return 'val';
  if (isImageDataset(data)) return readImageDataset(data).test.length > 0 ? 'test' : 'val'; // imagesTs + labelsTs
  return [data, join(data, 'ACDC'), join(data, 'LA')].some((d) => existsSync(join(d, 'test.list'))) ? 'test' : 'val';
}

/** compare's budget options are train's; the rest is its own. */
interface CompareOpts
  extends Pick<TrainOpts, 'data' | 'seed' | 'labeled' | 'iterations' | 'pretrainIterations' | 'batchSize' | 'labeledBatch' | 'size' | 'lr' | 'validateEvery' | 'valCases' | 'device'> {
  recipes: string;
  seeds: number;
  split?: string;
  out: string;
  retrain?: boolean;
  report?: string;
  markdown?: string;
  dashboard?: Listen | boolean;
}

export function registerReport(program: Command): void {
  program
    .command('dashboard')
    .description('serve a live page of training runs (curves, validation Dice, overlays) that updates as log.jsonl grows')
    .argument('<runs...>', 'run folders (the --out of semiseg train); several are drawn on the same axes')
    .option('--port <n>', 'port (default 0: any free one)', intOption(0, 65535), 0)
    .option('--host <address>', 'address to listen on (default 127.0.0.1: this machine only)', '127.0.0.1')
    .action(async (runs: string[], opts: { port: number; host: string }) => {
      const d = await startDashboard({ runs, host: opts.host, port: opts.port });
      console.log(`semiseg dashboard: ${d.url} (${runs.length} run${runs.length === 1 ? '' : 's'}; Ctrl-C stops)`);
      for (const r of runs) if (!existsSync(join(r, 'log.jsonl'))) console.log(`  ${r}: no log.jsonl yet (shown when training writes one)`);
      await new Promise<void>((done) => process.once('SIGINT', () => done()));
      await d.close();
    });

  program
    .command('report')
    .description('write one self-contained HTML file (curves, comparison table, box plots, overlays) over run folders')
    .argument('<runs...>', 'run folders; their best.ckpt.<split>.json/.csv come from semiseg evaluate (--overlays <run>/best.ckpt.<split>.overlays for pictures)')
    .option('-o, --output <file>', 'the HTML file', 'report.html')
    .option('--split <name>', 'which evaluation to use: val or test (default: test where present, else val)')
    .option('--title <text>', 'page title')
    .option('--note <text>', 'a line for the "how this was made" section (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--markdown <file>', 'also write the comparison table as Markdown')
    .action(async (runs: string[], opts: { output: string; split?: string; title?: string; note?: string[]; markdown?: string }) => {
      if (opts.split !== undefined && opts.split !== 'val' && opts.split !== 'test') throw new UsageError(`--split: expected val or test, got '${opts.split}'`);
      outputFolder(opts.output, '--output');
      if (opts.markdown) outputFolder(opts.markdown, '--markdown');
      for (const r of runs) if (!existsSync(r)) process.stderr.write(`report: '${r}' does not exist (shown as an empty run)\n`);
      const { rows } = await buildReport({ runs, out: opts.output, split: opts.split, title: opts.title, notes: opts.note, markdown: opts.markdown });
      console.log(`written: ${opts.output}${opts.markdown ? `, ${opts.markdown}` : ''} (${runs.length} runs, ${rows.length} evaluated recipe${rows.length === 1 ? '' : 's'})`);
    });

  program
    .command('compare')
    .description('train several recipes (and seeds) under the same budget, evaluate each best checkpoint on the same split and write the report')
    .requiredOption('--recipes <a,b,...>', `comma-separated recipes (of ${recipeNames().join(', ')})`)
    .requiredOption('--data <dir>', "dataset folder, or 'synthetic'")
    .option('--seeds <n>', 'runs of each recipe (seeds seed, seed+1, ...)', intOption(1, 100), 1)
    .option('--seed <n>', "first seed (default each recipe's)", intOption(0))
    .option('--labeled <n>', 'labeled patients (ACDC) or volumes (LA)', intOption(1))
    .option('--iterations <n>', 'training iterations (BCP: self-training)', intOption(1))
    .option('--pretrain-iterations <n>', 'BCP pre-training iterations', intOption(0))
    .option('--batch-size <n>', 'batch size', intOption(1))
    .option('--labeled-batch <n>', 'labeled items per batch', intOption(1))
    .option('--size <s>', 'slice size or patch, e.g. 128 or 112x112x80', sizeOption)
    .option('--lr <x>', 'base learning rate')
    .option('--validate-every <n>', 'iterations between validations', intOption(1))
    .option('--val-cases <n>', 'validate (choose the best checkpoint) on the first n volumes only', intOption(1))
    .option('--device <d>', 'cpu, cuda or cuda:N')
    .option('--split <name>', 'evaluation split: val or test (default test where the data has it, else val)')
    .option('--out <dir>', 'folder of the run folders (<recipe>-seed<k>); finished runs of the same settings there are reused, unfinished ones resume', 'runs/compare')
    .option('--retrain', 'train every run anew, overwriting what --out holds')
    .option('-o, --report <file>', 'the report (default <out>/report.html)')
    .option('--markdown <file>', 'the comparison table as Markdown (default <out>/report.md)')
    .option('--dashboard [port]', 'serve a live dashboard of the runs while they train (port or host:port; default any free port on 127.0.0.1)', listenOption)
    .action(async (opts: CompareOpts) => {
      const recipes = opts.recipes.split(',').map((r) => r.trim()).filter(Boolean);
      if (recipes.length === 0) throw new UsageError('--recipes: give at least one recipe');
      for (const r of recipes) if (!RECIPES[r]) throw new UsageError(`--recipes: unknown recipe '${r}' (one of ${recipeNames().join(', ')})`);
      if (opts.split !== undefined && opts.split !== 'val' && opts.split !== 'test') throw new UsageError(`--split: expected val or test, got '${opts.split}'`);
      if (opts.data !== 'synthetic' && !existsSync(opts.data)) throw new UsageError(`--data: '${opts.data}' does not exist`);
      const split = (opts.split as 'val' | 'test' | undefined) ?? splitDefault(opts.data);
      // a Decathlon / nnU-Net folder is planned (the same plan for every run) and preprocessed per run
      const planned = opts.data !== 'synthetic' && isImageDataset(opts.data);
      const plan: { recipe: string; config: TrainConfig; dir: string }[] = [];
      for (const recipe of recipes)
        for (let k = 0; k < opts.seeds; k++) {
          const o = { ...opts, recipe, seed: (opts.seed ?? RECIPES[recipe].seed) + k, nnodes: 1, nodeRank: 0 };
          const config = planned ? await plannedRunConfig(o as TrainOpts) : configFrom(o);
          plan.push({ recipe, config, dir: resolve(opts.out, `${recipe}-seed${config.seed}`) });
        }
      const report = opts.report ?? join(opts.out, 'report.html');
      const markdown = opts.markdown ?? join(opts.out, 'report.md');
      // the report's folders now, not after hours of training
      outputFolder(report, '--report');
      outputFolder(markdown, '--markdown');
      const budget = [
        opts.labeled !== undefined ? `labeled ${opts.labeled}` : null,
        opts.iterations !== undefined ? `iterations ${opts.iterations}` : null,
        opts.pretrainIterations !== undefined ? `pre-training ${opts.pretrainIterations}` : null,
        opts.size ? `size ${opts.size.join('x')}` : null,
        opts.batchSize !== undefined ? `batch ${opts.batchSize}` : null,
        opts.lr !== undefined ? `lr ${opts.lr}` : null,
        opts.labeledBatch !== undefined ? `labeled batch ${opts.labeledBatch}` : null,
        opts.validateEvery !== undefined ? `validate every ${opts.validateEvery}` : null,
        opts.valCases !== undefined ? `${opts.valCases} validation cases` : null,
      ].filter(Boolean);
      console.log(`semiseg compare: ${recipes.join(', ')} x ${opts.seeds} seed${opts.seeds === 1 ? '' : 's'} on ${opts.data}; budget: ${budget.join(', ') || "each recipe's own"}; evaluation on the ${split} split; ${getNumThreads()} thread${getNumThreads() === 1 ? '' : 's'}`);
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      for (const s of STOP_SIGNALS) process.once(s, onSignal); // Ctrl-C, docker stop: last.ckpt is saved
      const dashboard = await dashboardFor(opts.dashboard, plan.map((p) => p.dir));
      try {
        // check every folder before training anything, so a clash is found in seconds, not after hours
        const prior = opts.retrain ? plan.map(() => 'new' as const) : await Promise.all(plan.map((p) => priorRun(p.dir, p.config)));
        for (const [i, p] of plan.entries()) {
          const state = prior[i];
          console.log(`\n[${i + 1}/${plan.length}] ${p.recipe} seed ${p.config.seed} -> ${p.dir}${state === 'done' ? ' (finished earlier: reused)' : state === 'resume' ? ' (resuming from last.ckpt)' : ''}`);
          if (state !== 'done') {
            // --retrain: this run's folder (compare's own <recipe>-seed<k>) starts empty, so its log and
            // evaluations are not mixed with the previous run's
            if (opts.retrain) rmSync(p.dir, { recursive: true, force: true });
            const data = planned ? await plannedRunData({ ...opts, out: p.dir } as unknown as TrainOpts, p.config, false) : trainData(opts.data, p.config);
            const report = progressReporter(process.stdout.isTTY ? 'tty' : 'lines');
            try {
              await train(p.config, { data, out: p.dir, signal: controller.signal, resume: state === 'resume', onEvent: (e: TrainEvent) => report(e) });
            } finally {
              data.dispose();
            }
          }
          const checkpoint = join(p.dir, 'best.ckpt');
          if (!existsSync(checkpoint)) throw new Error(`compare: ${p.recipe} seed ${p.config.seed} wrote no '${checkpoint}'`);
          const summary =
            (state === 'done' && priorEvaluation(checkpoint, split)) ||
            (await evaluateCheckpoint({ checkpoint, data: opts.data, split, overlays: `${checkpoint}.${split}.overlays` })).summary;
          console.log(`  ${split} Dice ${(100 * summary.mean.dice).toFixed(2)} % over ${summary.cases} cases (${checkpoint}.${split}.json)`);
        }
      } finally {
        for (const s of STOP_SIGNALS) process.removeListener(s, onSignal);
        await dashboard?.close();
      }
      const notes = [
        `semiseg compare --recipes ${recipes.join(',')} --data ${opts.data} --seeds ${opts.seeds}${budget.length ? ` (${budget.join(', ')})` : ''}; best checkpoints chosen on the validation volumes seen in training, evaluated on the ${split} split.`,
      ];
      const { rows } = await buildReport({ runs: plan.map((p) => p.dir), out: report, split, title: `semiseg compare: ${recipes.join(', ')}`, notes, markdown });
      console.log(`\n${split} split, mean Dice % (± std ${opts.seeds > 1 ? 'over seeds' : 'over cases'})`);
      for (const r of rows) console.log(`  ${r.label.padEnd(28)} ${formatCell('dice', r.cells.mean.dice)}`);
      console.log(`written: ${report}, ${markdown}`);
    });
}
