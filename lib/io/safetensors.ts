/**
 * safetensors files (8-byte little-endian header length, a JSON header of {name: {dtype, shape,
 * data_offsets}} and optional __metadata__, then the raw little-endian data), read and written here.
 */
import { readFile } from 'node:fs/promises';

import type { DType } from '../dtype.js';
import { namedToNative, type StateDict } from '../named.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';
import { checkPath } from '../validate.js';
import { writeFileAtomic } from './atomic.js';

const TO_ST: Record<DType, string> = {
  float64: 'F64',
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
};
const FROM_ST = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k])) as Record<string, DType>;
const SIZE: Record<DType, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, uint8: 1, bool: 1 };

export interface SafetensorsFile {
  tensors: StateDict;
  metadata: Record<string, string>;
}

function bad(path: string, why: string): Error {
  return new Error(`readSafetensors(): '${path}' is not a valid safetensors file: ${why}`);
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  checkPath('readSafetensors', path);
  const buf = await readFile(path);
  if (buf.length < 8) throw bad(path, `${buf.length} bytes is too short`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8) throw bad(path, `its header claims ${headerLen} bytes but the file has ${buf.length - 8} after the length (truncated?)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw bad(path, `its header is not JSON (${(err as Error).message})`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(header)) throw bad(path, 'its header is not a JSON object');
  const data = buf.subarray(8 + headerLen);
  // no prototype: a tensor named '__proto__' (or 'constructor') is an entry like any other
  const tensors: StateDict = Object.create(null) as StateDict;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  if (!isObject(metadata)) throw bad(path, 'its __metadata__ is not an object');
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  try {
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      if (!isObject(raw)) throw bad(path, `the entry of '${name}' is not an object`);
      const e = raw as { dtype?: string; shape?: unknown; data_offsets?: unknown };
      const dtype = typeof e.dtype === 'string' && Object.hasOwn(FROM_ST, e.dtype) ? FROM_ST[e.dtype] : undefined;
      if (!dtype) throw bad(path, `'${name}' has dtype ${e.dtype}, which semiseg does not read`);
      if (!Array.isArray(e.shape) || !e.shape.every(count)) throw bad(path, `'${name}' has shape ${JSON.stringify(e.shape)}, not a list of sizes`);
      if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every(count))
        throw bad(path, `'${name}' has data offsets ${JSON.stringify(e.data_offsets)}, not two byte offsets`);
      const [begin, end] = e.data_offsets as [number, number];
      const shape = e.shape as number[];
      const numel = shape.reduce((a, b) => a * b, 1);
      if (!(begin >= 0 && end >= begin && end <= data.length)) throw bad(path, `'${name}' has data offsets [${begin}, ${end}] outside the data (truncated?)`);
      if (end - begin !== numel * SIZE[dtype]) throw bad(path, `'${name}' holds ${end - begin} bytes for shape [${shape.join(', ')}] of ${dtype}`);
      tensors[name] = new Tensor(native.fromRawBytes(data.subarray(begin, end), shape, dtype));
    }
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  }
  return { tensors, metadata };
}

/** Writes atomically (temporary file, flush, rename). */
export async function writeSafetensors(path: string, dict: StateDict, metadata?: Record<string, string>): Promise<void> {
  checkPath('writeSafetensors', path);
  const [names, handles] = namedToNative('writeSafetensors', 'dict', dict);
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  names.forEach((name, i) => {
    const bytes = native.toRawBytes(handles[i]);
    header[name] = { dtype: TO_ST[handles[i].dtype() as DType], shape: handles[i].shape(), data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    chunks.push(bytes);
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  await writeFileAtomic(path, [len, Buffer.from(json, 'utf8'), ...chunks]);
}
