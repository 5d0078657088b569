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

// torch::nn's BatchNorm{2,3}dImpl with the synchronised training-mode forward.
template <typename Base>
struct SyncBatchNormImpl : Base {
  using Base::Base;
  at::Tensor forward(const at::Tensor& x) {
    if (!this->is_training() || !syncBatchNormActive()) return Base::forward(x);
    this->_check_input_dim(x);
    return syncBatchNormForward(x, this->weight, this->bias, this->running_mean, this->running_var,
                                this->num_batches_tracked, this->options.momentum(), this->options.eps());
  }
};
using SyncBatchNorm2dImpl = SyncBatchNormImpl<torch::nn::BatchNorm2dImpl>;
using SyncBatchNorm3dImpl = SyncBatchNormImpl<torch::nn::BatchNorm3dImpl>;
TORCH_MODULE(SyncBatchNorm2d);
TORCH_MODULE(SyncBatchNorm3d);

}  // namespace semiseg::nets
