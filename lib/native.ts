/**
 * The exact shape of the native addon (binding/), and its loading through node-gyp-build.
 * Data crosses the boundary by copy in both directions: a TypedArray is copied into a new tensor,
 * and reading a tensor copies its values into a fresh TypedArray.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A native tensor handle: owns one LibTorch tensor until disposed (or garbage-collected). */
export interface NativeTensorHandle {
  dispose(): void;
  isDisposed(): boolean;
  shape(): number[];
  dtype(): string;
  device(): string;
  requiresGrad(): boolean;
  nbytes(): number;
}

/** What an op of the native table takes and returns. */
export type NativeValue =
  | undefined
  | null
  | number
  | boolean
  | string
  | bigint
  | NativeTensorHandle
  | number[]
  | NativeTensorHandle[];

export type NativeData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export interface BuildInfo {
  torchVersion: string;
  torchRoot: string;
  cuda: boolean;
  napiVersion: number;
}

export interface Native {
  TensorHandle: abstract new () => NativeTensorHandle;
  buildInfo(): BuildInfo;
  op(name: string, args: NativeValue[]): NativeValue;
  opAsync(name: string, args: NativeValue[]): Promise<NativeValue>;
  fromData(
    data: NativeData,
    shape: number[],
    srcDtype: string,
    dtype: string,
    device: string,
    requiresGrad: boolean,
  ): NativeTensorHandle;
  toData(handle: NativeTensorHandle): NativeData;
  toDataAsync(handle: NativeTensorHandle): Promise<NativeData>;
  liveTensors(): number;
  externalMemory(): number;
  manualSeed(seed: number | bigint): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  isGradEnabled(): boolean;
  setGradEnabled(enabled: boolean): void;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  opNames(): string[];
}

/** The package root (holds build/ and prebuilds/), from dist/lib/native.js. */
export const packageRoot = fileURLToPath(new URL('../..', import.meta.url));

function load(): Native {
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  try {
    return nodeGypBuild(packageRoot) as Native;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `semiseg: the native addon could not be loaded (${reason.split('\n')[0]}). ` +
        'Build it with `npm run build` (it needs LibTorch: set LIBTORCH or TORCH_ROOT, or put a python3 ' +
        'with torch on PATH; `npm run setup` installs torch==2.13.0+cpu into .venv and builds).',
      { cause: err },
    );
  }
}

export const native: Native = load();
