// BatchNorm2d / BatchNorm3d that normalise with the statistics of the whole process group's batch while
// dist::syncBatchNormGroup() is set and the layer is in training mode (torch.nn.SyncBatchNorm, on CPU
// too); otherwise exactly torch::nn's BatchNorm. Parameter and buffer names are torch::nn's.
#pragma once

#include <torch/nn/modules/batchnorm.h>

namespace semiseg::nets {

// The synchronised training-mode forward (autograd: the backward all-reduces its two sums as well).
at::Tensor syncBatchNormForward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                at::Tensor& runningMean, at::Tensor& runningVar, at::Tensor& batchesTracked,
                                std::optional<double> momentum, double eps);
bool syncBatchNormActive();

struct SyncBatchNorm2dImpl : torch::nn::BatchNorm2dImpl {
  using torch::nn::BatchNorm2dImpl::BatchNorm2dImpl;
  at::Tensor forward(const at::Tensor& x) {
    if (!is_training() || !syncBatchNormActive()) return torch::nn::BatchNorm2dImpl::forward(x);
    _check_input_dim(x);
    return syncBatchNormForward(x, weight, bias, running_mean, running_var, num_batches_tracked, options.momentum(),
                                options.eps());
  }
};
TORCH_MODULE(SyncBatchNorm2d);

struct SyncBatchNorm3dImpl : torch::nn::BatchNorm3dImpl {
  using torch::nn::BatchNorm3dImpl::BatchNorm3dImpl;
  at::Tensor forward(const at::Tensor& x) {
    if (!is_training() || !syncBatchNormActive()) return torch::nn::BatchNorm3dImpl::forward(x);
    _check_input_dim(x);
    return syncBatchNormForward(x, weight, bias, running_mean, running_var, num_batches_tracked, options.momentum(),
                                options.eps());
  }
};
TORCH_MODULE(SyncBatchNorm3d);

}  // namespace semiseg::nets
