/**
 * `semiseg train --nproc N`: starts N local worker processes of the same command with the PyTorch
 * rendezvous variables (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), shows
 * rank 0's output and the others' errors prefixed by their rank, forwards Ctrl-C and SIGTERM (every rank
 * stops at the same iteration and rank 0 writes last.ckpt), and when one worker fails stops the rest and
 * exits 1.
 * With --nnodes M --node-rank K the same command on each machine makes one group of M x N ranks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

import { UsageError } from './options.js';

export interface LaunchOptions {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr?: string;
  masterPort?: number;
}

/** The options only the launcher reads, removed from what the workers get. */
const LAUNCHER_OPTIONS = ['--nproc', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

export function workerArgs(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.split('=')[0];
    if (LAUNCHER_OPTIONS.includes(name)) {
      if (!a.includes('=')) i++; // its value
      continue;
    }
    out.push(a);
  }
  return out;
}

/** A TCP port free on 127.0.0.1 just now (the rendezvous port of a one-machine run). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

/** Runs the workers; resolves with the exit status for the launcher. */
export async function launch(o: LaunchOptions, argv: string[] = process.argv.slice(2)): Promise<number> {
  if (o.nodeRank >= o.nnodes) throw new UsageError(`--node-rank ${o.nodeRank} must be below --nnodes ${o.nnodes}`);
  const envPort = process.env.MASTER_PORT ? Number(process.env.MASTER_PORT) : undefined;
  const masterAddr = o.masterAddr ?? process.env.MASTER_ADDR ?? (o.nnodes === 1 ? '127.0.0.1' : undefined);
  let masterPort = o.masterPort ?? envPort;
  if (o.nnodes > 1 && (!masterAddr || !masterPort))
    throw new UsageError('--nnodes > 1 needs --master-addr and --master-port (or MASTER_ADDR and MASTER_PORT): the address of node 0, the same on every node');
  masterPort ??= await freePort();
  const worldSize = o.nproc * o.nnodes;
  const args = [...process.execArgv, process.argv[1], ...workerArgs(argv)];
  const children: ChildProcess[] = [];
  const exits: Promise<{ rank: number; code: number | null; signal: NodeJS.Signals | null }>[] = [];
  let failed: { rank: number; code: number | null; signal: NodeJS.Signals | null } | null = null;
  let stopTimer: NodeJS.Timeout | null = null;

  const stopOthers = () => {
    if (stopTimer) return;
    // The others notice the lost rank at their next collective and exit on their own; stop the stragglers.
    stopTimer = setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      setTimeout(() => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, 5000).unref();
    }, 15000);
    stopTimer.unref();
  };

  for (let local = 0; local < o.nproc; local++) {
    const rank = o.nodeRank * o.nproc + local;
    const env = {
      ...process.env,
      RANK: String(rank),
      LOCAL_RANK: String(local),
      WORLD_SIZE: String(worldSize),
      LOCAL_WORLD_SIZE: String(o.nproc),
      MASTER_ADDR: masterAddr as string,
      MASTER_PORT: String(masterPort),
    };
    const child = spawn(process.execPath, args, { env, stdio: rank === 0 ? 'inherit' : ['ignore', 'ignore', 'pipe'] });
    if (child.stderr) {
      const lines = createInterface({ input: child.stderr });
      lines.on('line', (line) => process.stderr.write(`[rank ${rank}] ${line}\n`));
    }
    children.push(child);
    exits.push(
      new Promise((resolve) => {
        child.on('close', (code, signal) => {
          if ((code !== 0 || signal) && !failed) {
            failed = { rank, code, signal };
            stopOthers();
          }
          resolve({ rank, code, signal });
        });
        child.on('error', (err) => {
          process.stderr.write(`semiseg: could not start rank ${rank}: ${err.message}\n`);
          if (!failed) failed = { rank, code: 1, signal: null };
          stopOthers();
          resolve({ rank, code: 1, signal: null });
        });
      }),
    );
  }
  const alive = () => children.filter((c) => c.exitCode === null && c.signalCode === null);
  // The first Ctrl-C or SIGTERM (docker stop, a scheduler) asks the workers to stop at the next iteration
  // (rank 0 writes last.ckpt); a second one, or SIGHUP, terminates them (SIGKILL 5 s later for one stuck
  // in a collective).
  let interrupts = 0;
  const terminate = () => {
    for (const c of alive()) c.kill('SIGTERM');
    setTimeout(() => alive().forEach((c) => c.kill('SIGKILL')), 5000).unref();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (signal !== 'SIGHUP' && ++interrupts === 1) alive().forEach((c) => c.kill('SIGINT'));
    else terminate();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    await Promise.all(exits);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGHUP', onSignal);
    if (stopTimer) clearTimeout(stopTimer);
  }
  const f = failed as { rank: number; code: number | null; signal: NodeJS.Signals | null } | null;
  if (!f) return 0;
  const how = f.signal ? `was killed by ${f.signal}` : `exited with status ${f.code}`;
  process.stderr.write(`semiseg: rank ${f.rank} of ${worldSize} ${how}; the other ranks were stopped\n`);
  return f.code && f.code > 0 ? f.code : 1;
}
