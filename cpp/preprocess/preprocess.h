// Preprocessing of a dataset case or an inference input, as nnU-Net does it (crop, normalise, resample),
// in one native call so that a training epoch or a service request never does it voxel by voxel in JS.
//
// Images are (C, ...spatial) float tensors; labels (...spatial) integer tensors. Spatial dimensions are 2
// or 3. Resampling is pixel-centre aligned (align_corners = false, as skimage's resize and nnU-Net).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

namespace semiseg::preprocess {

struct Normalization {
  // "none" | "zscore" (per volume and channel) | "ct" (clip to [lo, hi], then (x - mean) / std) |
  // "minmax" (per volume and channel to [0, 1])
  std::string scheme = "none";
  double lo = 0, hi = 0, mean = 0, std = 1;  // "ct" only
  // "zscore" only (nnU-Net's use_mask_for_norm): statistics over the voxels that are non-zero in some
  // channel, and 0 outside them (skull-stripped or masked scans, whose zero background would skew them)
  bool mask = false;
};

struct Options {
  bool crop = false;                    // crop to the bounding box of non-zero image voxels (any channel)
  std::vector<Normalization> channels;  // one per channel (or one for all)
  std::vector<int64_t> size;            // resample to this spatial size (empty: keep), or:
  std::vector<double> spacing;          // the input's voxel spacing and
  std::vector<double> targetSpacing;    // the spacing to resample to (size = round(crop * spacing / target))
  int64_t keepAxis = -1;                // with targetSpacing: an axis left at its own resolution (2-D slices)
  std::string imageMode = "linear";     // "linear" | "cubic" | "nearest"
  std::string labelMode = "nearest";    // "nearest" | "linear" (on the one-hot maps, then argmax)
  int64_t classes = 0;                  // labelMode "linear": number of classes
};

struct Result {
  at::Tensor image;                 // (C, ...size) float32
  std::optional<at::Tensor> label;  // (...size) int64
  std::vector<int64_t> cropStart;   // where the crop starts in the input grid
  std::vector<int64_t> cropShape;   // the crop's shape before resampling
};

// image: (C, ...spatial); label: (...spatial). NaN / Inf intensities are refused.
Result run(const at::Tensor& image, const std::optional<at::Tensor>& label, const Options& options);

// x: (C, ...spatial) floating tensor -> (C, ...size); mode "linear" | "cubic" | "nearest".
at::Tensor resample(const at::Tensor& x, const std::vector<int64_t>& size, const std::string& mode);

// Label map (...spatial) -> (...size), int64: "nearest", or "linear" on the one-hot maps of `classes`.
at::Tensor resampleLabels(const at::Tensor& labels, const std::vector<int64_t>& size, const std::string& mode,
                          int64_t classes);

// Bounding box of the non-zero voxels of (C, ...spatial): start and shape per spatial dimension; the whole
// grid when every voxel is zero.
std::pair<std::vector<int64_t>, std::vector<int64_t>> nonzeroBox(const at::Tensor& image);

}  // namespace semiseg::preprocess
