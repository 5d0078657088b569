// Segmentation losses of the spec (1.2, 2): cross-entropy, the Dice variants as explicit options,
// 0.5 * (CE + Dice), and the softmax-MSE consistency. Region weights restrict every sum (BCP).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace semiseg::losses {

struct DiceOptions {
  bool squared = true;     // denominators sum(p^2) + sum(y^2) (SSL4MIS); false: sum(p) + sum(y)
  bool perSample = false;  // Dice per (sample, class), then the mean; false: sums over the whole batch
  double smooth = 1e-5;    // added to numerator and denominator
  bool includeBackground = true;
};

// probs (N, C, ...) probabilities; target (N, ...) integer labels in [0, C); weights (N, ...) or absent.
at::Tensor diceLoss(const at::Tensor& probs, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                    const DiceOptions& options);

// Mean over pixels of -log softmax(logits)[target]; with weights sum(w * ce) / (sum(w) + 1e-16).
at::Tensor crossEntropy(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights);

// 0.5 * (CE(logits) + Dice(softmax(logits))).
at::Tensor ceDiceLoss(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                      const DiceOptions& options);

// mean((softmax(a, 1) - softmax(b, 1))^2) over every element.
at::Tensor softmaxMse(const at::Tensor& a, const at::Tensor& b);

}  // namespace semiseg::losses
