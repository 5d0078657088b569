#!/usr/bin/env node
// Runs the ava suite and closes with one plain summary line, `N passed, N failed, N skipped`.
// Extra arguments go to ava (a file glob, --match ...).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const avaCli = join(root, 'node_modules', 'ava', 'entrypoints', 'cli.mjs');
const child = spawn(process.execPath, [avaCli, '--tap', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
let buffered = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buffered += chunk.toString();
  const lines = buffered.split('\n');
  buffered = lines.pop() ?? '';
  for (const line of lines) {
    const m = /^# (pass|fail|skip|todo) +(\d+)/.exec(line);
    if (m) counts[m[1]] = Number(m[2]);
  }
});
child.on('close', (code) => {
  console.log(`${counts.pass} passed, ${counts.fail} failed, ${counts.skip + counts.todo} skipped`);
  process.exit(code ?? 1);
});
