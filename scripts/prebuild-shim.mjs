#!/usr/bin/env node
// node-gyp stand-in for prebuildify (`--node-gyp`): prebuildify runs it as `<shim> rebuild --target=...
// --release ...` in its staging folder and then takes build/Release/*.node from there. The shim runs the
// project's incremental cmake-js build of the variant (scripts/build-native.sh or build-cuda.sh, a no-op
// when scripts/prebuild.mjs has just built it) and copies the result into the staging folder, so
// prebuildify's move leaves the real build alone.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const repo = process.env.SEMISEG_PREBUILD_REPO;
const buildDir = process.env.SEMISEG_PREBUILD_BUILD_DIR;
if (!repo || !buildDir) {
  console.error('prebuild-shim: run through scripts/prebuild.mjs (SEMISEG_PREBUILD_REPO / _BUILD_DIR unset)');
  process.exit(2);
}
if (process.argv[2] !== 'rebuild') {
  console.error(`prebuild-shim: only 'rebuild' is supported, got '${process.argv.slice(2).join(' ')}'`);
  process.exit(2);
}
const script = buildDir.endsWith('build-cuda') ? 'scripts/build-cuda.sh' : 'scripts/build-native.sh';
const r = spawnSync('bash', [script], { cwd: repo, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const built = join(buildDir, 'Release', 'semiseg.node');
if (!existsSync(built)) {
  console.error(`prebuild-shim: ${built} does not exist; the cmake-js build did not run`);
  process.exit(1);
}
mkdirSync(join(process.cwd(), 'build', 'Release'), { recursive: true });
copyFileSync(built, join(process.cwd(), 'build', 'Release', 'semiseg.node'));
