// ModuleNetwork<Derived, Impl, Options>: the Network interface implemented once over a torch::nn::Module
// (Derived adds kind(), sizes and optionsJson()). Included only by the network .cpp files (torch::nn).
#pragma once

#include "nets/fold_bn.h"
#include "nets/network.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <sstream>

namespace semiseg::nets {

template <typename Derived, typename Impl, typename Options>
class ModuleNetwork : public Network {
 public:
  explicit ModuleNetwork(const Options& options) : options_(options), module_(std::make_shared<Impl>(options)) {}

  at::Tensor forward(const at::Tensor& x) override {
    checkInput(x, "forward");
    return module_->forward(prepareInput(x));
  }
  std::vector<at::Tensor> forwardFeatures(const at::Tensor& x) override {
    checkInput(x, "forwardFeatures");
    return module_->forwardFeatures(prepareInput(x));
  }
  void setTraining(bool on) override {
    if (on) dropInferenceNetwork();
    module_->train(on);
  }
  bool isTraining() const override { return module_->is_training(); }
  NamedTensors namedParameters() const override { return flatten(module_->named_parameters(true)); }
  NamedTensors namedBuffers() const override { return flatten(module_->named_buffers(true)); }
  NamedTensors stateDict() const override {
    NamedTensors out;
    for (const auto& m : module_->named_modules("", true)) {
      const std::string prefix = m.key().empty() ? "" : m.key() + ".";
      for (const auto& p : m.value()->named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
      for (const auto& b : m.value()->named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
    }
    return out;
  }
  void to(const c10::Device& device, std::optional<c10::ScalarType> dtype) override {
    if (dtype)
      module_->to(device, *dtype);
    else
      module_->to(device);
  }
  std::unique_ptr<Network> clone() const override {
    auto copy = std::make_unique<Derived>(options_);
    copy->to(device(), dtype());
    loadState(*copy, stateDict(), true);
    copy->setTraining(isTraining());
    copy->setChannelsLast(channelsLast());
    return copy;
  }
  int64_t inChannels() const override { return options_.inChannels; }
  int64_t outChannels() const override { return options_.outChannels; }

 protected:
  int64_t foldBatchNormInPlace() override { return foldBatchNorm(*module_); }
  static NamedTensors flatten(const torch::OrderedDict<std::string, at::Tensor>& dict) {
    NamedTensors out;
    out.reserve(dict.size());
    for (const auto& item : dict) out.emplace_back(item.key(), item.value());
    return out;
  }
  Options options_;
  std::shared_ptr<Impl> module_;
};

}  // namespace semiseg::nets
