#include "losses/losses.h"

#include "tensor/ops.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/nll_loss_nd.h>
#include <ATen/ops/one_hot.h>
#include <ATen/ops/softmax.h>
#include <c10/util/Exception.h>

#include <numeric>

namespace semiseg::losses {

namespace {

// Checks (N, C, ...) scores against (N, ...) labels and optional (N, ...) weights; returns int64 labels.
at::Tensor checkTarget(const char* fn, const at::Tensor& input, const at::Tensor& target,
                       const std::optional<at::Tensor>& weights) {
  TORCH_CHECK(input.dim() >= 3, fn, "(): argument 'input' must be (N, C, ...spatial), got shape ", input.sizes());
  TORCH_CHECK(at::isFloatingType(input.scalar_type()), fn, "(): argument 'input' must be floating-point, got ",
              input.scalar_type());
  auto expected = input.sizes().vec();
  expected.erase(expected.begin() + 1);
  TORCH_CHECK(target.sizes() == c10::IntArrayRef(expected), fn, "(): argument 'target' must have shape ",
              c10::IntArrayRef(expected), " (input without its class dimension), got ", target.sizes());
  TORCH_CHECK(!at::isFloatingType(target.scalar_type()) && target.scalar_type() != at::kBool, fn,
              "(): argument 'target' must hold integer labels, got ", target.scalar_type());
  TORCH_CHECK(target.device() == input.device(), fn, "(): argument 'target' is on ", target.device(),
              " but 'input' is on ", input.device());
  if (weights) {
    TORCH_CHECK(weights->sizes() == target.sizes(), fn, "(): argument 'weights' must have shape ", target.sizes(),
                ", got ", weights->sizes());
    TORCH_CHECK(weights->device() == input.device(), fn, "(): argument 'weights' is on ", weights->device(),
                " but 'input' is on ", input.device());
  }
  at::Tensor labels = target.to(at::kLong);
  if (labels.numel() > 0) {
    const int64_t lo = labels.min().item<int64_t>();
    const int64_t hi = labels.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < input.size(1), fn, "(): argument 'target' must hold labels in [0, ", input.size(1),
                "), got values in [", lo, ", ", hi, "]");
  }
  return labels;
}

}  // namespace

at::Tensor diceLoss(const at::Tensor& probs, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                    const DiceOptions& o) {
  at::Tensor labels = checkTarget("diceLoss", probs, target, weights);
  const int64_t classes = probs.size(1);
  TORCH_CHECK(o.smooth >= 0, "diceLoss(): option 'smooth' must be >= 0, got ", o.smooth);
  TORCH_CHECK(o.includeBackground || classes > 1,
              "diceLoss(): with includeBackground false there must be 2 or more classes");
  std::vector<int64_t> perm{0, probs.dim() - 1};
  for (int64_t d = 1; d < probs.dim() - 1; ++d) perm.push_back(d);
  at::Tensor y = at::one_hot(labels, classes).permute(perm).to(probs.scalar_type());
  at::Tensor p = probs;
  if (!o.includeBackground) {
    p = p.narrow(1, 1, classes - 1);
    y = y.narrow(1, 1, classes - 1);
  }
  at::Tensor w = weights ? weights->unsqueeze(1).to(probs.scalar_type()) : at::Tensor();
  auto weighted = [&](const at::Tensor& t) { return w.defined() ? t * w : t; };
  std::vector<int64_t> dims;
  if (!o.perSample) dims.push_back(0);
  for (int64_t d = 2; d < probs.dim(); ++d) dims.push_back(d);
  at::Tensor inter = weighted(p * y).sum(dims);
  at::Tensor pSum = weighted(o.squared ? p * p : p).sum(dims);
  at::Tensor ySum = weighted(o.squared ? y * y : y).sum(dims);
  at::Tensor dice = (2 * inter + o.smooth) / (pSum + ySum + o.smooth);
  return (1 - dice).mean();
}

at::Tensor crossEntropy(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights) {
  at::Tensor labels = checkTarget("crossEntropy", logits, target, weights);
  at::Tensor logp = at::log_softmax(logits, 1);
  if (!weights) return at::nll_loss_nd(logp, labels, {}, at::Reduction::Mean, -100);
  at::Tensor ce = at::nll_loss_nd(logp, labels, {}, at::Reduction::None, -100);
  at::Tensor w = weights->to(logits.scalar_type());
  return (w * ce).sum() / (w.sum() + 1e-16);
}

at::Tensor ceDiceLoss(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                      const DiceOptions& options) {
  checkTarget("ceDiceLoss", logits, target, weights);
  return 0.5 * (crossEntropy(logits, target, weights) + diceLoss(at::softmax(logits, 1), target, weights, options));
}

at::Tensor softmaxMse(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "softmaxMse(): 'input' and 'target' must have the same shape, got ", a.sizes(),
              " and ", b.sizes());
  TORCH_CHECK(a.dim() >= 2, "softmaxMse(): arguments must be (N, C, ...), got shape ", a.sizes());
  return (at::softmax(a, 1) - at::softmax(b, 1)).square().mean();
}

}  // namespace semiseg::losses

namespace semiseg {

namespace {
losses::DiceOptions diceOptions(const Args& a, size_t i) {
  losses::DiceOptions o;
  if (!a.isNone(i)) o.squared = a.boolean(i, "squared");
  if (!a.isNone(i + 1)) o.perSample = a.boolean(i + 1, "perSample");
  if (!a.isNone(i + 2)) o.smooth = a.f64(i + 2, "smooth");
  if (!a.isNone(i + 3)) o.includeBackground = a.boolean(i + 3, "includeBackground");
  return o;
}
}  // namespace

void registerLossOps(OpTable& t) {
  // (logits, target, weights?)
  t["crossEntropy"] = [](const Args& a) -> Value {
    return losses::crossEntropy(a.tensor(0, "input"), a.tensor(1, "target"), a.optTensor(2, "weights"));
  };
  // (probs, target, weights?, squared, perSample, smooth, includeBackground)
  t["diceLoss"] = [](const Args& a) -> Value {
    return losses::diceLoss(a.tensor(0, "input"), a.tensor(1, "target"), a.optTensor(2, "weights"), diceOptions(a, 3));
  };
  // (logits, target, weights?, squared, perSample, smooth, includeBackground)
  t["ceDiceLoss"] = [](const Args& a) -> Value {
    return losses::ceDiceLoss(a.tensor(0, "input"), a.tensor(1, "target"), a.optTensor(2, "weights"),
                              diceOptions(a, 3));
  };
  // (input, target)
  t["softmaxMse"] = [](const Args& a) -> Value {
    return losses::softmaxMse(a.tensor(0, "input"), a.tensor(1, "target"));
  };
}

}  // namespace semiseg
