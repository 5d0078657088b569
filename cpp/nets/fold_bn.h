// BatchNorm folding for inference: in every Sequential of a module tree, a Conv{1,2,3}d or
// ConvTranspose{1,2,3}d directly followed by an eval-mode BatchNorm{1,2,3}d (running statistics, affine)
// takes the normalisation into its weight and bias, and the BatchNorm is replaced by an Identity:
//   W' = W * g / sqrt(v + eps) (per output channel), b' = (b - m) * g / sqrt(v + eps) + beta
// computed in float64. Only for a copy used in eval mode (the tree no longer trains like the original).
#pragma once

#include <torch/nn/module.h>

namespace semiseg::nets {

// Folds every foldable pair of `root`'s tree in place; the number of BatchNorms folded.
int64_t foldBatchNorm(torch::nn::Module& root);

}  // namespace semiseg::nets
