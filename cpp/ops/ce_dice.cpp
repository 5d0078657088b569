// regionWeightedCeDice: argument checks, the loss from _ce_dice_stats' sums (device-agnostic, the
// CompositeExplicitAutograd kernel of semiseg::region_weighted_ce_dice) and its backward coefficients.
#include "ops/ce_dice.h"

#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

namespace semiseg::ops {

namespace {
// Numerator 2 I + s and denominator pSum + ySum + s per (group, class), background zeroed out when excluded.
std::pair<at::Tensor, at::Tensor> diceParts(const at::Tensor& classStats, const CeDiceConfig& c) {
  at::Tensor num = 2 * classStats.select(1, 0) + c.smooth;
  at::Tensor den = classStats.select(1, 1) + classStats.select(1, 2) + c.smooth;
  return {num, den};
}
int64_t diceTerms(const at::Tensor& classStats, const CeDiceConfig& c) {
  return classStats.size(0) * (classStats.size(2) - (c.includeBackground ? 0 : 1));
}
at::Tensor ceDenominator(const at::Tensor& ceStats, const CeDiceConfig& c) {
  return c.weighted ? ceStats[1] + 1e-16 : ceStats[1];
}
}  // namespace

at::Tensor ceDiceLossFromStats(const at::Tensor& classStats, const at::Tensor& ceStats, const CeDiceConfig& c) {
  auto [num, den] = diceParts(classStats, c);
  at::Tensor dice = 1 - num / den;
  if (!c.includeBackground) dice = dice.narrow(1, 1, dice.size(1) - 1);
  return 0.5 * (ceStats[0] / ceDenominator(ceStats, c) + dice.mean());
}

at::Tensor ceDiceCoefficients(const at::Tensor& classStats, const at::Tensor& ceStats, const at::Tensor& grad,
                              const CeDiceConfig& c) {
  auto [num, den] = diceParts(classStats, c);
  const double terms = static_cast<double>(diceTerms(classStats, c));
  at::Tensor g = grad.to(classStats.scalar_type());
  at::Tensor a = (-1.0 / terms) / den * g;               // d(0.5 mean(1 - D)) / d inter
  at::Tensor b = (0.5 / terms) * num / (den * den) * g;  // ... / d pSum
  if (!c.includeBackground) {
    a.select(1, 0).zero_();
    b.select(1, 0).zero_();
  }
  at::Tensor k = (0.5 * g / ceDenominator(ceStats, c)).reshape({1});
  return at::cat({at::stack({a, b}, 1).reshape({-1}), k});
}

namespace {
at::Tensor regionWeightedCeDiceComposite(const at::Tensor& logits, const at::Tensor& target,
                                         const std::optional<at::Tensor>& weights, bool squared, bool perSample,
                                         double smooth, bool includeBackground) {
  auto [cs, ce] = opHandle<CeDiceStatsSig>("semiseg::_ce_dice_stats").call(logits, target, weights, squared, perSample);
  const CeDiceConfig c{squared, perSample, includeBackground, weights.has_value(), smooth};
  return ceDiceLossFromStats(cs, ce, c).to(ceDiceLossType(logits.scalar_type()));
}
}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CompositeExplicitAutograd, m) {
  m.impl("region_weighted_ce_dice", &regionWeightedCeDiceComposite);
}

at::Tensor regionWeightedCeDice(const at::Tensor& logits, const at::Tensor& target,
                                const std::optional<at::Tensor>& weights, const losses::DiceOptions& o) {
  constexpr const char* op = "regionWeightedCeDice";
  checkScores(op, "input", logits);
  // CPU kernels check label ranges as they read them; elsewhere check here (one reduction).
  checkLabels(op, "target", target, logits, !logits.is_cpu());
  if (weights) {
    checkPixelMap(op, "weights", *weights, logits);
    TORCH_CHECK(at::isFloatingType(weights->scalar_type()), op, "(): argument 'weights' must be floating-point, got ",
                weights->scalar_type());
  }
  TORCH_CHECK(o.smooth >= 0, op, "(): option 'smooth' must be >= 0, got ", o.smooth);
  TORCH_CHECK(o.includeBackground || logits.size(1) > 1, op,
              "(): with includeBackground false there must be 2 or more classes");
  std::optional<at::Tensor> w;
  if (weights) w = weights->to(logits.scalar_type());
  using Sig =
      at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, bool, bool, double, bool);
  return opHandle<Sig>("semiseg::region_weighted_ce_dice")
      .call(logits, target, w, o.squared, o.perSample, o.smooth, o.includeBackground);
}

}  // namespace semiseg::ops
