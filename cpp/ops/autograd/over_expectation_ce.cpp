// Autograd of over_expectation_ce: differentiable in the logits only; the backward recomputes the
// pseudo-labels from the aligned probabilities (cheaper than saving them) in one pass.
#include "ops/over_expectation_ce.h"
#include "ops/dispatch.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace semiseg::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class OverExpectationFunction : public torch::autograd::Function<OverExpectationFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& aligned,
                               const at::Tensor& expectations) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor e = expectationsAcc(logits, expectations);
    auto [stats, classStats] = opHandle<OeStatsSig>("semiseg::_over_expectation_ce_stats").call(logits, aligned, e);
    auto [loss, count, conf, classCount] = overExpectationFromStats(stats, classStats, logits.scalar_type());
    ctx->save_for_backward({logits, aligned, e, count});
    ctx->mark_non_differentiable({count, conf, classCount});
    return {loss, count, conf, classCount};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor scale = (grads[0].to(saved[3].scalar_type()) / at::clamp_min(saved[3], 1)).reshape({1});
    at::Tensor g =
        opHandle<OeBackwardSig>("semiseg::_over_expectation_ce_backward").call(saved[0], saved[1], saved[2], scale);
    return {g, at::Tensor(), at::Tensor()};
  }
};

OeOutputs overExpectationAutograd(const at::Tensor& logits, const at::Tensor& aligned, const at::Tensor& expectations) {
  auto r = OverExpectationFunction::apply(logits, aligned, expectations);
  return {r[0], r[1], r[2], r[3]};
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, Autograd, m) { m.impl("over_expectation_ce", &overExpectationAutograd); }

}  // namespace semiseg::ops
