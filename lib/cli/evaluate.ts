/** `semiseg evaluate`: the paper's table (Dice, Jaccard, 95HD, ASD per class and mean over volumes) of a checkpoint. */
import type { Command } from 'commander';

import { emptyMaskPolicyLine, type MetricsTable } from '../metrics.js';
import { evaluateCheckpoint } from './evaluation.js';
import { intOption, UsageError } from './options.js';
import { PRECISION_HELP, precisionOption, warnIfEmulated } from './precision.js';

const LABELS = { dice: 'Dice', jaccard: 'Jaccard', hd95: '95HD', asd: 'ASD', assd: 'ASSD' } as const;

/**
 * The printed table: Dice / Jaccard in %, 95HD / ASD per class and mean, and per class the cases with an
 * empty prediction (scored 0 on every metric, 95HD's best value: the count makes a missed class
 * visible). A mean over fewer cases than the split's (undefined values left out) is marked '*' and
 * explained below, then the empty-mask policy in one line.
 */
export function formatTable(table: MetricsTable, names: Record<number, string>, units = 'voxels'): string {
  const s = table.summary();
  const notes: string[] = [];
  const value = (x: number, n: number) => (Number.isNaN(x) ? '–' : x.toFixed(2)) + (n < s.cases ? '*' : '');
  const row = (label: string, m: Record<string, number>, n: Record<string, number>, empty: string) =>
    `${label.padEnd(12)} ${value(100 * m.dice, n.dice).padStart(7)} ${value(100 * m.jaccard, n.jaccard).padStart(8)} ${value(m.hd95, n.hd95).padStart(8)} ${value(m.asd, n.asd).padStart(8)} ${empty.padStart(11)}`;
  const fewer = (label: string, n: Record<string, number>) => {
    const short = (['dice', 'jaccard', 'hd95', 'asd'] as const).filter((k) => n[k] < s.cases);
    if (short.length)
      notes.push(
        label === 'mean'
          ? `* mean: the mean of the class means; ${short.map((k) => LABELS[k]).join(', ')} of a class over as few as ${Math.min(...short.map((k) => n[k]))} of ${s.cases} volumes`
          : `* ${label}: ${short.map((k) => `${LABELS[k]} over ${n[k]}`).join(', ')} of ${s.cases} volumes (undefined in the others: reference empty, prediction not)`,
      );
  };
  const lines = [`${'class'.padEnd(12)} ${'Dice %'.padStart(7)} ${'Jacc. %'.padStart(8)} ${'95HD'.padStart(8)} ${'ASD'.padStart(8)} ${'empty pred.'.padStart(11)}`];
  for (const [c, m] of Object.entries(s.classes)) {
    const label = names[Number(c)] ?? `class ${c}`;
    lines.push(row(label, m, s.counts.classes[Number(c)], `${s.emptyPredictions[Number(c)]}/${s.cases}`));
    fewer(label, s.counts.classes[Number(c)]);
  }
  lines.push(row('mean', s.mean, s.counts.mean, ''));
  fewer('mean', s.counts.mean);
  return [...lines, `(${s.cases} volumes; distances in ${units})`, ...notes, emptyMaskPolicyLine(table.policy())].join('\n');
}

/**
 * Progress on stderr: one rewritten line on a terminal; elsewhere (a log, a pipe) plain lines, at each
 * tenth of the cases and the last, without carriage returns or escape codes.
 */
export function evaluationProgress(stream: { isTTY?: boolean; write: (s: string) => unknown }): { onVolume: (id: string, done: number, total: number) => void; end: () => void } {
  let open = false;
  return {
    onVolume: (id, done, total) => {
      const text = `evaluating ${done}/${total} (${id})`;
      if (stream.isTTY) {
        stream.write(`\r${text}\x1b[K`);
        open = true;
      } else if (done === total || Math.floor((10 * done) / total) > Math.floor((10 * (done - 1)) / total)) {
        stream.write(`${text}\n`);
      }
    },
    end: () => {
      if (open) stream.write('\n');
      open = false;
    },
  };
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
      const progress = evaluationProgress(process.stderr);
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
          warnIfEmulated(precision.chosen, net.device);
          return { precision: settings.precision };
        },
        onVolume: (id, done, total) => {
          if (!opts.json) progress.onVolume(id, done, total);
        },
      });
      progress.end();
      if (opts.json) console.log(JSON.stringify(summary));
      else {
        const plan = (info.extra?.config as { plan?: { classes?: string[] } } | undefined)?.plan;
        const written = summary.classNames as Record<number, string> | undefined;
        const names: Record<number, string> = written ?? (plan?.classes ? { ...plan.classes } : info.kind === 'UNet2D' ? { 1: 'RV', 2: 'Myo', 3: 'LV' } : { 1: 'LA' });
        console.log(formatTable(table, names, summary.units === 'mm' ? 'mm' : 'voxels'));
        console.log(`written: ${prefix}.json, ${prefix}.csv${opts.overlays ? `, ${opts.overlays}/` : ''}`);
      }
    });
}
