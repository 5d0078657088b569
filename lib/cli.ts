#!/usr/bin/env node
/**
 * The semiseg command line. Bad arguments print one clear line and exit with status 2; a failure
 * while working prints one line and exits with status 1. No stack traces unless SEMISEG_DEBUG is set.
 */
import { readFileSync } from 'node:fs';

import { Command, CommanderError } from 'commander';

import { registerEvaluate } from './cli/evaluate.js';
import { intOption, SilentExit, UsageError } from './cli/options.js';
import { registerPlan } from './cli/planned.js';
import { registerPredict } from './cli/predict.js';
import { progressReporter } from './cli/progress.js';
import { registerReport } from './cli/report.js';
import { registerTrain } from './cli/train.js';
import { runDemo } from './demo/demo.js';
import { packageRoot } from './native.js';
import { buildInfo, cpuCache, cuda, getNumThreads, setNumThreads } from './runtime.js';

const { version } = JSON.parse(readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command()
    .name('semiseg')
    .description('Semi-supervised medical image segmentation with LibTorch compute')
    .version(version)
    .option('--threads <n>', 'LibTorch intra-op threads', intOption(1, 1024))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride() // before .command(): subcommands inherit it
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .hook('preAction', (cmd) => {
      const threads = cmd.opts().threads as number | undefined;
      if (threads !== undefined) setNumThreads(threads);
    });

  program
    .command('demo')
    .description('train supervised-only and BCP with the same budget on the bundled hippocampus MRI (or --data) and print both scores')
    .option('--iterations <n>', 'iterations of each run (default 600 on NIfTI data, 300 otherwise)', intOption(30, 1_000_000))
    .option('--size <n>', "slice or patch side (NIfTI data: default the plan's; 64 synthetic, 128 ACDC)", intOption(16, 512))
    .option('--seed <n>', 'random seed', intOption(0), 1337)
    .option('--data <dir>', "a Decathlon / nnU-Net folder, an ACDC folder, or 'synthetic' (default: the bundled Decathlon hippocampus subset)")
    .option('--labeled <n>', 'labeled cases (default 6 of the bundled 40; ACDC: patients, default 7)', intOption(1))
    .option('--network <kind>', "NIfTI data: UNet2D (axial slices, default: CPU minutes) or VNet3D (the plan's 3-D choice)", 'UNet2D')
    .option('--out <dir>', 'output folder', 'runs/demo')
    .option('--json', 'print progress and the result as JSON lines')
    .action(async (opts: { iterations?: number; size?: number; seed: number; data?: string; labeled?: number; network: string; out: string; json?: boolean }) => {
      if (opts.network !== 'UNet2D' && opts.network !== 'VNet3D') throw new UsageError(`--network: expected UNet2D or VNet3D, got '${opts.network}'`);
      const json = Boolean(opts.json);
      const where = opts.data === 'synthetic' ? 'synthetic slices' : (opts.data ?? 'the bundled Decathlon hippocampus MRI (40 volumes, CC BY-SA 4.0)');
      if (opts.size !== undefined && opts.size % 16 !== 0 && opts.data !== 'synthetic') throw new UsageError(`--size: ${opts.size} is not a multiple of 16 (the networks halve the resolution four times)`);
      if (!json) console.log(`semiseg demo: supervised-only vs BCP, ${opts.iterations ?? 'the default'} iterations each on ${where}, ${getNumThreads()} thread${getNumThreads() === 1 ? '' : 's'}`);
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      const report = progressReporter(json ? 'json' : process.stdout.isTTY ? 'tty' : 'lines');
      const tty = process.stderr.isTTY && !json;
      const result = await runDemo({
        iterations: opts.iterations,
        size: opts.size,
        seed: opts.seed,
        data: opts.data,
        labeled: opts.labeled,
        network: opts.network,
        out: opts.out,
        signal: controller.signal,
        onEvent: (_, e) => report(e),
        onCase: tty ? (d, t) => process.stderr.write(`\rpreprocessing: ${d}/${t} cases${d === t ? '\n' : ''}`) : undefined,
      });
      if (json) {
        console.log(JSON.stringify({ event: 'result', ...result }));
        return;
      }
      console.log(`\n${result.labeled} labeled, ${result.unlabeled} unlabeled ${result.plan ? 'volumes' : 'slices'}, ${result.validation} validation volumes (held out)`);
      console.log(`${'validation Dice %'.padEnd(18)} ${result.classes.map((c) => c.slice(0, 9).padStart(9)).join(' ')}      mean   (best iteration, time)`);
      for (const r of result.runs) {
        const cells = [...r.perClass, r.dice].map((d) => (100 * d).toFixed(2).padStart(9)).join(' ');
        console.log(`${r.method.padEnd(18)} ${cells}   (${r.iteration}, ${r.seconds.toFixed(0)} s)`);
      }
      const [sup, bcp] = result.runs;
      if (sup && bcp) {
        const diff = [...bcp.perClass.map((d, i) => d - sup.perClass[i]), bcp.dice - sup.dice].map((d) => `${d >= 0 ? '+' : ''}${(100 * d).toFixed(2)}`.padStart(9)).join(' ');
        console.log(`${'bcp - supervised'.padEnd(18)} ${diff}`);
      }
    });

  registerPlan(program);
  registerTrain(program);
  registerEvaluate(program);
  registerPredict(program);
  registerReport(program);

  program
    .command('info')
    .description('print what the native addon was built against and which devices it sees')
    .action(() => {
      console.log(JSON.stringify({ ...buildInfo(), cudaAvailable: cuda.isAvailable(), cudaDevices: cuda.deviceCount(), threads: getNumThreads(), cpuCache: cpuCache.stats().enabled }, null, 2));
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof SilentExit) return err.code;
    if (err instanceof UsageError) {
      process.stderr.write(`semiseg: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2; // commander already printed its one-line message
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`semiseg: ${message}\n`);
    if (process.env.SEMISEG_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
