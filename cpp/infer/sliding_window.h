// Sliding-window inference with the LA test protocol of the reference code (UA-MT / BCP test_single_case):
// a volume smaller than the patch is zero-padded (half each side, the odd voxel after); windows per axis
// ceil((size - patch) / stride) + 1, the last clamped to the border; softmax of each window averaged over
// the overlaps; the padding removed again. Windows are batched for speed; `cancel` is checked between
// batches. An eval-mode network runs as its BatchNorm-folded copy (Network::inferenceNetwork).
#pragma once

#include "nets/network.h"

#include <atomic>
#include <optional>
#include <vector>

namespace semiseg::infer {

struct SlidingWindowOptions {
  std::vector<int64_t> patch;    // one per spatial dimension
  std::vector<int64_t> strides;  // one per spatial dimension
  int64_t batch = 4;             // windows per forward
  bool gaussian = false;         // weight each window by a Gaussian (sigma = patch / 8) instead of uniformly
  // Autocast dtype of the forwards (infer/precision.h); probabilities are accumulated in the network's dtype.
  std::optional<c10::ScalarType> autocast;
  bool fold = true;  // run an eval-mode network as its BatchNorm-folded copy
};

// image: (C, ...spatial) or (...spatial) for one channel; returns averaged probabilities (classes, ...spatial).
at::Tensor slidingWindow(nets::Network& net, const at::Tensor& image, const SlidingWindowOptions& options,
                         const std::atomic<bool>* cancel);

}  // namespace semiseg::infer
