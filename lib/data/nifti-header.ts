/**
 * A NIfTI-1 header for an image that did not come from a NIfTI file (a DICOM series, an HDF5 volume with
 * a known affine), so that writeNiftiLabels / encodeNiftiLabels can write a label map on its grid.
 *
 * The sform is the affine itself (sform_code 1, scanner coordinates); the qform is its rotation as a
 * quaternion (nifti_mat44_to_quatern: column norms as pixdim, qfac from the determinant's sign, the
 * nearest orthogonal matrix by polar decomposition for sheared grids, which only the sform represents
 * exactly); units are millimetres.
 */
import type { SpatialImage } from './image.js';
import type { NiftiImage } from './nifti.js';

type M3 = number[][];

const det3 = (m: M3) =>
  m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);

function inverseTranspose3(m: M3): M3 {
  const d = det3(m);
  const c = (r: number, k: number) => {
    const rows = [0, 1, 2].filter((x) => x !== r);
    const cols = [0, 1, 2].filter((x) => x !== k);
    const minor = m[rows[0]][cols[0]] * m[rows[1]][cols[1]] - m[rows[0]][cols[1]] * m[rows[1]][cols[0]];
    return ((r + k) % 2 ? -minor : minor) / d;
  };
  // (m^-1)^T = cofactor matrix / det
  return [0, 1, 2].map((r) => [0, 1, 2].map((k) => c(r, k)));
}

/** The nearest orthogonal matrix (polar decomposition by Newton iteration). */
function polar(m: M3): M3 {
  let x = m.map((r) => [...r]);
  for (let it = 0; it < 30; it++) {
    const y = inverseTranspose3(x);
    const next = x.map((r, i) => r.map((v, j) => 0.5 * (v + y[i][j])));
    const delta = Math.max(...next.flatMap((r, i) => r.map((v, j) => Math.abs(v - x[i][j]))));
    x = next;
    if (delta < 1e-12) break;
  }
  return x;
}

/** Quaternion (b, c, d), qfac and pixdim of an affine's 3 x 3 part, as nifti_mat44_to_quatern computes them. */
export function affineToQuaternion(affine: number[][]): { b: number; c: number; d: number; qfac: number; pixdim: number[] } {
  const cols = [0, 1, 2].map((k) => [0, 1, 2].map((r) => affine[r][k]));
  const pixdim = cols.map((c) => Math.hypot(...c) || 1);
  let r: M3 = [0, 1, 2].map((row) => [0, 1, 2].map((k) => affine[row][k] / pixdim[k]));
  let qfac = 1;
  if (det3(r) < 0) {
    qfac = -1;
    r = r.map((row) => [row[0], row[1], -row[2]]);
  }
  r = polar(r);
  let a = r[0][0] + r[1][1] + r[2][2] + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r[2][1] - r[1][2])) / a;
    c = (0.25 * (r[0][2] - r[2][0])) / a;
    d = (0.25 * (r[1][0] - r[0][1])) / a;
  } else {
    const xd = 1 + r[0][0] - (r[1][1] + r[2][2]);
    const yd = 1 + r[1][1] - (r[0][0] + r[2][2]);
    const zd = 1 + r[2][2] - (r[0][0] + r[1][1]);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r[0][1] + r[1][0])) / b;
      d = (0.25 * (r[0][2] + r[2][0])) / b;
      a = (0.25 * (r[2][1] - r[1][2])) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r[0][1] + r[1][0])) / c;
      d = (0.25 * (r[1][2] + r[2][1])) / c;
      a = (0.25 * (r[0][2] - r[2][0])) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r[0][2] + r[2][0])) / d;
      c = (0.25 * (r[1][2] + r[2][1])) / d;
      a = (0.25 * (r[1][0] - r[0][1])) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac, pixdim };
}

/**
 * A NiftiImage on `image`'s grid (its data, spacing and affine) with a header built from the affine:
 * what writeNiftiLabels / encodeNiftiLabels need as `reference` for images without a NIfTI header.
 */
export function niftiReference(image: SpatialImage, path = '<image>'): NiftiImage {
  const { affine } = image;
  if (!Array.isArray(affine) || affine.length < 3 || affine.some((r) => !Array.isArray(r) || r.length !== 4 || r.some((x) => !Number.isFinite(x))))
    throw new TypeError(`niftiReference(): the image's affine must be a 4 x 4 matrix of finite numbers`);
  const shape = image.data.shape;
  const header = new Uint8Array(348);
  const v = new DataView(header.buffer);
  v.setInt32(0, 348, true);
  v.setInt16(40, shape.length, true);
  for (let k = 0; k < 7; k++) v.setInt16(42 + 2 * k, k < shape.length ? shape[k] : 1, true);
  v.setInt16(70, 16, true); // float32 (encodeNiftiLabels sets the label map's own)
  v.setInt16(72, 32, true);
  const q = affineToQuaternion(affine);
  v.setFloat32(76, q.qfac, true);
  for (let k = 0; k < 7; k++) v.setFloat32(80 + 4 * k, k < 3 ? q.pixdim[k] : 1, true);
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  header[123] = 2; // xyzt_units: millimetres
  Buffer.from('semiseg', 'latin1').forEach((b, n) => (header[148 + n] = b));
  v.setInt16(252, 1, true); // qform_code: scanner
  v.setInt16(254, 1, true); // sform_code: scanner
  v.setFloat32(256, q.b, true);
  v.setFloat32(260, q.c, true);
  v.setFloat32(264, q.d, true);
  for (let r = 0; r < 3; r++) v.setFloat32(268 + 4 * r, affine[r][3], true);
  for (let r = 0; r < 3; r++) for (let k = 0; k < 4; k++) v.setFloat32(280 + 16 * r + 4 * k, affine[r][k], true);
  header.set(Buffer.from('n+1\0', 'latin1'), 344);
  return { data: image.data, spacing: image.spacing, affine: affine.map((r) => [...r]), header, path };
}
