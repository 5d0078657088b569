// Network: the interface the binding and the trainers use for the segmentation networks. It hides
// torch::nn (heavy headers) behind plain ATen types, so only cpp/nets/*.cpp pay for them.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace semiseg::nets {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct UNet2DOptions {
  int64_t inChannels = 1;
  int64_t outChannels = 4;
  std::vector<int64_t> features{16, 32, 64, 128, 256};
  std::vector<double> dropout{0.05, 0.1, 0.2, 0.3, 0.5};
};

struct VNet3DOptions {
  int64_t inChannels = 1;
  int64_t outChannels = 2;
  int64_t nFilters = 16;
  std::string normalization = "batchnorm";  // batchnorm | instancenorm | groupnorm | none
  bool hasDropout = true;
  // false: VerSemi's backbone (spec 4): no block_nine and no x8_up + x1 skip; the last decoder feature
  // is x8_up itself.
  bool lastBlock = true;
};

class Network {
 public:
  virtual ~Network() = default;
  virtual std::string kind() const = 0;  // "UNet2D" | "VNet3D"
  virtual int64_t spatialDims() const = 0;
  virtual int64_t inChannels() const = 0;
  virtual int64_t outChannels() const = 0;
  // The multiple every spatial size must be (the product of the downsampling strides).
  virtual int64_t sizeMultiple() const = 0;

  // Logits (N, outChannels, ...spatial). Checks the input first (checkInput).
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // Logits followed by intermediate features. UNet2D: encoder x0..x4, then the decoder outputs of
  // up1..up4. VNet3D: encoder x1..x5 (x5 after dropout), then decoder x6..x9 (x9 before dropout).
  virtual std::vector<at::Tensor> forwardFeatures(const at::Tensor& x) = 0;

  virtual void setTraining(bool on) = 0;
  virtual bool isTraining() const = 0;
  virtual NamedTensors namedParameters() const = 0;
  virtual NamedTensors namedBuffers() const = 0;
  virtual void to(const c10::Device& device, std::optional<c10::ScalarType> dtype) = 0;
  virtual std::unique_ptr<Network> clone() const = 0;  // deep copy: weights, buffers, mode, device
  virtual std::string optionsJson() const = 0;

  // Channels-last memory format for convolution weights and inputs (often faster on CPU and CUDA).
  void setChannelsLast(bool on);
  bool channelsLast() const { return channelsLast_; }
  // The input as the network wants it (memory format).
  at::Tensor prepareInput(const at::Tensor& x) const;

  c10::Device device() const;
  c10::ScalarType dtype() const;
  int64_t parameterCount() const;
  // Parameters and buffers in PyTorch's state_dict order: module by module (pre-order), each module's
  // own parameters, then its own buffers.
  virtual NamedTensors stateDict() const = 0;
  // Input checks shared by every network: rank, channels, dtype, device, sizes.
  void checkInput(const at::Tensor& x, const char* fn) const;

  // Inference (nets/fold_bn.cpp): an eval-mode copy with every BatchNorm folded into the convolution
  // before it, channels-last for 2-D networks, built on first use and rebuilt when a weight, buffer,
  // device, dtype or layout of this network changed (tensor version counters); null when this network
  // is training or has nothing to fold. Thread-safe.
  std::shared_ptr<Network> inferenceNetwork();
  // Frees that copy (train() calls it).
  void dropInferenceNetwork();

 protected:
  // Folds BatchNorm layers into the preceding convolutions of this (copy's) module tree; how many.
  virtual int64_t foldBatchNormInPlace() { return 0; }

 private:
  bool channelsLast_ = false;
  std::shared_ptr<struct InferenceCache> inference_;  // created on first use (fold_bn.cpp)
  std::shared_ptr<std::mutex> inferenceMutex_ = std::make_shared<std::mutex>();
};

// Autocast (mixed precision) for the current thread while alive: float16 / bfloat16 on CUDA, bfloat16 on
// CPU; an absent dtype does nothing. Restores the previous state and clears the cast cache on exit.
class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device, std::optional<c10::ScalarType> dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false;
  bool prevEnabled_ = false;
  c10::ScalarType prevDtype_ = c10::ScalarType::Undefined;
};

std::unique_ptr<Network> makeUNet2D(const UNet2DOptions& options);
std::unique_ptr<Network> makeVNet3D(const VNet3DOptions& options);

// What loadState found: keys the network has but the dict lacks, keys the dict has but the network lacks,
// and keys present in both with different shapes ("key: expected [..], got [..]").
struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
  bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

// Copies the dict's tensors into the network's parameters and buffers (converting dtype and device).
// Mis-shaped keys always fail; missing or unexpected keys fail when `strict`. Nothing is copied when
// the call fails, so a bad dict never leaves a half-loaded network.
LoadReport loadState(Network& net, const NamedTensors& dict, bool strict);

// Mean Teacher update: teacher = alpha * teacher + (1 - alpha) * student, over parameters, and over
// buffers too when includeBuffers (integer buffers are averaged in float and truncated, as
// load_state_dict does with the published code's averaged state dict).
void emaUpdate(Network& teacher, const Network& student, double alpha, bool includeBuffers);

}  // namespace semiseg::nets
