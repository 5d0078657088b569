/**
 * Finding the native addon and the LibTorch it runs on, without LD_LIBRARY_PATH.
 *
 * Order: a source build (`build/Release/semiseg.node`, which finds its LibTorch through the RPATH baked in
 * at build time), else a prebuilt addon (`prebuilds/<platform>-<arch>/` for the CPU variant,
 * `cuda/prebuilds/<platform>-<arch>/` for the CUDA variant, so node-gyp-build can be pointed at either).
 * A prebuild is chosen for the LibTorch found from `LIBTORCH`, `TORCH_ROOT` or the torch package of the
 * `python3` on PATH: same LibTorch version, CUDA when that LibTorch has CUDA and a GPU is present. Its
 * libraries are loaded first (by absolute path, kept loaded), so the addon's own references to
 * libtorch.so, libc10.so, ... resolve to them.
 *
 * Prebuild names carry their tags: `semiseg.libtorch-2-13-0.cpu.napi.glibc.node` (dots split tags, so the
 * version's dots become dashes; node-gyp-build ignores the tags it does not know).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { join } from 'node:path';

/** A LibTorch found on this machine. */
export interface TorchLocation {
  /** The LibTorch root: it holds lib/libtorch.so. */
  root: string;
  /** The version, e.g. '2.13.0' (no local suffix such as +cpu). */
  version: string;
  /** Whether this LibTorch has CUDA (ships libc10_cuda.so). */
  cuda: boolean;
  /** Where it was found: 'LIBTORCH', 'TORCH_ROOT' or 'python3'. */
  from: string;
}

/** A prebuilt addon file and what its name says it was built for. */
export interface Prebuild {
  file: string;
  torchVersion: string;
  variant: 'cpu' | 'cuda';
  napi: boolean;
  libc?: string;
}

/** Reads a LibTorch's version from the files that wheels and LibTorch archives carry. */
export function torchVersionAt(root: string): string | undefined {
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);
  const clean = (v: string) => v.trim().replace(/\+.*$/, '');
  const buildVersion = read(join(root, 'build-version'));
  if (buildVersion?.trim()) return clean(buildVersion);
  const py = read(join(root, 'version.py'));
  const m = py && /^__version__\s*=\s*['"]([^'"]+)['"]/m.exec(py);
  if (m) return clean(m[1]);
  for (const h of ['include/torch/version.h', 'include/torch/csrc/api/include/torch/version.h']) {
    const v = read(join(root, h));
    const hm = v && /#define TORCH_VERSION\s+"([^"]+)"/.exec(v);
    if (hm) return clean(hm[1]);
  }
  return undefined;
}

function describeRoot(root: string, from: string): TorchLocation | string {
  if (!existsSync(join(root, 'lib', 'libtorch.so'))) return `${from}=${root} holds no lib/libtorch.so`;
  const version = torchVersionAt(root);
  if (!version) return `${from}=${root} has no readable version (build-version, version.py or torch/version.h)`;
  return { root, version, cuda: existsSync(join(root, 'lib', 'libc10_cuda.so')), from };
}

/** The torch package directory of `python3` on PATH, without importing torch (fast). */
function pythonTorchRoot(python = 'python3'): string | undefined {
  const code =
    'import importlib.util as u\ns = u.find_spec("torch")\nprint(s.submodule_search_locations[0] if s and s.submodule_search_locations else "")';
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) return undefined;
  return r.stdout.trim() || undefined;
}

/**
 * Finds the LibTorch to use: `LIBTORCH` (a LibTorch folder), `TORCH_ROOT` (a torch package folder), then
 * the torch package of `python3` on PATH. Returns what was tried when none is usable.
 */
export function findTorch(env: NodeJS.ProcessEnv = process.env): { torch?: TorchLocation; tried: string[] } {
  const tried: string[] = [];
  for (const name of ['LIBTORCH', 'TORCH_ROOT']) {
    const v = env[name];
    if (!v) {
      tried.push(`${name} is not set`);
      continue;
    }
    const d = describeRoot(v, name);
    if (typeof d !== 'string') return { torch: d, tried };
    tried.push(d);
  }
  const root = pythonTorchRoot();
  if (!root) tried.push('python3 on PATH has no torch package');
  else {
    const d = describeRoot(root, 'python3');
    if (typeof d !== 'string') return { torch: d, tried };
    tried.push(d);
  }
  return { tried };
}

/** Parses a prebuild file name (see the module comment); undefined when it is not one of semiseg's. */
export function parsePrebuildName(file: string): Omit<Prebuild, 'file'> | undefined {
  const parts = file.split('.');
  if (parts.pop() !== 'node') return undefined;
  let torchVersion: string | undefined;
  let variant: 'cpu' | 'cuda' | undefined;
  let napi = false;
  let libc: string | undefined;
  for (const t of parts) {
    const m = /^libtorch-(\d+)-(\d+)-(\d+)$/.exec(t);
    if (m) torchVersion = `${m[1]}.${m[2]}.${m[3]}`;
    else if (t === 'cpu' || t === 'cuda') variant = t;
    else if (t === 'napi') napi = true;
    else if (t === 'glibc' || t === 'musl') libc = t;
  }
  if (!torchVersion || !variant) return undefined;
  return { torchVersion, variant, napi, libc };
}

/** The prebuild file name for a LibTorch version and variant (prebuildify then appends napi and libc). */
export function prebuildBaseName(torchVersion: string, variant: 'cpu' | 'cuda'): string {
  return `semiseg.libtorch-${torchVersion.replace(/\+.*$/, '').split('.').join('-')}.${variant}`;
}

/** The prebuilt addons shipped under `root` for this platform. */
export function listPrebuilds(root: string, platform = `${process.platform}-${process.arch}`): Prebuild[] {
  const out: Prebuild[] = [];
  for (const dir of [join(root, 'prebuilds', platform), join(root, 'cuda', 'prebuilds', platform)]) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) {
      const tags = parsePrebuildName(f);
      if (tags && tags.napi && tags.libc !== 'musl') out.push({ file: join(dir, f), ...tags });
    }
  }
  return out;
}

/** True when an NVIDIA GPU is visible to this process (without loading CUDA). */
export function gpuPresent(): boolean {
  if (existsSync('/dev/nvidiactl')) return true;
  try {
    return readdirSync('/proc/driver/nvidia/gpus').length > 0;
  } catch {
    return false;
  }
}

/**
 * The prebuild to use with `torch`: same version; the CUDA variant when the LibTorch has CUDA and a GPU is
 * present, else the CPU variant (which also runs on a CUDA LibTorch, without semiseg's CUDA kernels).
 */
export function choosePrebuild(prebuilds: Prebuild[], torch: TorchLocation, gpu: boolean): Prebuild | undefined {
  const same = prebuilds.filter((p) => p.torchVersion === torch.version);
  if (torch.cuda && gpu) {
    const c = same.find((p) => p.variant === 'cuda');
    if (c) return c;
  }
  return same.find((p) => p.variant === 'cpu') ?? (torch.cuda ? same.find((p) => p.variant === 'cuda') : undefined);
}

// glibc's RTLD_NODELETE: Node's process.dlopen closes a library that registers no module; with this
// flag the LibTorch libraries stay loaded, so the addon's references to them resolve by soname.
const RTLD_NODELETE = 0x1000;

/** Loads LibTorch's libraries from `torch.root` and keeps them loaded for the process's life. */
export function preloadTorch(torch: TorchLocation, cuda: boolean): void {
  const libs = ['libc10.so', 'libtorch_cpu.so', 'libtorch.so'];
  if (cuda) libs.push('libc10_cuda.so', 'libtorch_cuda.so');
  const flags = constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE;
  for (const lib of libs) {
    const path = join(torch.root, 'lib', lib);
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, path, flags);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (!msg.includes('did not self-register')) {
        throw new Error(`semiseg: cannot load ${path} (${msg.split('\n')[0]})`, { cause: err });
      }
    }
  }
}

/** What `loadAddon` found and loaded. */
export interface AddonChoice {
  file: string;
  kind: 'source build' | 'prebuild';
  torch?: TorchLocation;
}

const HOW_TO_GET_TORCH =
  'set LIBTORCH to a LibTorch folder, TORCH_ROOT to a torch package folder, or put a python3 with torch on PATH';

/** Finds and loads the addon (see the module comment). Errors say what was found and what is needed. */
export function loadAddon<T>(packageRoot: string, env: NodeJS.ProcessEnv = process.env): { addon: T; choice: AddonChoice } {
  const require = createRequire(join(packageRoot, 'package.json'));
  const sourceBuild = join(packageRoot, 'build', 'Release', 'semiseg.node');
  if (existsSync(sourceBuild) && !env.SEMISEG_PREFER_PREBUILD) {
    return { addon: require(sourceBuild) as T, choice: { file: sourceBuild, kind: 'source build' } };
  }
  const prebuilds = listPrebuilds(packageRoot);
  const available = prebuilds.map((p) => `${p.torchVersion} (${p.variant})`).join(', ');
  if (prebuilds.length === 0) {
    throw new Error(
      `semiseg: no native addon: neither a source build (${sourceBuild}) nor prebuilt addons for ` +
        `${process.platform}-${process.arch}. Build it from source with \`npm rebuild semiseg\` (needs cmake, a C++20 ` +
        `compiler and LibTorch: ${HOW_TO_GET_TORCH}).`,
    );
  }
  const { torch, tried } = findTorch(env);
  if (!torch) {
    throw new Error(
      `semiseg: no LibTorch found (${tried.join('; ')}). The prebuilt addons need LibTorch ${available}: ${HOW_TO_GET_TORCH} ` +
        '(e.g. pip install torch==' + prebuilds[0].torchVersion + ').',
    );
  }
  const pick = choosePrebuild(prebuilds, torch, gpuPresent());
  if (!pick) {
    throw new Error(
      `semiseg: found LibTorch ${torch.version} (${torch.cuda ? 'cuda' : 'cpu'}) at ${torch.root} (from ${torch.from}), ` +
        `but the prebuilt addons are for LibTorch ${available}. Install a matching torch, point LIBTORCH or TORCH_ROOT ` +
        'at one, or build from source for this LibTorch with `npm rebuild semiseg`.',
    );
  }
  preloadTorch(torch, pick.variant === 'cuda');
  try {
    return { addon: require(pick.file) as T, choice: { file: pick.file, kind: 'prebuild', torch } };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(
      `semiseg: the prebuilt addon ${pick.file} (LibTorch ${pick.torchVersion}, ${pick.variant}) failed to load ` +
        `with LibTorch ${torch.version} at ${torch.root}: ${msg.split('\n')[0]}`,
      { cause: err },
    );
  }
}
