// scripts/gpu-check.sh (issue 20) on a machine without a GPU: it must stop at once, before touching
// anything, with exit status 3 and the reason. Fake nvidia-smi / python3 on PATH make each preflight
// branch deterministic whatever this machine has.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';

const root = fileURLToPath(new URL('../..', import.meta.url));

function runWith(fakes: Record<string, string>): { status: number | null; stderr: string; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'semiseg-gpu-check-'));
  try {
    for (const [name, body] of Object.entries(fakes)) {
      writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(dir, name), 0o755);
    }
    const r = spawnSync('bash', [join(root, 'scripts/gpu-check.sh')], {
      env: { ...process.env, PATH: `${dir}:${process.env.PATH ?? ''}`, OUT: join(dir, 'out') },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: r.status, stderr: r.stderr, stdout: r.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('gpu-check.sh stops at once where nvidia-smi finds no GPU', (t) => {
  const r = runWith({ 'nvidia-smi': 'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver" >&2; exit 9' });
  t.is(r.status, 3);
  t.regex(r.stderr, /^gpu-check: no NVIDIA GPU here \(nvidia-smi -L failed\): run this on a machine lent with a GPU/m);
  t.is(r.stdout, '');
});

test("gpu-check.sh stops at once where python3's torch has no CUDA", (t) => {
  const r = runWith({ 'nvidia-smi': 'echo "GPU 0: NVIDIA H200 (UUID: GPU-0)"', python3: 'exit 1' });
  t.is(r.status, 3);
  t.regex(r.stderr, /^gpu-check: python3's torch sees no CUDA device/m);
});
