#!/usr/bin/env node
/**
 * The semiseg command line. Bad arguments print one clear line and exit with status 2; a failure
 * while working prints one line and exits with status 1. No stack traces unless SEMISEG_DEBUG is set.
 */
import { readFileSync } from 'node:fs';

import { Command, CommanderError, InvalidArgumentError } from 'commander';

import { runDemo, type DemoProgress } from './demo/demo.js';
import { packageRoot } from './native.js';
import { buildInfo, cuda, getNumThreads, setNumThreads } from './runtime.js';

const { version } = JSON.parse(readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string };

function intOption(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer between ${min} and ${max}, got '${value}'`);
    return n;
  };
}

function progressLine(p: DemoProgress): string {
  const width = 24;
  const done = Math.round((p.iteration / p.iterations) * width);
  const left = (p.elapsedSeconds / p.iteration) * (p.iterations - p.iteration);
  return `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${p.iteration}/${p.iterations} loss ${p.loss.toFixed(4)} ${left.toFixed(0)}s left`;
}

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
    .description('train a small segmentation network on synthetic cardiac-like slices and print per-class Dice')
    .option('--iterations <n>', 'training iterations', intOption(1, 1_000_000), 300)
    .option('--size <n>', 'image side in pixels', intOption(16, 512), 64)
    .option('--seed <n>', 'random seed', intOption(0), 1337)
    .option('--json', 'print progress and the result as JSON lines')
    .action(async (opts: { iterations: number; size: number; seed: number; json?: boolean }) => {
      const json = Boolean(opts.json);
      const tty = process.stdout.isTTY && !json;
      if (!json) console.log(`semiseg demo: ${opts.iterations} iterations on synthetic ${opts.size}x${opts.size} slices, ${getNumThreads()} threads`);
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      const result = await runDemo({
        iterations: opts.iterations,
        size: opts.size,
        seed: opts.seed,
        signal: controller.signal,
        onProgress: (p) => {
          if (json) console.log(JSON.stringify({ event: 'progress', ...p }));
          else if (tty) process.stdout.write(`\r${progressLine(p)}`);
          else console.log(progressLine(p));
        },
      });
      if (tty) process.stdout.write('\n');
      if (json) {
        console.log(JSON.stringify({ event: 'result', ...result }));
      } else {
        const [rv, myo, lv] = result.dice.map((d) => (100 * d).toFixed(2));
        console.log(`loss ${result.firstLoss.toFixed(4)} -> ${result.lastLoss.toFixed(4)} in ${result.seconds.toFixed(1)} s`);
        console.log(`Dice on 16 held-out slices: RV ${rv}  Myo ${myo}  LV ${lv}  mean ${(100 * result.meanDice).toFixed(2)}`);
      }
    });

  program
    .command('info')
    .description('print what the native addon was built against and which devices it sees')
    .action(() => {
      console.log(JSON.stringify({ ...buildInfo(), cudaAvailable: cuda.isAvailable(), cudaDevices: cuda.deviceCount(), threads: getNumThreads() }, null, 2));
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
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
