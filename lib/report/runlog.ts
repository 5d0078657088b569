/**
 * Reading a run folder's `log.jsonl` for the dashboard and the report, tolerantly: a missing folder or
 * file, an empty file, a truncated last line (a run killed mid-write) or a corrupt line never throw; what
 * parses is used and the rest is counted. The dashboard reads incrementally: each poll returns only the
 * events appended since the last one (a line still being written waits for its newline).
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

import type { OverlayIndex } from './overlays.js';

/** One parsed line of `log.jsonl` (a TrainEvent with its `time`); kept loose: logs of other versions parse too. */
export type LogEvent = { type: string; [key: string]: unknown };

/** What a run folder holds right now. */
export type RunStatus = 'missing' | 'empty' | 'ok';

/** The events of one run folder, read incrementally. */
export class RunLog {
  /** The run folder (absolute). */
  readonly dir: string;
  /** A display name: the folder's name. */
  readonly name: string;
  readonly events: LogEvent[] = [];
  /** Lines that did not parse as JSON events. */
  skipped = 0;
  private offset = 0;
  private partial = '';
  private overlayStamp = '';

  constructor(dir: string, name?: string) {
    this.dir = resolve(dir);
    this.name = name ?? basename(this.dir);
  }

  get logPath(): string {
    return join(this.dir, 'log.jsonl');
  }

  get status(): RunStatus {
    if (!existsSync(this.logPath)) return 'missing';
    return this.events.length === 0 ? 'empty' : 'ok';
  }

  /**
   * Reads what was appended since the last call. Returns the new events, or `'reset'` when the file
   * shrank or was replaced (the events were then re-read from the start).
   */
  poll(): LogEvent[] | 'reset' {
    let size: number;
    try {
      size = statSync(this.logPath).size;
    } catch {
      if (this.offset === 0) return [];
      this.clear();
      return 'reset';
    }
    if (size < this.offset) {
      this.clear();
      this.poll();
      return 'reset';
    }
    if (size === this.offset) return [];
    let text: string;
    try {
      const fd = openSync(this.logPath, 'r');
      try {
        const buf = Buffer.alloc(size - this.offset);
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        // stop at the last complete UTF-8 line: a multi-byte character is never split
        const end = buf.lastIndexOf(0x0a, n - 1);
        if (end < 0) {
          this.partial = buf.subarray(0, n).toString('utf8');
          return [];
        }
        text = buf.subarray(0, end + 1).toString('utf8');
        this.offset += end + 1;
        this.partial = buf.subarray(end + 1, n).toString('utf8');
      } finally {
        closeSync(fd);
      }
    } catch {
      return [];
    }
    const fresh: LogEvent[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      const e = parseLine(line);
      if (e) fresh.push(e);
      else this.skipped++;
    }
    this.events.push(...fresh);
    return fresh;
  }

  /**
   * The events so far plus a last line without its newline if it parses (a finished run whose final
   * newline is missing); a truncated last line is left out.
   */
  all(): LogEvent[] {
    const last = this.partial.trim() === '' ? null : parseLine(this.partial);
    return last ? [...this.events, last] : this.events;
  }

  /** The latest validation overlays (`overlays/index.json`), or null when there are none (or it is unreadable). */
  overlays(): OverlayIndex | null {
    try {
      const index = JSON.parse(readFileSync(join(this.dir, 'overlays', 'index.json'), 'utf8')) as OverlayIndex;
      if (!Array.isArray(index.files) || !index.files.every((f) => typeof f === 'string' && OVERLAY_FILE.test(f))) return null;
      return index;
    } catch {
      return null;
    }
  }

  /** Whether `overlays/index.json` changed since the last call (its size and modification time). */
  overlaysChanged(): boolean {
    let stamp = '';
    try {
      const s = statSync(join(this.dir, 'overlays', 'index.json'));
      stamp = `${s.size}:${s.mtimeMs}`;
    } catch {
      stamp = '';
    }
    const changed = stamp !== this.overlayStamp;
    this.overlayStamp = stamp;
    return changed && stamp !== '';
  }

  private clear(): void {
    this.events.length = 0;
    this.offset = 0;
    this.partial = '';
    this.skipped = 0;
  }
}

/** The names of overlay pictures the dashboard serves (what the training loop writes). */
export const OVERLAY_FILE = /^[A-Za-z0-9_-]{1,64}\.png$/;

function parseLine(line: string): LogEvent | null {
  try {
    const e = JSON.parse(line) as unknown;
    if (e && typeof e === 'object' && !Array.isArray(e) && typeof (e as LogEvent).type === 'string') return e as LogEvent;
  } catch {
    // a truncated or corrupt line
  }
  return null;
}

/** All events of a run folder at once (missing or empty folders give none). */
export function readRun(dir: string, name?: string): RunLog {
  const log = new RunLog(dir, name);
  log.poll();
  return log;
}

/**
 * Fewer iteration events for a chart: at most `max` per stage, evenly spaced, always keeping each
 * stage's last one; every other event is kept.
 */
export function thinIterations(events: LogEvent[], max = 2000): LogEvent[] {
  const perStage = new Map<string, number>();
  for (const e of events) if (e.type === 'iteration') perStage.set(String(e.stage), (perStage.get(String(e.stage)) ?? 0) + 1);
  const seen = new Map<string, number>();
  return events.filter((e) => {
    if (e.type !== 'iteration') return true;
    const stage = String(e.stage);
    const n = perStage.get(stage) ?? 0;
    const k = seen.get(stage) ?? 0;
    seen.set(stage, k + 1);
    if (n <= max) return true;
    const step = n / max;
    return k === n - 1 || Math.floor(k / step) !== Math.floor((k + 1) / step);
  });
}
