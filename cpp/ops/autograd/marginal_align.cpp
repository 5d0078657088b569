// Autograd of marginal_align: differentiable in probs; the marginals are constants (Co-DA).
#include "ops/dispatch.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace semiseg::ops {

at::Tensor marginalAlignRatio(const at::Tensor& probs, const at::Tensor& piL, const at::Tensor& piU, double eps);

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Sig2 = at::Tensor(const at::Tensor&, const at::Tensor&);
using Sig3 = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&);

class MarginalAlignFunction : public torch::autograd::Function<MarginalAlignFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& probs, const at::Tensor& piL, const at::Tensor& piU,
                            double eps) {
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor ratio = marginalAlignRatio(probs, piL.detach(), piU.detach(), eps);
    ctx->save_for_backward({probs, ratio});
    return opHandle<Sig2>("semiseg::_marginal_align").call(probs, ratio);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor g = opHandle<Sig3>("semiseg::_marginal_align_backward").call(grads[0], saved[0], saved[1]);
    return {g, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor marginalAlignAutograd(const at::Tensor& probs, const at::Tensor& piL, const at::Tensor& piU, double eps) {
  return MarginalAlignFunction::apply(probs, piL, piU, eps);
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, Autograd, m) { m.impl("marginal_align", &marginalAlignAutograd); }

}  // namespace semiseg::ops
