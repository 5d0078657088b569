/**
 * A 3-D image with its geometry, whatever file it came from (NIfTI, DICOM series, HDF5 with a known
 * spacing): what preprocessing, inference and writers share.
 *
 * Axis order is nibabel's (i, j, k); `affine` maps voxel indices (i, j, k, 1) to RAS+ world millimetres,
 * as a NIfTI sform does.
 */
import type { Tensor } from '../tensor.js';

export interface SpatialImage {
  /** Intensities (float32 or an integer type), [I, J, K] or [C, I, J, K] for several channels. */
  data: Tensor;
  /** Voxel size in millimetres along i, j, k. */
  spacing: number[];
  /** 4 x 4 voxel-to-world (RAS+) matrix. */
  affine: number[][];
}
