// The fused ops' public C++ entries: each checks its arguments (messages name the argument, the
// expected and the received value) and calls the `semiseg::` dispatcher op, which runs the CPU or CUDA
// kernel and records autograd when an input requires grad. Schemas and math: ops/schemas.cpp.
#pragma once

#include "losses/losses.h"

#include <ATen/core/Tensor.h>

#include <optional>

namespace semiseg::ops {

// Which samples each mix pairs: Same (both mixes use labeled[i] with unlabeled[i], K = N); InFirst
// (the in-mix takes the first halves, the out-mix the second, K = N / 2, BCP's 2-D code); OutFirst.
enum class Pairing : int64_t { Same = 0, InFirst = 1, OutFirst = 2 };

struct CopyPaste {
  at::Tensor mixedIn, targetIn, weightIn;     // unlabeled outside the box, labeled inside
  at::Tensor mixedOut, targetOut, weightOut;  // labeled outside the box, unlabeled inside
};

// box: integer (B, 2 * spatialDims) [start..., size...], B = 1 or K. alpha: pseudo-labels' weight.
CopyPaste bidirectionalCopyPaste(const at::Tensor& labeled, const at::Tensor& labels, const at::Tensor& unlabeled,
                                 const at::Tensor& pseudoLabels, const at::Tensor& box, double alpha, Pairing pairing);

// 0.5 * (CE_w + Dice_w) with the Dice variant of `dice`; weights absent = 1 everywhere.
at::Tensor regionWeightedCeDice(const at::Tensor& logits, const at::Tensor& target,
                                const std::optional<at::Tensor>& weights, const losses::DiceOptions& dice);

// q = p * pi_l / (pi_u + eps), renormalised over classes per pixel; differentiable in probs.
at::Tensor marginalAlign(const at::Tensor& probs, const at::Tensor& labeledMarginal,
                         const at::Tensor& unlabeledMarginal, double eps);

// Per-class means of probs over the pixels where mask is true (all without a mask), and their count.
std::pair<at::Tensor, at::Tensor> classMarginals(const at::Tensor& probs, const std::optional<at::Tensor>& mask);

struct OverExpectation {
  at::Tensor loss, count, classConfidence, classCount;
};

OverExpectation overExpectationCe(const at::Tensor& logits, const at::Tensor& aligned, const at::Tensor& expectations);

}  // namespace semiseg::ops
