// The region-weighted CE + Dice loss from the sums of one kernel pass, and the coefficients its
// backward kernel needs; shared by the composite kernel (ce_dice.cpp) and the autograd wrapper.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace semiseg::ops {

struct CeDiceConfig {
  bool squared, perSample, includeBackground, weighted;
  double smooth;
};

using CeDiceStatsSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                          const std::optional<at::Tensor>&, bool, bool);
using CeDiceBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                     const at::Tensor&, bool, bool);

// 0.5 * (CE + Dice) in the accumulation type, from class_stats (G, 3, C) and ce_stats (2).
at::Tensor ceDiceLossFromStats(const at::Tensor& classStats, const at::Tensor& ceStats, const CeDiceConfig& c);

// The loss's dtype for logits of dtype t: float32 for float16 / bfloat16 (mixed precision keeps loss
// values and their reductions in float32), t otherwise.
inline at::ScalarType ceDiceLossType(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16 ? at::kFloat : t; }

// (G * 2 * C + 1) coefficients [a, b per group, k] of _ce_dice_backward for upstream gradient grad.
at::Tensor ceDiceCoefficients(const at::Tensor& classStats, const at::Tensor& ceStats, const at::Tensor& grad,
                              const CeDiceConfig& c);

}  // namespace semiseg::ops
