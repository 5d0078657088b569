#!/usr/bin/env node
// The package's install step: use a prebuilt addon when one matches the LibTorch on this machine, else
// build from source with cmake-js against that LibTorch. In a git checkout it does nothing (`npm run setup`
// builds there). SEMISEG_BUILD_FROM_SOURCE=1 skips the prebuilds; SEMISEG_INSTALL_DRY_RUN=1 says what it
// would do without building.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (msg) => console.log(`semiseg install: ${msg}`);

if (existsSync(join(root, '.git'))) process.exit(0); // a development checkout
if (existsSync(join(root, 'build', 'Release', 'semiseg.node'))) {
  say('using the existing source build (build/Release/semiseg.node)');
  process.exit(0);
}

const addon = await import(pathToFileURL(join(root, 'dist', 'lib', 'addon.js')).href);
const prebuilds = addon.listPrebuilds(root);
const { torch, tried } = addon.findTorch();
if (!process.env.SEMISEG_BUILD_FROM_SOURCE) {
  const available = prebuilds.map((p) => `${p.torchVersion} (${p.variant})`).join(', ');
  if (!torch && prebuilds.length > 0) {
    say(`no LibTorch found now (${tried.join('; ')}); at run time semiseg needs LibTorch ${available} ` +
      '(LIBTORCH, TORCH_ROOT, or a python3 with torch on PATH)');
    process.exit(0);
  }
  const pick = torch && addon.choosePrebuild(prebuilds, torch, addon.gpuPresent());
  if (pick) {
    say(`prebuilt ${pick.variant} addon for LibTorch ${pick.torchVersion} (found at ${torch.root}, from ${torch.from})`);
    process.exit(0);
  }
  if (torch) say(`no prebuild for LibTorch ${torch.version} (${torch.cuda ? 'cuda' : 'cpu'}); prebuilt: ${available || 'none'}`);
}

say(`building from source with cmake-js${torch ? ` against LibTorch ${torch.version} at ${torch.root}` : ''}`);
if (process.env.SEMISEG_INSTALL_DRY_RUN) {
  say('dry run: not building');
  process.exit(0);
}
const require = createRequire(import.meta.url);
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const env = { ...process.env };
if (torch) {
  env.LIBTORCH = '';
  env.TORCH_ROOT = torch.root;
}
const r = spawnSync(process.execPath, [cmakeJs, 'build', '--log-level', 'warn'], { cwd: root, stdio: 'inherit', env });
if (r.status !== 0) {
  console.error('semiseg install: the source build failed (it needs cmake >= 3.18, a C++20 compiler and LibTorch: ' +
    'set LIBTORCH to a LibTorch folder, TORCH_ROOT to a torch package folder, or put a python3 with torch on PATH)');
  process.exit(r.status ?? 1);
}
