// The native job queue: bounded concurrency, a pending count, and workers terminated with jobs queued.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';

import { liveTensors, maxConcurrentJobs, pendingJobs, rand, setMaxConcurrentJobs } from '../lib/index.js';
import { repoRoot } from './helpers/reference.js';

test.serial('jobs queue on the compute threads and the pending count drains', async (t) => {
  t.is(maxConcurrentJobs(), 1);
  const a = rand([512, 512]);
  const jobs = [a.matmulAsync(a), a.matmulAsync(a), a.matmulAsync(a)];
  t.true(pendingJobs() >= 1);
  const out = await Promise.all(jobs);
  t.is(pendingJobs(), 0);
  t.deepEqual(out[0].toArray(), out[2].toArray());
  setMaxConcurrentJobs(2);
  t.is(maxConcurrentJobs(), 2);
  const more = await Promise.all([a.matmulAsync(a), a.matmulAsync(a)]);
  t.deepEqual(more[0].toArray(), out[0].toArray());
  t.throws(() => setMaxConcurrentJobs(0), { instanceOf: RangeError, message: /setMaxConcurrentJobs\(\): argument 'n' must be an integer between 1 and 64, got 0/ });
  for (const x of [a, ...out, ...more]) x.dispose();
});

test.serial('a worker thread terminated with native jobs queued does not take the process down', async (t) => {
  const start = liveTensors();
  const entry = join(repoRoot, 'dist/lib/index.js');
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(entry)}).then(async (s) => {
      const a = s.rand([768, 768]);
      for (let i = 0; i < 6; i++) a.matmulAsync(a); // queued, never awaited
      const r = await a.matmulAsync(s.ones([768, 1]));
      parentPort.postMessage({ live: s.liveTensors(), shape: r.shape });
      for (let i = 0; i < 6; i++) a.matmulAsync(a);
      parentPort.postMessage('queued');
    });`;
  for (let round = 0; round < 3; round++) {
    const w = new Worker(code, { eval: true });
    const first = await new Promise<{ live: number; shape: number[] }>((resolve) => w.once('message', resolve));
    t.deepEqual(first.shape, [768, 1]);
    await new Promise((resolve) => w.once('message', resolve));
    await w.terminate(); // with jobs still queued on the compute thread
  }
  // the main thread still computes, and its own tensors were never touched
  const a = rand([64, 64]);
  const b = await a.matmulAsync(a);
  t.deepEqual(b.shape, [64, 64]);
  a.dispose();
  b.dispose();
  t.is(liveTensors(), start);
});

test.serial('a process that exits while native jobs run ends with its own exit code, not a crash', (t) => {
  const entry = JSON.stringify(join(repoRoot, 'dist/lib/index.js'));
  const cases: Array<[string, string, number]> = [
    // an uncaught exception while a forward is in flight (exit code 139 before the fix, half the time)
    ['uncaught', `const s = await import(${entry}); const net = s.nets.UNet2D({ inChannels: 1, outChannels: 4 }); s.tidy(() => net.forward(s.ones([2, 1, 64, 64])));`, 1],
    // process.exit() with jobs running and queued
    ['exit', `const s = await import(${entry}); const a = s.rand([700, 700]); for (let i = 0; i < 4; i++) a.matmulAsync(a); setTimeout(() => process.exit(3), 5);`, 3],
  ];
  for (const [name, code, expected] of cases) {
    for (let run = 0; run < 6; run++) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60000 });
      t.is(r.signal, null, `${name} run ${run}: killed by ${r.signal}`);
      t.is(r.status, expected, `${name} run ${run}: ${r.stderr.slice(-300)}`);
    }
  }
});
