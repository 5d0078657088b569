// Shared by the composite kernel and the autograd wrapper of semiseg::over_expectation_ce.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace semiseg::ops {

using OeOutputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using OeStatsSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&);
using OeBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);

// (loss in dtype (float32 for float16 / bfloat16), count, class_confidence, class_count) from the kernel's sums.
OeOutputs overExpectationFromStats(const at::Tensor& stats, const at::Tensor& classStats, at::ScalarType dtype);
// The expectations as a constant in the accumulation type on the logits' device.
at::Tensor expectationsAcc(const at::Tensor& logits, const at::Tensor& expectations);

}  // namespace semiseg::ops
