// The package as users get it: `npm run prebuild` (CPU variant), `npm pack`, an offline install of the
// tarball into a fresh project, then a forward pass and a metric from there. The prebuilt addon finds
// LibTorch from TORCH_ROOT or from the python3 on PATH, without LD_LIBRARY_PATH, and a wrong or missing
// LibTorch gives one clear error naming what was found and what is needed.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { buildInfo } from '../lib/index.js';
import { repoRoot } from './helpers/reference.js';

const torchRoot = buildInfo().torchRoot;
const torchVersion = buildInfo().torchVersion.replace(/\+.*$/, '');
let project = '';

/** An environment with no LibTorch hints: no LD_LIBRARY_PATH, and PATH holding node and, when given, more. */
function cleanEnv(extra: Record<string, string>, pathFirst: string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, ...extra };
  env.PATH = [...pathFirst, join(project, 'bin'), dirname(process.execPath), '/usr/bin', '/bin'].join(':');
  return env;
}

const USE = `
import * as s from 'semiseg';
const info = s.buildInfo();
const net = s.nets.UNet2D({ inChannels: 1, outChannels: 4, features: [4, 8, 16, 32, 64] });
net.eval();
const y = s.tidy(() => net.forwardSync(s.ones([1, 1, 32, 32])));
const a = s.tensor([[0, 1, 1], [0, 1, 1]], { dtype: 'int64' });
const b = s.tensor([[0, 1, 0], [0, 1, 1]], { dtype: 'int64' });
const m = s.binaryMetrics(a, b);
// and in a worker thread, which loads the same prebuild
const { Worker } = await import('node:worker_threads');
const inWorker = await new Promise((resolve, reject) => {
  const code = "Promise.all([import('semiseg'), import('node:worker_threads')]).then(([s, w]) => w.parentPort.postMessage(s.ones([2, 3]).sum().item()))";
  const w = new Worker(code, { eval: true });
  w.once('message', resolve);
  w.once('error', reject);
});
console.log(JSON.stringify({ kind: info.addonKind, file: info.addonFile, torch: info.torchVersion, shape: y.shape, dice: m.dice, inWorker }));
`;

function use(env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', USE], { cwd: project, env, encoding: 'utf8', timeout: 120000 });
}

test.before(() => {
  project = mkdtempSync(join(tmpdir(), 'semiseg-pack-'));
  // a python3 that has no torch, so "python3 on PATH" is tested deliberately
  mkdirSync(join(project, 'bin'));
  writeFileSync(join(project, 'bin', 'python3'), '#!/bin/sh\nexit 1\n');
  chmodSync(join(project, 'bin', 'python3'), 0o755);
});
test.after.always(() => rmSync(project, { recursive: true, force: true }));

test.serial('npm pack, offline install into a fresh project, forward pass and metric from the prebuild', (t) => {
  const prebuild = execFileSync(process.execPath, [join(repoRoot, 'scripts', 'prebuild.mjs'), 'cpu'], { cwd: repoRoot, encoding: 'utf8' });
  t.regex(prebuild, new RegExp(`prebuild: cpu \\(LibTorch ${torchVersion.replace(/\./g, '\\.')}\\)`));
  const cpuDir = join(repoRoot, 'prebuilds', `${process.platform}-${process.arch}`);
  const name = `semiseg.libtorch-${torchVersion.split('.').join('-')}.cpu.napi.glibc.node`;
  t.true(readdirSync(cpuDir).includes(name), readdirSync(cpuDir).join(', '));

  const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', project], { cwd: repoRoot, encoding: 'utf8' });
  const [{ filename, files }] = JSON.parse(packed) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const paths = files.map((f) => f.path);
  t.true(paths.includes(`prebuilds/${process.platform}-${process.arch}/${name}`));
  t.true(paths.includes('dist/lib/index.js') && paths.includes('scripts/install.mjs') && paths.includes('CMakeLists.txt'));
  t.false(paths.some((p) => p.startsWith('test/') || p.startsWith('build/') || p.startsWith('dist/test/')), 'no tests or builds in the package');

  // the consumer pins semiseg's dependencies as this repository's lockfile does, so `npm ci --offline`
  // takes every tarball from npm's cache by its integrity, with no registry request
  const [{ integrity, version }] = JSON.parse(packed) as Array<{ integrity: string; version: string }>;
  const own = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { semiseg: `file:${filename}` } },
    'node_modules/semiseg': { version, resolved: `file:${filename}`, integrity, hasInstallScript: true, dependencies: manifest.dependencies },
  };
  for (const [path, entry] of Object.entries(own.packages)) if (path && !entry.dev && !entry.devOptional) packages[path] = entry;
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { semiseg: `file:${filename}` } }));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }));
  const install = spawnSync('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'], {
    cwd: project,
    env: { ...process.env, TORCH_ROOT: torchRoot, LIBTORCH: '' },
    encoding: 'utf8',
    timeout: 300000,
  });
  t.is(install.status, 0, install.stderr + install.stdout);
  t.regex(install.stdout, new RegExp(`semiseg install: prebuilt cpu addon for LibTorch ${torchVersion.replace(/\./g, '\\.')}`));
  t.false(existsSync(join(project, 'node_modules', 'semiseg', 'build')), 'the install did not build from source');

  // TORCH_ROOT, no LD_LIBRARY_PATH
  const r = use(cleanEnv({ TORCH_ROOT: torchRoot }));
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.is(out.kind, 'prebuild');
  t.true(out.file.endsWith(name));
  t.is(out.torch.replace(/\+.*$/, ''), torchVersion);
  t.deepEqual(out.shape, [1, 4, 32, 32]);
  t.is(out.inWorker, 6);
  t.true(Math.abs(out.dice - 6 / 7) < 1e-6, String(out.dice));
});

test.serial('the prebuild finds LibTorch from the python3 on PATH', (t) => {
  // a python3 whose torch package is torchRoot (the project's .venv)
  const python = join(torchRoot, '..', '..', '..', '..', 'bin');
  if (!existsSync(join(python, 'python3'))) return t.pass(`skipped: ${torchRoot} is not inside a virtualenv`);
  const r = use(cleanEnv({}, [python]));
  t.is(r.status, 0, `${r.signal ?? ''} ${r.stderr}`);
  t.is(JSON.parse(r.stdout.trim().split('\n').pop()!).kind, 'prebuild');
});

test.serial('a missing or mismatched LibTorch gives one clear error', (t) => {
  const none = use(cleanEnv({}));
  t.not(none.status, 0);
  t.regex(none.stderr, /semiseg: no LibTorch found \(LIBTORCH is not set; TORCH_ROOT is not set; python3 on PATH has no torch package\)\. The prebuilt addons need LibTorch \d+\.\d+\.\d+ \(cpu\)/);
  t.notRegex(none.stderr, /Module did not self-register|undefined symbol/);

  const fake = join(project, 'fake-torch');
  mkdirSync(join(fake, 'lib'), { recursive: true });
  writeFileSync(join(fake, 'lib', 'libtorch.so'), '');
  writeFileSync(join(fake, 'version.py'), "__version__ = '2.9.1+cpu'\ncuda = None\n");
  const old = use(cleanEnv({ TORCH_ROOT: fake }));
  t.not(old.status, 0);
  t.regex(old.stderr, new RegExp(`semiseg: found LibTorch 2\\.9\\.1 \\(cpu\\) at ${fake} \\(from TORCH_ROOT\\), but the prebuilt addons are for LibTorch ${torchVersion.replace(/\./g, '\\.')} \\(cpu\\)`));

  const empty = use(cleanEnv({ LIBTORCH: join(project, 'nowhere') }));
  t.regex(empty.stderr, /LIBTORCH=.*nowhere holds no lib\/libtorch\.so/);

  // the install step with no matching prebuild goes to a source build against the LibTorch it found
  const install = join(project, 'node_modules', 'semiseg', 'scripts', 'install.mjs');
  const plan = spawnSync(process.execPath, [install], { env: cleanEnv({ TORCH_ROOT: fake, SEMISEG_INSTALL_DRY_RUN: '1' }), encoding: 'utf8' });
  t.is(plan.status, 0, plan.stderr);
  t.regex(plan.stdout, /no prebuild for LibTorch 2\.9\.1 \(cpu\); prebuilt: \d+\.\d+\.\d+ \(cpu\)/);
  t.regex(plan.stdout, new RegExp(`building from source with cmake-js against LibTorch 2\\.9\\.1 at ${fake}`));
});
