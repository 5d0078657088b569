// The build chain: with no LibTorch to be found, configuring fails with one message saying how to give one.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { repoRoot } from './helpers/reference.js';

function configure(env: Record<string, string>) {
  const out = mkdtempSync(join(tmpdir(), 'semiseg-cfg-'));
  try {
    // a PATH whose python3 has no torch: only the system folders (node is called by absolute path)
    const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules/cmake-js/bin/cmake-js'), 'configure', '--out', out], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { HOME: process.env.HOME ?? '/tmp', PATH: `${join(process.execPath, '..')}:/usr/bin:/bin`, ...env },
    });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const systemPythonHasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

test('configuring without any LibTorch fails with a message that says how to provide one', (t) => {
  if (systemPythonHasTorch) return t.pass('skipped: /usr/bin/python3 has torch, so a LibTorch is always found');
  const r = configure({ PYTHONPATH: '/nonexistent' });
  t.not(r.status, 0);
  t.regex(r.output, /semiseg: no LibTorch found \(looked at python3 torch package/);
  t.regex(r.output, /LIBTORCH=\/path\/to\/libtorch/);
  t.regex(r.output, /TORCH_ROOT=\/path\/to\/site-packages\/torch/);
});

test('a LIBTORCH that is not a LibTorch is named in the error', (t) => {
  const r = configure({ LIBTORCH: '/nonexistent/libtorch' });
  t.not(r.status, 0);
  t.regex(r.output, /semiseg: no LibTorch found \(looked at LIBTORCH: '\/nonexistent\/libtorch'\)/);
});
