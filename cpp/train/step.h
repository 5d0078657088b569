// One supervised training step crossing into native code once: zero grads, forward, loss, backward,
// optimizer step. A non-finite loss stops before the optimizer touches the weights.
#pragma once

#include "losses/losses.h"
#include "nets/network.h"
#include "train/optimizer.h"

#include <string>

namespace semiseg::train {

struct LossSpec {
  std::string kind = "ceDice";  // "ce" | "dice" | "ceDice"
  losses::DiceOptions dice;
};

// The loss of `logits` against `target` as `spec` says.
at::Tensor supervisedLoss(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                          const LossSpec& spec);

// Returns the loss value. Throws (with the weights untouched) when the loss is NaN or infinite.
double supervisedStep(nets::Network& net, Optimizer& optimizer, const at::Tensor& input, const at::Tensor& target,
                      const LossSpec& spec);

}  // namespace semiseg::train
