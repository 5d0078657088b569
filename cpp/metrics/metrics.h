// Segmentation metrics on binary masks with medpy's definitions (spec 1.5): Dice, Jaccard, 95th-percentile
// Hausdorff distance, average surface distance (one direction) and its symmetric mean; and the largest
// connected component per class.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace semiseg::metrics {

enum class EmptyPolicy {
  Zero,  // the published evaluation code: an empty prediction scores 0 on every metric
  Nan,   // a metric that is undefined for an empty mask is NaN
};

struct BinaryMetrics {
  double dice, jaccard, hd95, asd, assd;
  bool predictionEmpty, referenceEmpty;
};

// pred, ref: equal-shaped masks (nonzero = foreground), any rank >= 1, CPU or CUDA (copied to CPU).
// spacing: one entry per dimension, or empty for voxel units.
// distances false: only Dice and Jaccard (the others NaN), without the distance transforms.
BinaryMetrics binaryMetrics(const at::Tensor& pred, const at::Tensor& ref, const std::vector<double>& spacing,
                            EmptyPolicy policy, bool distances = true);

// Keeps, for every class in `classes`, only its largest connected component (full connectivity: 8 in
// 2D, 26 in 3D); other voxels of that class become 0. The last `spatialDims` dimensions are spatial, the
// leading ones are a batch. Ties keep the component met first in row-major order (as skimage labels).
at::Tensor largestConnectedComponent(const at::Tensor& labels, int64_t spatialDims,
                                     const std::vector<int64_t>& classes);

}  // namespace semiseg::metrics
