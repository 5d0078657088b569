// The core of slice-wise inference (the ACDC protocol, lib/infer.ts sliceInference): every slice of a
// volume already resized to the network's slice size through the network, `batch` slices per forward,
// argmax of the softmax (float32, or the network's float64), written into one pre-allocated label volume.
// No round trip to the host language between slices; `cancel` is checked between batches. An eval-mode
// network runs as its BatchNorm-folded copy (Network::inferenceNetwork).
#pragma once

#include "nets/network.h"

#include <atomic>
#include <optional>

namespace semiseg::infer {

// volume: (S, H, W) for one input channel or (S, C, H, W); returns int64 labels (S, H, W).
// fold: run an eval-mode network as its BatchNorm-folded copy.
at::Tensor sliceLabels(nets::Network& net, const at::Tensor& volume, int64_t batch,
                       std::optional<c10::ScalarType> autocast, bool fold, const std::atomic<bool>* cancel);

}  // namespace semiseg::infer
