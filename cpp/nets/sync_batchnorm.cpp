// SyncBatchNorm's forward and backward over the process group (dist.h). Per channel, with N the group's
// element count: mean = sum(x) / N and var = sum(x^2) / N - mean^2 from one all-reduce of float64 sums;
// the backward all-reduces sum(dy) and sum(dy * xhat) and
// gives dx = w * invstd * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N), while the weight and bias get
// this rank's sums (the gradient all-reduce averages them). With the per-rank losses averaged over equal
// local batches, the result equals one process over the concatenated batch.
#include "nets/sync_batchnorm.h"

#include "dist/dist.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/rsqrt.h>
#include <torch/csrc/autograd/custom_function.h>

namespace semiseg::nets {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> reduceDims(const at::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

std::vector<int64_t> channelShape(const at::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[1] = x.size(1);
  return shape;
}

std::shared_ptr<dist::Group> group(const char* when) {
  auto g = dist::syncBatchNormGroup();
  TORCH_CHECK(g, "SyncBatchNorm: the process group was removed during a ", when);
  return g;
}

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            at::Tensor runningMean, at::Tensor runningVar, at::Tensor batchesTracked,
                            std::optional<double> momentum, double eps) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto g = group("forward");
    // Elementwise work in the input's precision (float for half types), sums in float64 as torch's CPU
    // BatchNorm accumulates them.
    const at::Tensor xf = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
    const auto dims = reduceDims(x);
    const auto shape = channelShape(x);
    const int64_t C = x.size(1);
    // One all-reduce of [sum x, sum x^2, count]: in float64 the variance sum x^2 / n - mean^2 loses
    // nothing measurable (relative error ~1e-16 * mean^2 / var).
    at::Tensor sums = at::cat({xf.sum(dims, false, at::kDouble), xf.square().sum(dims, false, at::kDouble),
                               at::full({1}, static_cast<double>(x.numel() / C), xf.options().dtype(at::kDouble))});
    g->allreduceSum({sums});
    const double n = sums[2 * C].item<double>();
    TORCH_CHECK(n > 1, "SyncBatchNorm: expected more than 1 value per channel over the group when training, got ", n);
    at::Tensor mean = sums.narrow(0, 0, C).div(n);
    at::Tensor var = sums.narrow(0, C, C).div(n).sub_(mean.square()).clamp_min_(0);
    at::Tensor xmu = xf - mean.to(xf.scalar_type()).view(shape);
    at::Tensor invstd = at::rsqrt(var.add(eps)).to(xf.scalar_type());
    at::Tensor y = xmu * invstd.view(shape);
    if (weight.defined()) y = y * weight.view(shape) + bias.view(shape);
    {
      at::NoGradGuard noGrad;
      batchesTracked.add_(1);
      const double m = momentum ? *momentum : 1.0 / batchesTracked.item<double>();
      runningMean.mul_(1 - m).add_(mean.to(runningMean.scalar_type()), m);
      runningVar.mul_(1 - m).add_(var.mul(n / (n - 1)).to(runningVar.scalar_type()), m);
    }
    ctx->save_for_backward({xmu, invstd, weight});
    ctx->saved_data["n"] = n;
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    return y.to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& xmu = saved[0];
    const at::Tensor& invstd = saved[1];
    const at::Tensor& weight = saved[2];
    const double n = ctx->saved_data["n"].toDouble();
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const auto dims = reduceDims(xmu);
    const auto shape = channelShape(xmu);
    const int64_t C = xmu.size(1);
    const at::Tensor dy = grads[0].to(xmu.scalar_type());
    const at::Tensor xhat = xmu * invstd.view(shape);
    at::Tensor sumDy = dy.sum(dims, false, at::kDouble);
    at::Tensor sumDyXhat = dy.mul(xhat).sum(dims, false, at::kDouble);
    at::Tensor gw, gb;
    if (weight.defined()) {
      gw = sumDyXhat.to(weight.scalar_type());
      gb = sumDy.to(weight.scalar_type());
    }
    at::Tensor both = at::cat({sumDy, sumDyXhat});
    group("backward")->allreduceSum({both});
    at::Tensor meanDy = both.narrow(0, 0, C).div(n).to(dy.scalar_type()).view(shape);
    at::Tensor meanDyXhat = both.narrow(0, C, C).div(n).to(dy.scalar_type()).view(shape);
    at::Tensor scale = weight.defined() ? invstd.mul(weight.to(invstd.scalar_type())) : invstd;
    at::Tensor dx = (dy - meanDy - xhat * meanDyXhat) * scale.view(shape);
    return {dx.to(dtype), gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool syncBatchNormActive() {
  auto g = dist::syncBatchNormGroup();
  return g && g->size() > 1;
}

at::Tensor syncBatchNormForward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                at::Tensor& runningMean, at::Tensor& runningVar, at::Tensor& batchesTracked,
                                std::optional<double> momentum, double eps) {
  return SyncBatchNormFunction::apply(x, weight, bias, runningMean, runningVar, batchesTracked, momentum, eps);
}

}  // namespace semiseg::nets
