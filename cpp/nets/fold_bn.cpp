#include "nets/fold_bn.h"

#include "nets/network.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <ATen/ops/sqrt.h>
#include <c10/core/GradMode.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace semiseg::nets {

namespace {

namespace nn = torch::nn;

// The weight and bias of a convolution module, and the axis of its output channels (0; 1 when transposed).
struct ConvParams {
  at::Tensor* weight = nullptr;
  at::Tensor* bias = nullptr;
  int64_t outAxis = 0;
  int64_t groups = 1;
};

template <typename Impl>
bool asConv(nn::Module* m, int64_t outAxis, ConvParams& out) {
  auto* c = dynamic_cast<Impl*>(m);
  if (!c) return false;
  out = {&c->weight, &c->bias, outAxis, c->options.groups()};
  return true;
}

bool convOf(nn::Module* m, ConvParams& p) {
  return asConv<nn::Conv1dImpl>(m, 0, p) || asConv<nn::Conv2dImpl>(m, 0, p) || asConv<nn::Conv3dImpl>(m, 0, p) ||
         asConv<nn::ConvTranspose1dImpl>(m, 1, p) || asConv<nn::ConvTranspose2dImpl>(m, 1, p) ||
         asConv<nn::ConvTranspose3dImpl>(m, 1, p);
}

// running mean, running var, weight, bias, eps of an eval-mode BatchNorm with statistics and affine.
struct NormParams {
  at::Tensor mean, var, weight, bias;
  double eps = 0;
};

template <typename Impl>
bool asNorm(nn::Module* m, NormParams& out) {
  auto* bn = dynamic_cast<Impl*>(m);
  if (!bn || bn->is_training() || !bn->options.track_running_stats() || !bn->options.affine()) return false;
  out = {bn->running_mean, bn->running_var, bn->weight, bn->bias, bn->options.eps()};
  return true;
}

bool normOf(nn::Module* m, NormParams& p) {
  return asNorm<nn::BatchNorm1dImpl>(m, p) || asNorm<nn::BatchNorm2dImpl>(m, p) || asNorm<nn::BatchNorm3dImpl>(m, p);
}

bool fold(const ConvParams& conv, const NormParams& bn) {
  at::Tensor& w = *conv.weight;
  at::Tensor& b = *conv.bias;
  if (!w.defined() || !b.defined() || !bn.mean.defined() || !bn.var.defined()) return false;
  const int64_t out = w.size(conv.outAxis) * (conv.outAxis == 1 ? conv.groups : 1);
  if (out != bn.mean.numel() || b.numel() != out) return false;
  const at::Tensor scale = bn.weight.to(at::kDouble) / at::sqrt(bn.var.to(at::kDouble) + bn.eps);
  const at::Tensor shift = bn.bias.to(at::kDouble) - bn.mean.to(at::kDouble) * scale;
  std::vector<int64_t> view(w.dim(), 1);
  at::Tensor wd = w.to(at::kDouble).contiguous();
  if (conv.outAxis == 0) {
    view[0] = out;
    wd = wd * scale.view(view);
  } else {
    // transposed: weight (in, out / groups, ...); output channel g * (out / groups) + j is [group g's rows, j]
    std::vector<int64_t> blocks{conv.groups, w.size(0) / conv.groups};
    std::vector<int64_t> scaleView{conv.groups, 1, w.size(1)};
    for (int64_t k = 1; k < w.dim(); ++k) blocks.push_back(w.size(k));
    for (int64_t k = 2; k < w.dim(); ++k) scaleView.push_back(1);
    wd = (wd.reshape(blocks) * scale.view(scaleView)).reshape(w.sizes());
  }
  c10::NoGradGuard noGrad;
  w.copy_(wd);
  b.copy_(b.to(at::kDouble) * scale + shift);
  return true;
}

}  // namespace

int64_t foldBatchNorm(nn::Module& root) {
  int64_t folded = 0;
  for (const auto& m : root.modules(/*include_self=*/true)) {
    auto* seq = dynamic_cast<nn::SequentialImpl*>(m.get());
    if (!seq) continue;
    for (auto it = seq->begin(); it != seq->end() && std::next(it) != seq->end(); ++it) {
      ConvParams conv;
      NormParams bn;
      if (!convOf(it->ptr().get(), conv) || !normOf(std::next(it)->ptr().get(), bn)) continue;
      if (!fold(conv, bn)) continue;
      *std::next(it) = nn::AnyModule(nn::Identity());
      ++folded;
    }
  }
  return folded;
}

}  // namespace semiseg::nets

namespace semiseg::nets {

// The folded copy and the state it was made from.
struct InferenceCache {
  std::vector<int64_t> key;
  std::shared_ptr<Network> copy;  // null: nothing folds
};

namespace {

// Identity, storage and version of every parameter and buffer, plus the layout: equal keys mean the
// copy still holds this network's weights (in-place updates bump the version, to() and loads swap or
// bump the storage).
std::vector<int64_t> stateKey(const Network& net) {
  std::vector<int64_t> key{net.channelsLast() ? 1 : 0};
  for (const auto& [name, t] : net.stateDict()) {
    key.push_back(reinterpret_cast<intptr_t>(t.unsafeGetTensorImpl()));
    key.push_back(reinterpret_cast<intptr_t>(t.data_ptr()));
    key.push_back(t.is_inference() ? -1 : static_cast<int64_t>(t._version()));
    key.push_back(static_cast<int64_t>(t.scalar_type()) * 1000 + static_cast<int64_t>(t.device().type()) * 100 +
                  t.device().index());
  }
  return key;
}

}  // namespace

std::shared_ptr<Network> Network::inferenceNetwork() {
  if (isTraining()) return nullptr;
  std::lock_guard<std::mutex> lock(*inferenceMutex_);
  std::vector<int64_t> key = stateKey(*this);
  if (inference_ && inference_->key == key) return inference_->copy;
  auto cache = std::make_shared<InferenceCache>();
  cache->key = std::move(key);
  // clone() builds fresh modules whose initialisation draws from the default CPU generator before the
  // weights are copied in: inference must not move a training run's random stream (a run stopped during
  // validation would resume with other draws), so the generator's state is put back.
  auto gen = at::detail::getDefaultCPUGenerator();
  at::Tensor rng;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    rng = gen.get_state();
  }
  std::shared_ptr<Network> copy(clone());
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }
  copy->setTraining(false);
  if (copy->foldBatchNormInPlace() > 0) {
    // oneDNN's NHWC convolutions are faster for the 2-D U-Net (benchmarks/NOTES.md); 3-D stays as it is
    if (spatialDims() == 2) copy->setChannelsLast(true);
    cache->copy = std::move(copy);
  }
  inference_ = std::move(cache);
  return inference_->copy;
}

void Network::dropInferenceNetwork() {
  std::lock_guard<std::mutex> lock(*inferenceMutex_);
  inference_.reset();
}

}  // namespace semiseg::nets
