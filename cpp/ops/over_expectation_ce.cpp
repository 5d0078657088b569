// overExpectationCe: argument checks, and the loss, count and per-class confidences from
// _over_expectation_ce_stats' sums (the CompositeExplicitAutograd kernel of semiseg::over_expectation_ce).
#include "ops/over_expectation_ce.h"

#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

namespace semiseg::ops {

OeOutputs overExpectationFromStats(const at::Tensor& stats, const at::Tensor& classStats, at::ScalarType dtype) {
  // float16 / bfloat16 logits (mixed precision) give a float32 loss, as the fused CE + Dice does
  const at::ScalarType lossType = dtype == at::kHalf || dtype == at::kBFloat16 ? at::kFloat : dtype;
  return {(stats[0] / at::clamp_min(stats[1], 1)).to(lossType), stats[1],
          classStats[0] / at::clamp_min(classStats[1], 1), classStats[1]};
}

at::Tensor expectationsAcc(const at::Tensor& logits, const at::Tensor& expectations) {
  return expectations.detach().to(logits.device(), logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat);
}

namespace {
OeOutputs overExpectationComposite(const at::Tensor& logits, const at::Tensor& aligned,
                                   const at::Tensor& expectations) {
  auto [stats, classStats] = opHandle<OeStatsSig>("semiseg::_over_expectation_ce_stats")
                                 .call(logits, aligned, expectationsAcc(logits, expectations));
  return overExpectationFromStats(stats, classStats, logits.scalar_type());
}
}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CompositeExplicitAutograd, m) { m.impl("over_expectation_ce", &overExpectationComposite); }

OverExpectation overExpectationCe(const at::Tensor& logits, const at::Tensor& aligned, const at::Tensor& expectations) {
  constexpr const char* op = "overExpectationCe";
  checkScores(op, "input", logits);
  checkLike(op, "aligned", aligned, "input", logits);
  checkPerClass(op, "expectations", expectations, logits.size(1));
  using Sig = OeOutputs(const at::Tensor&, const at::Tensor&, const at::Tensor&);
  auto [loss, count, conf, classCount] =
      opHandle<Sig>("semiseg::over_expectation_ce").call(logits, aligned.detach(), expectations);
  return {loss, count, conf, classCount};
}

}  // namespace semiseg::ops
