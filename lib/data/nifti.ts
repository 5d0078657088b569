/**
 * NIfTI-1 images (.nii and .nii.gz), read and written here (the header is a fixed 348-byte struct).
 *
 * Axis order: tensors use nibabel's array order (i, j, k) = (dim[1], dim[2], dim[3]); the file stores i
 * fastest, so reading transposes into row-major (i slowest) and writing transposes back. Intensities are
 * scaled by scl_slope / scl_inter when the slope is set. A label map written with writeNiftiLabels keeps
 * the source image's header (affine, qform, sform, voxel spacing, units), so viewers overlay it on the
 * image; only its datatype, scaling and dimensions change.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';

import { tensor } from '../create.js';

import { tidy } from '../scope.js';
import { Tensor, tensorArg } from '../tensor.js';
import { checkPath } from '../validate.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { SpatialImage } from './image.js';

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

const TYPES: Record<number, { size: number; read: (v: DataView, o: number, le: boolean) => number; int: boolean }> = {
  2: { size: 1, read: (v, o) => v.getUint8(o), int: true },
  256: { size: 1, read: (v, o) => v.getInt8(o), int: true },
  4: { size: 2, read: (v, o, le) => v.getInt16(o, le), int: true },
  512: { size: 2, read: (v, o, le) => v.getUint16(o, le), int: true },
  8: { size: 4, read: (v, o, le) => v.getInt32(o, le), int: true },
  768: { size: 4, read: (v, o, le) => v.getUint32(o, le), int: true },
  1024: { size: 8, read: (v, o, le) => Number(v.getBigInt64(o, le)), int: true },
  16: { size: 4, read: (v, o, le) => v.getFloat32(o, le), int: false },
  64: { size: 8, read: (v, o, le) => v.getFloat64(o, le), int: false },
};

function fail(path: string, why: string): Error {
  return new Error(`readNifti(): '${path}' ${why}`);
}

function quaternAffine(v: DataView, le: boolean, pixdim: number[]): number[][] {
  const b = v.getFloat32(256, le);
  const c = v.getFloat32(260, le);
  const d = v.getFloat32(264, le);
  const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
  const qfac = pixdim[0] < 0 ? -1 : 1;
  const [i, j, k] = [pixdim[1], pixdim[2], pixdim[3] * qfac];
  const r = [
    [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
    [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
    [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
  ];
  const off = [v.getFloat32(268, le), v.getFloat32(272, le), v.getFloat32(276, le)];
  return [...r.map((row, n) => [row[0] * i, row[1] * j, row[2] * k, off[n]]), [0, 0, 0, 1]];
}

/** Reads a NIfTI-1 image (.nii or .nii.gz) from a file. */
export async function readNifti(path: string): Promise<NiftiImage> {
  checkPath('readNifti', path);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw fail(path, `cannot be read: ${(err as Error).message}`);
  }
  return parseNifti(bytes, path);
}

/**
 * Decodes a NIfTI-1 image held in memory (gzip-compressed or not), e.g. an upload. `name` is used in
 * errors and as the image's `path`. Throws an Error naming `name` for anything that is not a valid image.
 */
export function parseNifti(input: Uint8Array, name = '<buffer>'): NiftiImage {
  const path = name;
  let bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw fail(path, `is a damaged gzip file: ${(err as Error).message}`);
    }
  }
  if (bytes.length < 348) throw fail(path, `is too short for a NIfTI-1 header (${bytes.length} bytes)`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = v.getInt32(0, true) === 348;
  if (!le && v.getInt32(0, false) !== 348) throw fail(path, 'is not a NIfTI-1 file (sizeof_hdr is not 348)');
  const magic = bytes.subarray(344, 347).toString('latin1');
  if (magic !== 'n+1') throw fail(path, `is not a single-file NIfTI-1 image (magic '${magic}')`);
  const rank = v.getInt16(40, le);
  if (rank < 1 || rank > 7) throw fail(path, `has an invalid rank ${rank}`);
  const shape = Array.from({ length: rank }, (_, k) => v.getInt16(42 + 2 * k, le));
  if (shape.some((s) => s < 1)) throw fail(path, `has an invalid shape [${shape.join(', ')}]`);
  const datatype = v.getInt16(70, le);
  const type = TYPES[datatype];
  if (!type) throw fail(path, `has NIfTI datatype ${datatype}, which semiseg does not read`);
  const pixdim = Array.from({ length: 8 }, (_, k) => v.getFloat32(76 + 4 * k, le));
  const offset = Math.floor(v.getFloat32(108, le));
  const slope = v.getFloat32(112, le);
  const inter = v.getFloat32(116, le);
  const count = shape.reduce((a, b) => a * b, 1);
  if (offset < 348 || offset + count * type.size > bytes.length)
    throw fail(path, `holds ${bytes.length - offset} data bytes where ${count * type.size} are needed (truncated?)`);
  const scaled = slope !== 0 && !(slope === 1 && inter === 0);
  const values = type.int && !scaled ? new Int32Array(count) : new Float32Array(count);
  for (let n = 0; n < count; n++) {
    const x = type.read(v, offset + n * type.size, le);
    values[n] = scaled ? x * slope + inter : x;
  }
  const sformCode = v.getInt16(254, le);
  const qformCode = v.getInt16(252, le);
  const affine =
    sformCode > 0
      ? [280, 296, 312].map((at) => [0, 1, 2, 3].map((k) => v.getFloat32(at + 4 * k, le))).concat([[0, 0, 0, 1]])
      : qformCode > 0
        ? quaternAffine(v, le, pixdim)
        : [
            [pixdim[1], 0, 0, 0],
            [0, pixdim[2], 0, 0],
            [0, 0, pixdim[3] || 1, 0],
            [0, 0, 0, 1],
          ];
  const reversed = [...shape].reverse();
  const perm = reversed.map((_, k) => reversed.length - 1 - k);
  const data = tidy(() => {
    const raw = tensor(values, { shape: reversed, dtype: values instanceof Int32Array ? 'int64' : 'float32' });
    return raw.permute(perm).contiguous();
  });
  return { data, spacing: pixdim.slice(1, 1 + rank), affine, header: new Uint8Array(bytes.subarray(0, 348)), path };
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
  if (labels.shape.join('x') !== refShape.join('x'))
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
