#include "train/step.h"

#include <ATen/ops/softmax.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace semiseg::train {

at::Tensor supervisedLoss(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                          const LossSpec& spec) {
  if (spec.kind == "ce") return losses::crossEntropy(logits, target, weights);
  if (spec.kind == "dice") return losses::diceLoss(at::softmax(logits, 1), target, weights, spec.dice);
  if (spec.kind == "ceDice") return losses::ceDiceLoss(logits, target, weights, spec.dice);
  TORCH_CHECK(false, "trainStep(): option 'loss' must be 'ce', 'dice' or 'ceDice', got '", spec.kind, "'");
}

double supervisedStep(nets::Network& net, Optimizer& optimizer, const at::Tensor& input, const at::Tensor& target,
                      const LossSpec& spec) {
  c10::AutoGradMode grad(true);
  optimizer.zeroGrad();
  at::Tensor loss = supervisedLoss(net.forward(input), target, std::nullopt, spec);
  const double value = loss.item<double>();
  TORCH_CHECK(std::isfinite(value), "trainStep(): the loss is ", value, "; the weights were not updated");
  loss.backward();
  optimizer.step();
  return value;
}

}  // namespace semiseg::train
