// Composite references of the fused ops written with ordinary ATen calls, the way the published
// PyTorch code builds them: the fused kernels are tested and benchmarked against these. The
// region-weighted CE + Dice composite is losses::ceDiceLoss with weights.
#pragma once

#include "ops/ops.h"

namespace semiseg::ops::composite {

CopyPaste bidirectionalCopyPaste(const at::Tensor& labeled, const at::Tensor& labels, const at::Tensor& unlabeled,
                                 const at::Tensor& pseudoLabels, const at::Tensor& box, double alpha, Pairing pairing);
at::Tensor marginalAlign(const at::Tensor& probs, const at::Tensor& labeledMarginal,
                         const at::Tensor& unlabeledMarginal, double eps);
std::pair<at::Tensor, at::Tensor> classMarginals(const at::Tensor& probs, const std::optional<at::Tensor>& mask);
OverExpectation overExpectationCe(const at::Tensor& logits, const at::Tensor& aligned, const at::Tensor& expectations);

}  // namespace semiseg::ops::composite
