/** `semiseg evaluate`: the paper's table (Dice, Jaccard, 95HD, ASD per class and mean over volumes) of a checkpoint. */
import type { Command } from 'commander';

import type { MetricsTable } from '../metrics.js';
import { evaluateCheckpoint } from './evaluation.js';
import { intOption, UsageError } from './options.js';
import { PRECISION_HELP, precisionOption } from './precision.js';

export function formatTable(table: MetricsTable, names: Record<number, string>, units = 'voxels'): string {
  const s = table.summary();
  const row = (label: string, m: Record<string, number>) =>
    `${label.padEnd(12)} ${(100 * m.dice).toFixed(2).padStart(7)} ${(100 * m.jaccard).toFixed(2).padStart(8)} ${m.hd95.toFixed(2).padStart(7)} ${m.asd.toFixed(2).padStart(7)}`;
  return [
    `${'class'.padEnd(12)} ${'Dice %'.padStart(7)} ${'Jacc. %'.padStart(8)} ${'95HD'.padStart(7)} ${'ASD'.padStart(7)}`,
    ...Object.entries(s.classes).map(([c, m]) => row(names[Number(c)] ?? `class ${c}`, m)),
    row('mean', s.mean),
    `(${s.cases} volumes; distances in ${units})`,
  ].join('\n');
}

export function registerEvaluate(program: Command): void {
  program
    .command('evaluate')
    .description("the paper's metrics of a checkpoint on a split, printed and written as JSON and CSV")
    .requiredOption('--checkpoint <file>', 'a semiseg checkpoint (best.ckpt, final.ckpt)')
    .requiredOption('--data <dir>', "dataset folder (ACDC or LA layout), or 'synthetic' (the generated volumes the run validated on)")
    .option('--split <name>', 'val or test', 'test')
    .option('--out <prefix>', 'write <prefix>.json and <prefix>.csv (default <checkpoint>.<split>)')
    .option('--json', 'print the result as JSON')
    .option('--task <id>', 'VerSemi checkpoints: the task (dataset) to segment, 0..T (default 0)', intOption(0))
    .option('--precision <p>', PRECISION_HELP, 'float32')
    .option('--overlays <dir>', 'also write one picture per case, <dir>/<case>.png (image | reference | prediction on a few slices)')
    .action(async (opts: { checkpoint: string; data: string; split: string; out?: string; json?: boolean; task?: number; overlays?: string; precision: string }) => {
      if (opts.split !== 'val' && opts.split !== 'test') throw new UsageError(`--split: expected val or test, got '${opts.split}'`);
      const { table, summary, info, prefix } = await evaluateCheckpoint({
        checkpoint: opts.checkpoint,
        data: opts.data,
        split: opts.split,
        out: opts.out,
        overlays: opts.overlays,
        task: opts.task,
        prepare: (net, settings) => {
          const precision = precisionOption(opts.precision, net.device);
          settings.precision = precision.chosen;
          if (!opts.json && precision.requested === 'auto') process.stderr.write(`precision: ${precision.chosen} (auto)\n`);
          return { precision: settings.precision };
        },
        onVolume: (id, done, total) => {
          if (!opts.json) process.stderr.write(`\revaluating ${done}/${total} (${id})\x1b[K`);
        },
      });
      if (!opts.json) process.stderr.write('\n');
      if (opts.json) console.log(JSON.stringify(summary));
      else {
        const plan = (info.extra?.config as { plan?: { classes?: string[] } } | undefined)?.plan;
        const names: Record<number, string> = plan?.classes ? { ...plan.classes } : info.kind === 'UNet2D' ? { 1: 'RV', 2: 'Myo', 3: 'LV' } : { 1: 'LA' };
        console.log(formatTable(table, names, summary.units === 'mm' ? 'mm' : 'voxels'));
        console.log(`written: ${prefix}.json, ${prefix}.csv${opts.overlays ? `, ${opts.overlays}/` : ''}`);
      }
    });
}
