// Autograd of bidirectional_copy_paste: the images' gradients are routed back by
// bidirectional_copy_paste_backward; labels, targets and weights carry no gradient.
#include "ops/dispatch.h"

#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace semiseg::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Out6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using ForwardSig = Out6(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                        double, int64_t);
using BackwardSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                                       int64_t);

class CopyPasteFunction : public torch::autograd::Function<CopyPasteFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& labeled, const at::Tensor& labels,
                               const at::Tensor& unlabeled, const at::Tensor& pseudo, const at::Tensor& box,
                               double alpha, int64_t pairing) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [mi, ti, wi, mo, to, wo] = opHandle<ForwardSig>("semiseg::bidirectional_copy_paste")
                                        .call(labeled, labels, unlabeled, pseudo, box, alpha, pairing);
    ctx->saved_data["box"] = box;
    ctx->saved_data["pairing"] = pairing;
    ctx->saved_data["batch"] = labeled.size(0);
    ctx->mark_non_differentiable({ti, wi, to, wo});
    return {mi, ti, wi, mo, to, wo};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor gi = grads[0], go = grads[3];
    if (!gi.defined()) gi = at::zeros_like(go);
    if (!go.defined()) go = at::zeros_like(gi);
    auto [gl, gu] = opHandle<BackwardSig>("semiseg::bidirectional_copy_paste_backward")
                        .call(gi, go, ctx->saved_data["box"].toTensor(), ctx->saved_data["pairing"].toInt(),
                              ctx->saved_data["batch"].toInt());
    return {gl, at::Tensor(), gu, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

Out6 copyPasteAutograd(const at::Tensor& labeled, const at::Tensor& labels, const at::Tensor& unlabeled,
                       const at::Tensor& pseudo, const at::Tensor& box, double alpha, int64_t pairing) {
  auto r = CopyPasteFunction::apply(labeled, labels, unlabeled, pseudo, box, alpha, pairing);
  return {r[0], r[1], r[2], r[3], r[4], r[5]};
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, Autograd, m) { m.impl("bidirectional_copy_paste", &copyPasteAutograd); }

}  // namespace semiseg::ops
