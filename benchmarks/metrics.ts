/**
 * hd95 on an LA-sized volume (about 240 x 160 x 88): semiseg (one thread) against the medpy-definition scipy
 * reference. Uses a real LA label (SEMISEG_DATA or ../shared/data, read by the reference python) shifted by
 * a few voxels as the prediction.   node dist/benchmarks/metrics.js [--iterations N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { binaryMetrics, dispose, readTorchStateDict, setNumThreads } from '../lib/index.js';
import { repoRoot, stats, writeReport, machine } from './harness.js';

const iterations = Number(process.argv[process.argv.indexOf('--iterations') + 1]) || 5;
const data = process.env.SEMISEG_DATA ?? join(repoRoot, '..', 'shared', 'data');
const python = process.env.SEMISEG_PYTHON ?? join(repoRoot, '.venv/bin/python3');
const dir = mkdtempSync(join(tmpdir(), 'semiseg-bench-metrics-'));
const masksPath = join(dir, 'masks.pt');
const make = spawnSync(python, ['-c', `
import h5py, numpy as np, torch
ids = open(${JSON.stringify(join(data, 'LA/train.list'))}).read().split()
ref = h5py.File(${JSON.stringify(join(data, 'LA/2018LA_Seg_Training Set'))} + '/' + ids[0] + '/mri_norm2.h5', 'r')['label'][:] > 0
pred = np.roll(ref, (3, -2, 1), axis=(0, 1, 2))
torch.save({'pred': torch.from_numpy(pred.astype(np.uint8)), 'ref': torch.from_numpy(ref.astype(np.uint8))}, ${JSON.stringify(masksPath)})
print(ref.shape)`], { encoding: 'utf8' });
if (make.status !== 0) throw new Error(`could not prepare the LA masks: ${make.stderr}`);
setNumThreads(1);
const m = await readTorchStateDict(masksPath);
const ours: number[] = [];
let value = NaN;
for (let i = 0; i < iterations + 1; i++) {
  const t0 = process.hrtime.bigint();
  value = binaryMetrics(m.pred, m.ref).hd95;
  if (i > 0) ours.push(Number(process.hrtime.bigint() - t0) / 1e9); // first run is the warm-up
}
const ref = spawnSync(python, [join(repoRoot, 'benchmarks/reference/bench_metrics.py'), masksPath, String(iterations)], { encoding: 'utf8' });
if (ref.status !== 0) throw new Error(ref.stderr);
const r = JSON.parse(ref.stdout) as { times: number[]; value: number; peak_rss_kb: number };
const s = stats(ours, process.resourceUsage().maxRSS);
const rs = stats(r.times, r.peak_rss_kb);
console.error(`hd95 ${m.pred.shape.join('x')}: semiseg ${value} in ${(s.median * 1000).toFixed(1)} ms, scipy ${r.value} in ${(rs.median * 1000).toFixed(1)} ms`);
console.log(writeReport('metrics', { machine: machine(), threads: 1, iterations, hd95: { semiseg: value, reference: r.value } }, [
  { case: 'hd95 (LA volume, shifted label)', shape: m.pred.shape, semiseg: s, reference: rs, ratio: s.median / rs.median },
]));
dispose(m);
rmSync(dir, { recursive: true, force: true });
