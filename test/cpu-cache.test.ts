// The large-block CPU cache (cpp/tensor/cpu_cache.h, `cpuCache`): freed blocks of >= 1 MiB are reused,
// the footprint stays within the peak in use plus slack, empty() and setEnabled() give memory back, and
// SEMISEG_CPU_CACHE=0 at load turns it off. Counters, not timings (benchmarks/NOTES.md has those).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { cpuCache, manualSeed, nets, noGrad, ones, randn, zeros, type Tensor } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const MiB = 2 ** 20;
const floats = (mib: number) => [(mib * MiB) / 4];

test.serial('a freed large block is handed out again, with the new contents', (t) => {
  t.true(cpuCache.stats().enabled);
  const a = ones(floats(6)); // 6 MiB: a new block (or one this process already freed)
  a.dispose();
  const s0 = cpuCache.stats();
  t.true(s0.cachedBytes >= 6 * MiB, `cached ${s0.cachedBytes}`);
  const b = zeros(floats(6)); // the same size: served from the cache, and zeroed by the op, not left as ones
  const s1 = cpuCache.stats();
  t.is(s1.hits, s0.hits + 1);
  t.is(s1.misses, s0.misses);
  t.is(s1.cachedBytes, s0.cachedBytes - 6 * MiB);
  t.is(b.sum().item(), 0);
  b.dispose();
  // small tensors never touch the cache
  const s2 = cpuCache.stats();
  zeros([1000]).dispose();
  t.deepEqual(cpuCache.stats(), s2);
});

test.serial('in use + cached stays within the peak in use plus slack, whatever the sizes', (t) => {
  cpuCache.empty();
  const held: Tensor[] = [];
  for (let i = 0; i < 20; i++) held.push(ones(floats(8)));
  for (const x of held.splice(0)) x.dispose(); // 160 MiB freed into the cache
  const peak = cpuCache.stats().peakInUseBytes;
  const slack = Math.max(64 * MiB, peak / 8);
  // sizes the cache has never seen: misses that must release cached blocks rather than grow
  for (let mib = 3; mib < 60; mib += 4) {
    const x = randn(floats(mib));
    const s = cpuCache.stats();
    t.true(s.inUseBytes + s.cachedBytes <= s.peakInUseBytes + Math.max(64 * MiB, s.peakInUseBytes / 8), `at ${mib} MiB: ${JSON.stringify(s)}`);
    x.dispose();
  }
  const end = cpuCache.stats();
  t.true(end.releases > 0, 'cached blocks were released to make room');
  t.true(end.cachedBytes + end.inUseBytes <= peak + slack);
});

test.serial('a network forward repeated: no new block after the first pass, same output with the cache off', async (t) => {
  manualSeed(3);
  const net = nets.VNet3D({ hasDropout: false });
  net.eval();
  const x = randn([2, 1, 48, 48, 32]);
  const forward = () => noGrad(() => net.forward(x));
  try {
    (await forward()).dispose();
    (await forward()).dispose();
    const before = cpuCache.stats();
    const y = await forward();
    const after = cpuCache.stats();
    t.is(after.misses, before.misses, 'steady state: every large block comes from the cache');
    t.true(after.hits > before.hits);
    cpuCache.setEnabled(false);
    const off = cpuCache.stats();
    t.is(off.cachedBytes, 0);
    const z = await forward();
    const offAfter = cpuCache.stats();
    t.is(offAfter.cachedBytes, 0, 'off: freed blocks go back to the system');
    t.deepEqual([offAfter.hits, offAfter.misses], [off.hits, off.misses], "off: LibTorch's own allocator serves the forward");
    t.is(y.sub(z).abs().max().item(), 0);
    y.dispose();
    z.dispose();
  } finally {
    cpuCache.setEnabled(true);
    x.dispose();
    net.dispose();
  }
});

test.serial('a worker thread loading the addon keeps the process-wide setting', async (t) => {
  cpuCache.setEnabled(false);
  try {
    const entry = JSON.stringify(join(packageRoot, 'dist', 'lib', 'index.js'));
    const code = `const { parentPort } = require('node:worker_threads');
      import(${entry}).then((s) => { s.ones([4 * 2 ** 20]).dispose(); parentPort.postMessage(s.cpuCache.stats()); });`;
    const w = new Worker(code, { eval: true });
    const seen = await new Promise<ReturnType<typeof cpuCache.stats>>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    t.false(seen.enabled);
    t.false(cpuCache.stats().enabled);
    t.is(seen.cachedBytes, 0);
  } finally {
    cpuCache.setEnabled(true);
  }
});

test.serial('empty() gives every cached block back; bad arguments are refused', (t) => {
  ones(floats(4)).dispose();
  const s = cpuCache.stats();
  t.true(s.cachedBytes > 0);
  cpuCache.empty();
  const e = cpuCache.stats();
  t.is(e.cachedBytes, 0);
  t.true(e.releases > s.releases);
  t.throws(() => cpuCache.setEnabled('no' as unknown as boolean), { instanceOf: TypeError, message: /cpuCache.setEnabled\(\): argument 'enabled' must be a boolean/ });
});

test('SEMISEG_CPU_CACHE=0 at load leaves LibTorch its own allocator', (t) => {
  const script = `import { cpuCache, ones } from ${JSON.stringify(join(packageRoot, 'dist', 'lib', 'index.js'))};
ones([4 * 2 ** 20]).dispose();
console.log(JSON.stringify(cpuCache.stats()));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, SEMISEG_CPU_CACHE: '0' }, encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as ReturnType<typeof cpuCache.stats>;
  t.false(s.enabled);
  t.is(s.hits + s.misses + s.cachedBytes + s.inUseBytes, 0);
});
