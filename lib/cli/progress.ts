/** Progress of a training run on a terminal (one rewritten line), in logs (a line now and then) or as JSON lines. */
import type { TrainEvent } from '../trainers/loop.js';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function progressReporter(mode: 'tty' | 'lines' | 'json'): (e: TrainEvent) => void {
  let lastDice = NaN;
  let open = false;
  const line = (s: string) => {
    if (open) process.stdout.write('\n');
    open = false;
    console.log(s);
  };
  return (e) => {
    if (mode === 'json') {
      console.log(JSON.stringify(e));
      return;
    }
    switch (e.type) {
      case 'start':
        lastDice = NaN; // one reporter can serve several runs (the demo's): no Dice of the run before
        line(`semiseg train: ${e.recipe} (${e.method}), ${e.stages.map((s) => `${s.name} ${s.iterations}`).join(' + ')} iterations${e.resumedAt ? `, resumed at ${e.resumedAt.stage} ${e.resumedAt.iteration}` : ''}`);
        break;
      case 'iteration': {
        const width = 20;
        const done = Math.round((e.iteration / e.iterations) * width);
        const text = `[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${e.stage} ${e.iteration}/${e.iterations} loss ${e.loss.toFixed(4)} lr ${e.lr.toPrecision(3)} val Dice ${Number.isNaN(lastDice) ? '-' : lastDice.toFixed(4)} ${duration(e.etaSeconds)} left`;
        if (mode === 'tty') {
          process.stdout.write(`\r${text}\x1b[K`);
          open = true;
        } else if (e.iteration % 50 === 0 || e.iteration === e.iterations) {
          console.log(text);
        }
        break;
      }
      case 'validation':
        lastDice = e.dice;
        line(`  ${e.stage} ${e.iteration}: validation Dice ${e.dice.toFixed(4)} (best ${e.bestDice.toFixed(4)})${e.improved ? ' *' : ''}`);
        break;
      case 'done':
        line(`done in ${duration(e.seconds)}: best ${e.best ? `Dice ${e.best.dice.toFixed(4)} at ${e.best.stage} ${e.best.iteration} (${e.best.path})` : 'none'}; final ${e.final}`);
        break;
      default:
        break;
    }
  };
}
