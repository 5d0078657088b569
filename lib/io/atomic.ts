/** Atomic file replacement: write a temporary file beside the target, flush it to disk, rename it over. */
import { open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * An error of writing `path` that names the target, not the temporary file beside it:
 * `cannot write '<path>': ENOENT: no such file or directory`. Node's code, errno and syscall are kept.
 */
function writeError(path: string, err: unknown): Error {
  if (!(err instanceof Error)) return new Error(`cannot write '${path}': ${String(err)}`);
  const e = err as NodeJS.ErrnoException;
  // Node's system errors end in ", <syscall> '<temporary path>'" (and " -> '<dest>'" for rename): drop that
  const reason = e.code && e.syscall ? e.message.replace(/, \w+ '[^']*'( -> '[^']*')?$/, '') : e.message;
  const out = new Error(`cannot write '${path}': ${reason}`, { cause: err }) as NodeJS.ErrnoException;
  if (e.code !== undefined) out.code = e.code;
  if (e.errno !== undefined) out.errno = e.errno;
  if (e.syscall !== undefined) out.syscall = e.syscall;
  out.path = path;
  return out;
}

/**
 * Writes `chunks` to `path` atomically: readers see the old file or the whole new one, never part of it.
 * A failure (missing folder, no permission, full disk) leaves no temporary file behind and is an Error
 * naming `path` (with Node's `code`, e.g. 'ENOENT').
 */
export async function writeFileAtomic(path: string, chunks: Uint8Array[]): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'w', 0o644);
  } catch (err) {
    throw writeError(path, err);
  }
  try {
    for (const c of chunks) await fh.write(c);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw writeError(path, err);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `<path>.tmp-<pid>-*` files left by writers that died mid-write (their pid is gone). */
export async function removeStaleTemporaries(path: string): Promise<void> {
  const prefix = `${basename(path)}.tmp-`;
  const entries = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) await rm(join(dirname(path), name), { force: true });
  }
}
