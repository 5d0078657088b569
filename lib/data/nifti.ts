/**
 * NIfTI images (.nii and .nii.gz), read here in both versions (NIfTI-1: a 348-byte header, NIfTI-2: 540
 * bytes) and written as NIfTI-1.
 *
 * Axis order: tensors use nibabel's array order (i, j, k) = (dim[1], dim[2], dim[3]); the file stores i
 * fastest, so reading transposes into row-major (i slowest) and writing transposes back. Intensities are
 * scaled by scl_slope / scl_inter when the slope is set. A label map written with writeNiftiLabels keeps
 * the source image's header (affine, qform, sform, voxel spacing, units), so viewers overlay it on the
 * image; only its datatype, scaling and dimensions change.
 */
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip, gunzipSync, gzipSync } from 'node:zlib';

import { tensor } from '../create.js';

import { tidy } from '../scope.js';
import { callOpAsync } from '../call.js';
import { Tensor, tensorArg, wrap } from '../tensor.js';
import { checkPath } from '../validate.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { SpatialImage } from './image.js';
import { niftiReference } from './nifti-header.js';

export interface NiftiImage extends SpatialImage {
  /** float32 (scaled) for intensity images, int64 for integer data without scaling */
  data: Tensor;
  /** voxel sizes pixdim[1..n] */
  spacing: number[];
  /** 4 x 4 voxel-to-world matrix: the sform when its code is set, else the qform, else the spacing */
  affine: number[][];
  /** the raw 348-byte header, for writing results on the same grid */
  header: Uint8Array;
  path: string;
}

const TYPES: Record<number, { size: number; read: (v: DataView, o: number, le: boolean) => number; int: boolean; wide?: (v: DataView, o: number, le: boolean) => bigint }> = {
  2: { size: 1, read: (v, o) => v.getUint8(o), int: true },
  256: { size: 1, read: (v, o) => v.getInt8(o), int: true },
  4: { size: 2, read: (v, o, le) => v.getInt16(o, le), int: true },
  512: { size: 2, read: (v, o, le) => v.getUint16(o, le), int: true },
  8: { size: 4, read: (v, o, le) => v.getInt32(o, le), int: true },
  // beyond int32: decoded exactly into int64 (BigInt) when unscaled
  768: { size: 4, read: (v, o, le) => v.getUint32(o, le), int: true, wide: (v, o, le) => BigInt(v.getUint32(o, le)) },
  1024: { size: 8, read: (v, o, le) => Number(v.getBigInt64(o, le)), int: true, wide: (v, o, le) => v.getBigInt64(o, le) },
  1280: { size: 8, read: (v, o, le) => Number(v.getBigUint64(o, le)), int: true, wide: (v, o, le) => v.getBigUint64(o, le) },
  16: { size: 4, read: (v, o, le) => v.getFloat32(o, le), int: false },
  64: { size: 8, read: (v, o, le) => v.getFloat64(o, le), int: false },
};

function fail(path: string, why: string): Error {
  return new Error(`readNifti(): '${path}' ${why}`);
}

/** The header fields semiseg uses, from a NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header. */
interface Header {
  version: 1 | 2;
  shape: number[];
  datatype: number;
  /** pixdim[0..7]; the spatial voxel sizes made positive as nibabel does (|x|, 0 -> 1) */
  pixdim: number[];
  offset: number;
  slope: number;
  inter: number;
  qformCode: number;
  sformCode: number;
  quatern: number[];
  qoffset: number[];
  srow: number[][];
}

function readHeader(v: DataView, le: boolean, version: 1 | 2, path: string): Header {
  const one = version === 1;
  const f = one ? (at: number) => v.getFloat32(at, le) : (at: number) => v.getFloat64(at, le);
  const int = one ? (at: number) => v.getInt16(at, le) : (at: number) => Number(v.getBigInt64(at, le));
  const rank = int(one ? 40 : 16);
  if (rank < 1 || rank > 7) throw fail(path, `has an invalid rank ${rank}`);
  const shape = Array.from({ length: rank }, (_, k) => int((one ? 42 : 24) + (one ? 2 : 8) * k));
  if (shape.some((s) => s < 1 || !Number.isSafeInteger(s))) throw fail(path, `has an invalid shape [${shape.join(', ')}]`);
  const pixdim = Array.from({ length: 8 }, (_, k) => f((one ? 76 : 104) + (one ? 4 : 8) * k));
  for (let k = 1; k <= 3; k++) pixdim[k] = Math.abs(pixdim[k]) || 1; // nibabel's fix of negative / zero voxel sizes
  const at = one
    ? { datatype: 70, offset: 108, slope: 112, inter: 116, qform: 252, sform: 254, quatern: 256, qoffset: 268, srow: 280 }
    : { datatype: 12, offset: 168, slope: 176, inter: 184, qform: 344, sform: 348, quatern: 352, qoffset: 376, srow: 400 };
  const step = one ? 4 : 8;
  return {
    version,
    shape,
    datatype: v.getInt16(at.datatype, le),
    pixdim,
    offset: one ? Math.floor(v.getFloat32(at.offset, le)) : Number(v.getBigInt64(at.offset, le)),
    slope: f(at.slope),
    inter: f(at.inter),
    qformCode: one ? v.getInt16(at.qform, le) : v.getInt32(at.qform, le),
    sformCode: one ? v.getInt16(at.sform, le) : v.getInt32(at.sform, le),
    quatern: [0, 1, 2].map((k) => f(at.quatern + step * k)),
    qoffset: [0, 1, 2].map((k) => f(at.qoffset + step * k)),
    srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((k) => f(at.srow + 4 * step * r + step * k))),
  };
}


/**
 * The affine of a header with neither an sform nor a qform code, as nibabel gives it (get_base_affine:
 * the voxel sizes with i flipped, the volume's centre at the origin).
 */
function baseAffine(shape: number[], pixdim: number[]): number[][] {
  const n = [0, 1, 2].map((k) => shape[k] ?? 1);
  const zooms = [0, 1, 2].map((k) => (k < shape.length ? pixdim[k + 1] : 1));
  zooms[0] = -zooms[0];
  const row = (k: number) => [0, 1, 2].map((c) => (c === k ? zooms[k] : 0)).concat([(-(n[k] - 1) / 2) * zooms[k]]);
  return [row(0), row(1), row(2), [0, 0, 0, 1]];
}

function quaternAffine(h: Header): number[][] {
  const [b, c, d] = h.quatern;
  const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
  const qfac = h.pixdim[0] < 0 ? -1 : 1;
  const [i, j, k] = [h.pixdim[1], h.pixdim[2], h.pixdim[3] * qfac];
  const r = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  return [...r.map((row, n) => [row[0] * i, row[1] * j, row[2] * k, h.qoffset[n]]), [0, 0, 0, 1]];
}

/** Reads a NIfTI-1 or NIfTI-2 image (.nii or .nii.gz) from a file. */
export async function readNifti(path: string): Promise<NiftiImage> {
  checkPath('readNifti', path);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw fail(path, `cannot be read: ${(err as Error).message}`);
  }
  return parseNiftiAsync(bytes, path);
}

const gunzipAsync = promisify(gunzip);

/**
 * parseNifti with the decompression of a gzipped image on libuv's thread pool instead of the calling
 * thread (what a service wants: a large upload does not stall the event loop while it expands).
 */
export async function parseNiftiAsync(input: Uint8Array, name = '<buffer>', options: ParseNiftiOptions = {}): Promise<NiftiImage> {
  const maxBytes = checkMaxBytes(options.maxBytes);
  let bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (isGzip(bytes)) {
    try {
      bytes = await gunzipAsync(bytes, maxBytes === undefined ? {} : { maxOutputLength: maxBytes });
    } catch (err) {
      throw gunzipError(err, name, maxBytes);
    }
  }
  // the transpose into nibabel's order (and the widening to int64) on the compute thread too
  const d = decodeNifti(bytes, name, options);
  const raw = tensor(d.values, { shape: d.fileShape });
  const view = raw.permute(d.perm);
  let data: Tensor | undefined;
  try {
    data = wrap(await callOpAsync('contiguous', [tensorArg('parseNiftiAsync', 'image', view)]));
    if (data.dtype !== d.dtype) {
      const narrow = data;
      data = undefined;
      try {
        data = wrap(await callOpAsync('to', [tensorArg('parseNiftiAsync', 'image', narrow), d.dtype, undefined]));
      } finally {
        narrow.dispose();
      }
    }
  } finally {
    view.dispose();
    raw.dispose();
  }
  return finishNifti(d, data);
}

function checkMaxBytes(maxBytes: number | undefined): number | undefined {
  if (maxBytes !== undefined && !(Number.isSafeInteger(maxBytes) && maxBytes > 0))
    throw new RangeError(`parseNifti(): options.maxBytes must be a positive integer, got ${String(maxBytes)}`);
  return maxBytes;
}

const isGzip = (bytes: Uint8Array) => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;

const tooLarge = (path: string, maxBytes: number) => new RangeError(`readNifti(): '${path}' decompresses to more than ${maxBytes} bytes, the limit`);

function gunzipError(err: unknown, path: string, maxBytes: number | undefined): Error {
  if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' && maxBytes !== undefined) return tooLarge(path, maxBytes);
  return fail(path, `is a damaged gzip file: ${(err as Error).message}`);
}

export interface ParseNiftiOptions {
  /**
   * The most bytes the image may take decompressed (header and data): a larger one is refused with a
   * RangeError before it is decoded, e.g. to bound what a small gzipped upload can expand to. Default: no
   * limit beyond Node's largest Buffer.
   */
  maxBytes?: number;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The voxels as a typed array over an aligned copy of the data bytes, in the host's byte order. */
function voxelView(bytes: Buffer, offset: number, count: number, datatype: number, size: number, le: boolean) {
  const region = new Uint8Array(count * size);
  region.set(bytes.subarray(offset, offset + count * size));
  if (le !== LITTLE_ENDIAN_HOST && size > 1) {
    const b = Buffer.from(region.buffer);
    if (size === 2) b.swap16();
    else if (size === 4) b.swap32();
    else b.swap64();
  }
  const buf = region.buffer;
  switch (datatype) {
    case 2:
      return region;
    case 256:
      return new Int8Array(buf);
    case 4:
      return new Int16Array(buf);
    case 512:
      return new Uint16Array(buf);
    case 8:
      return new Int32Array(buf);
    case 768:
      return new Uint32Array(buf);
    case 1024:
      return new BigInt64Array(buf);
    case 1280:
      return new BigUint64Array(buf);
    case 16:
      return new Float32Array(buf);
    default:
      return new Float64Array(buf);
  }
}

/**
 * Decodes a NIfTI-1 or NIfTI-2 image held in memory (gzip-compressed or not), e.g. an upload. `name` is
 * used in errors and as the image's `path`. Throws an Error naming `name` for anything that is not a valid
 * image (a RangeError for one over `options.maxBytes`).
 *
 * As nibabel reads them: intensities are scaled by scl_slope / scl_inter unless the slope is 0 or not
 * finite; negative voxel sizes (pixdim[1..3]) count as their absolute value and zero ones as 1. Integer
 * data without scaling comes back as int64 exactly (uint32 and int64 too; uint64 while it fits). A
 * single-file image whose vox_offset is below the header's end (0: unset) has its data right after the
 * header (nibabel would read the header itself as voxels).
 */
export function parseNifti(input: Uint8Array, name = '<buffer>', options: ParseNiftiOptions = {}): NiftiImage {
  const d = decodeNifti(input, name, options);
  return finishNifti(d, tidy(() => tensor(d.values, { shape: d.fileShape, dtype: d.dtype }).permute(d.perm).contiguous()));
}

/** A decoded image before its tensor: the voxels in file order (i fastest) and the geometry. */
interface DecodedNifti {
  values: Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array | Uint32Array;
  dtype: 'float32' | 'int64';
  /** the shape in file order (reversed) and the permutation into nibabel's order */
  fileShape: number[];
  perm: number[];
  spacing: number[];
  affine: number[][];
  version: 1 | 2;
  header: Uint8Array | null;
  path: string;
}

function finishNifti(d: DecodedNifti, data: Tensor): NiftiImage {
  // writeNiftiLabels copies a NIfTI-1 header: a NIfTI-2 image gets one built from its affine
  const header = d.header ?? niftiReference({ data, spacing: d.spacing, affine: d.affine }, d.path).header;
  return { data, spacing: d.spacing, affine: d.affine, header, path: d.path };
}

function decodeNifti(input: Uint8Array, name: string, options: ParseNiftiOptions): DecodedNifti {
  const path = name;
  const maxBytes = checkMaxBytes(options.maxBytes);
  let bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes, maxBytes === undefined ? {} : { maxOutputLength: maxBytes });
    } catch (err) {
      throw gunzipError(err, path, maxBytes);
    }
  }
  if (maxBytes !== undefined && bytes.length > maxBytes) throw tooLarge(path, maxBytes);
  if (bytes.length < 348) throw fail(path, `is too short for a NIfTI header (${bytes.length} bytes)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sizes = [v.getInt32(0, true), v.getInt32(0, false)];
  const le = sizes[0] === 348 || sizes[0] === 540;
  const version = sizes.includes(348) ? 1 : sizes.includes(540) ? 2 : 0;
  if (version === 0) throw fail(path, 'is not a NIfTI file (sizeof_hdr is neither 348, NIfTI-1, nor 540, NIfTI-2)');
  const headerSize = version === 1 ? 348 : 540;
  if (bytes.length < headerSize) throw fail(path, `is too short for a NIfTI-${version} header (${bytes.length} bytes)`);
  const magic = bytes.subarray(version === 1 ? 344 : 4, version === 1 ? 347 : 7).toString('latin1');
  if (magic === `ni${version}`) throw fail(path, `is the header of a NIfTI-${version} .hdr / .img pair; semiseg reads single-file images (.nii or .nii.gz)`);
  if (magic !== `n+${version}`) throw fail(path, `is not a single-file NIfTI-${version} image (magic '${magic}')`);
  const h = readHeader(v, le, version, path);
  const type = TYPES[h.datatype];
  if (!type) throw fail(path, `has NIfTI datatype ${h.datatype}, which semiseg does not read`);
  if (!Number.isFinite(h.offset)) throw fail(path, `has an invalid vox_offset ${h.offset}`);
  const offset = Math.max(h.offset, headerSize + 4); // below the header's end (e.g. unset, 0): right after it, as nibabel
  const count = h.shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(count * type.size) || offset + count * type.size > bytes.length)
    throw fail(path, `holds ${Math.max(0, bytes.length - offset)} data bytes where ${count * type.size} are needed (truncated?)`);
  const scaled = Number.isFinite(h.slope) && h.slope !== 0 && !(h.slope === 1 && h.inter === 0);
  if (scaled && !Number.isFinite(h.inter)) throw fail(path, `has scl_slope ${h.slope} but scl_inter ${h.inter}`);
  const view = voxelView(bytes, offset, count, h.datatype, type.size, le);
  let values: Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array | Uint32Array;
  if (!scaled && type.int) {
    if (view instanceof BigUint64Array) {
      if (view.some((x) => x > 0x7fffffffffffffffn)) throw fail(path, 'holds uint64 values beyond the int64 range');
      values = new BigInt64Array(view.buffer);
    } else if (view instanceof Int8Array || view instanceof Int16Array || view instanceof Uint16Array) values = Int32Array.from(view);
    else values = view as Uint8Array | Int32Array | Uint32Array | BigInt64Array;
  } else if (!scaled) {
    values = view instanceof Float32Array ? view : Float32Array.from(view as Float64Array);
  } else {
    const out = new Float32Array(count);
    const [slope, inter] = [h.slope, h.inter];
    if (view instanceof BigInt64Array || view instanceof BigUint64Array) for (let n = 0; n < count; n++) out[n] = Number(view[n]) * slope + inter;
    else for (let n = 0; n < count; n++) out[n] = (view as Float64Array)[n] * slope + inter;
    values = out;
  }
  const { pixdim } = h;
  const affine =
    h.sformCode > 0
      ? [...h.srow, [0, 0, 0, 1]]
      : h.qformCode > 0
        ? quaternAffine(h)
        : baseAffine(h.shape, pixdim);
  const fileShape = [...h.shape].reverse();
  return {
    values,
    dtype: values instanceof Float32Array ? 'float32' : 'int64',
    fileShape,
    perm: fileShape.map((_, k) => fileShape.length - 1 - k),
    spacing: pixdim.slice(1, 1 + h.shape.length),
    affine,
    version,
    header: version === 1 ? new Uint8Array(bytes.subarray(0, 348)) : null,
    path,
  };
}

/**
 * Writes `labels` (integer, the reference image's spatial shape, nibabel axis order) as a NIfTI-1 label
 * map on the grid of `reference` (its header: affine, qform/sform, spacing). .gz paths are compressed.
 * Atomic: a temporary file, flushed, then renamed.
 */
export async function writeNiftiLabels(path: string, labels: Tensor, reference: NiftiImage): Promise<void> {
  checkPath('writeNiftiLabels', path);
  await writeFileAtomic(path, [encodeNiftiLabels(labels, reference, { gzip: path.endsWith('.gz'), fn: 'writeNiftiLabels' })]);
}

/**
 * Encodes `labels` as a NIfTI-1 label map on the grid of `reference` (see writeNiftiLabels), in memory:
 * gzip-compressed unless `gzip` is false.
 */
export function encodeNiftiLabels(labels: Tensor, reference: NiftiImage, options: { gzip?: boolean; fn?: string } = {}): Buffer {
  const fn = options.fn ?? 'encodeNiftiLabels';
  tensorArg(fn, 'labels', labels);
  const refShape = reference.data.shape;
  // a 4-D reference (I, J, K, C: several channels, or a trailing 1) takes a 3-D label map on its grid
  const spatial = refShape.length === 4 && labels.rank === 3 ? refShape.slice(0, 3) : refShape;
  if (labels.shape.join('x') !== spatial.join('x'))
    throw new RangeError(`${fn}(): 'labels' has shape [${labels.shape.join(', ')}] but the reference image [${refShape.join(', ')}]`);
  const rank = labels.rank;
  const perm = labels.shape.map((_, k) => rank - 1 - k);
  const flat = tidy(() => labels.permute(perm).contiguous().to('int64').toArray() as BigInt64Array);
  let lo = 0;
  let hi = 0;
  for (const x of flat) {
    if (x < lo) lo = Number(x);
    if (x > hi) hi = Number(x);
  }
  const [datatype, size] = lo >= 0 && hi <= 255 ? [2, 1] : [4, 2];
  if (lo < -32768 || hi > 32767) throw new RangeError(`${fn}(): labels in [${lo}, ${hi}] do not fit int16`);
  const out = Buffer.alloc(352 + flat.length * size);
  Buffer.from(reference.header).copy(out, 0, 0, 348);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const le = v.getInt32(0, true) === 348;
  v.setInt16(40, rank, le);
  for (let k = 0; k < 7; k++) v.setInt16(42 + 2 * k, k < rank ? labels.shape[k] : 1, le);
  v.setInt16(70, datatype, le);
  v.setInt16(72, size * 8, le);
  v.setFloat32(108, 352, le);
  v.setFloat32(112, 1, le); // scl_slope
  v.setFloat32(116, 0, le); // scl_inter
  v.setFloat32(124, hi, le); // cal_max
  v.setFloat32(128, 0, le); // cal_min
  out.write('n+1\0', 344, 'latin1');
  for (let n = 0; n < flat.length; n++) {
    if (size === 1) v.setUint8(352 + n, Number(flat[n]));
    else v.setInt16(352 + 2 * n, Number(flat[n]), le);
  }
  return options.gzip === false ? out : gzipSync(out);
}
