// Autograd of region_weighted_ce_dice: the forward keeps the sums of its one pass; the backward turns
// them into per-class coefficients and runs _ce_dice_backward (one pass over the logits).
#include "ops/ce_dice.h"
#include "ops/dispatch.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace semiseg::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class CeDiceFunction : public torch::autograd::Function<CeDiceFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& target,
                            const std::optional<at::Tensor>& weights, bool squared, bool perSample, double smooth,
                            bool includeBackground) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [cs, ce] =
        opHandle<CeDiceStatsSig>("semiseg::_ce_dice_stats").call(logits, target, weights, squared, perSample);
    const CeDiceConfig c{squared, perSample, includeBackground, weights.has_value(), smooth};
    ctx->save_for_backward({logits, target, weights.value_or(at::Tensor()), cs, ce});
    ctx->saved_data["squared"] = squared;
    ctx->saved_data["perSample"] = perSample;
    ctx->saved_data["smooth"] = smooth;
    ctx->saved_data["includeBackground"] = includeBackground;
    return ceDiceLossFromStats(cs, ce, c).to(ceDiceLossType(logits.scalar_type()));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const bool squared = ctx->saved_data["squared"].toBool(), perSample = ctx->saved_data["perSample"].toBool();
    std::optional<at::Tensor> weights;
    if (saved[2].defined()) weights = saved[2];
    const CeDiceConfig c{squared, perSample, ctx->saved_data["includeBackground"].toBool(), weights.has_value(),
                         ctx->saved_data["smooth"].toDouble()};
    at::Tensor coeffs = ceDiceCoefficients(saved[3], saved[4], grads[0], c);
    at::Tensor g = opHandle<CeDiceBackwardSig>("semiseg::_ce_dice_backward")
                       .call(saved[0], saved[1], weights, coeffs, squared, perSample);
    return {g, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor ceDiceAutograd(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                          bool squared, bool perSample, double smooth, bool includeBackground) {
  return CeDiceFunction::apply(logits, target, weights, squared, perSample, smooth, includeBackground);
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, Autograd, m) { m.impl("region_weighted_ce_dice", &ceDiceAutograd); }

}  // namespace semiseg::ops
