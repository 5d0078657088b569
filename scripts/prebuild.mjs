#!/usr/bin/env node
// `npm run prebuild [-- cpu|cuda|all]`: prebuilt addons with prebuildify for this platform, tagged with the
// LibTorch they were built against:
//   prebuilds/linux-x64/semiseg.libtorch-2-13-0.cpu.napi.glibc.node        (CPU variant, build/)
//   cuda/prebuilds/linux-x64/semiseg.libtorch-2-14-1.cuda.napi.glibc.node  (CUDA variant, build-cuda/)
// prebuildify has no cmake-js backend: it is given scripts/prebuild-shim.mjs as its node-gyp, which runs
// the project's incremental cmake-js build of the variant and hands prebuildify a copy of the result, so
// build/ stays usable. Default: cpu, plus cuda when nvcc is on PATH.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const which = process.argv[2] ?? 'default';
const hasNvcc = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).status === 0;
const variants = which === 'all' ? ['cpu', 'cuda'] : which === 'default' ? (hasNvcc ? ['cpu', 'cuda'] : ['cpu']) : [which];
for (const v of variants) {
  if (v !== 'cpu' && v !== 'cuda') {
    console.error(`prebuild: unknown variant '${v}' (expected cpu, cuda or all)`);
    process.exit(2);
  }
}

const run = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { cwd: repo, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`prebuild: ${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
};

for (const variant of variants) {
  const buildDir = join(repo, variant === 'cpu' ? 'build' : 'build-cuda');
  // build first, so the LibTorch version is known for the name; the shim's build is then a no-op
  run('bash', [variant === 'cpu' ? 'scripts/build-native.sh' : 'scripts/build-cuda.sh']);
  const torch = JSON.parse(readFileSync(join(buildDir, 'semiseg-torch.json'), 'utf8'));
  if (variant === 'cuda' && !torch.cuda) {
    console.error(`prebuild: ${buildDir} was built without CUDA (LibTorch at ${torch.root})`);
    process.exit(1);
  }
  const version = String(torch.version).replace(/\+.*$/, '');
  const name = `semiseg.libtorch-${version.split('.').join('-')}.${variant}.napi`;
  const out = variant === 'cpu' ? repo : join(repo, 'cuda');
  const platformDir = join(out, 'prebuilds', `${process.platform}-${process.arch}`);
  // one LibTorch version per variant: older prebuilds of this variant go
  if (existsSync(platformDir)) {
    for (const f of readdirSync(platformDir)) if (f.includes(`.${variant}.`)) rmSync(join(platformDir, f));
  }
  const stage = join(repo, 'build-prebuild', variant);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  run(
    join(repo, 'node_modules', '.bin', 'prebuildify'),
    ['--napi', '--strip', '--tag-libc', '--name', name, '--cwd', stage, '--out', out, '--node-gyp', join(repo, 'scripts', 'prebuild-shim.mjs')],
    { SEMISEG_PREBUILD_REPO: repo, SEMISEG_PREBUILD_BUILD_DIR: buildDir },
  );
  rmSync(stage, { recursive: true, force: true });
  const made = readdirSync(platformDir).filter((f) => f.startsWith(name));
  console.log(`prebuild: ${variant} (LibTorch ${version}): ${made.map((f) => join(platformDir, f)).join(', ')}`);
}
