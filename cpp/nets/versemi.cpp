// VerSemi's backbone + controller + dynamic head as one Network (see versemi.h).
#include "nets/versemi.h"

#include <ATen/ops/batch_norm.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv3d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>
#include <torch/nn/module.h>

#include <cmath>
#include <sstream>
#include <vector>

namespace semiseg::nets {

namespace {

namespace nn = torch::nn;

constexpr int64_t kHidden = 8;
// weights of the three dynamic layers (8 -> 8, 8 -> 8, 8 -> 2), then their biases
constexpr int64_t kLayers[3][2] = {{8, 8}, {8, 8}, {8, 2}};
constexpr int64_t kDynamicParams = 8 * 8 + 8 * 8 + 8 * 2 + 8 + 8 + 2;  // 162
const std::vector<int64_t> kOnes{1, 1, 1}, kZeros{0, 0, 0};

// BatchNorm over dim 1 with running statistics (momentum 0.1, eps 1e-5) and no num_batches_tracked,
// as the TypeScript head's BatchNorm.
struct NormImpl : nn::Module {
  explicit NormImpl(int64_t c) {
    weight = register_parameter("weight", at::ones({c}));
    bias = register_parameter("bias", at::zeros({c}));
    running_mean = register_buffer("running_mean", at::zeros({c}));
    running_var = register_buffer("running_var", at::ones({c}));
  }
  at::Tensor forward(const at::Tensor& x) {
    return at::batch_norm(x, weight, bias, running_mean, running_var, is_training(), 0.1, 1e-5, false);
  }
  at::Tensor weight, bias, running_mean, running_var;
};
TORCH_MODULE(Norm);

// A 1x1x1 Conv3d's weight and bias with PyTorch's default initialisation (uniform in +-1/sqrt(fan_in)).
struct PointwiseImpl : nn::Module {
  PointwiseImpl(int64_t cin, int64_t cout) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(cin));
    weight = register_parameter("weight", at::empty({cout, cin, 1, 1, 1}).uniform_(-bound, bound));
    bias = register_parameter("bias", at::empty({cout}).uniform_(-bound, bound));
  }
  at::Tensor forward(const at::Tensor& x) { return at::conv3d(x, weight, bias, kOnes, kZeros, kOnes, 1); }
  at::Tensor weight, bias;
};
TORCH_MODULE(Pointwise);

struct StageImpl : nn::Module {  // "controller" and "pre": a norm and a 1x1 conv
  StageImpl(int64_t norm, int64_t cin, int64_t cout) {
    bn = register_module("bn", Norm(norm));
    conv = register_module("conv", Pointwise(cin, cout));
  }
  Norm bn{nullptr};
  Pointwise conv{nullptr};
};
TORCH_MODULE(Stage);

struct HeadImpl : nn::Module {
  HeadImpl(int64_t tasks, int64_t bottleneck, int64_t feature) : tasks(tasks) {
    // the TypeScript head's order: controller.bn, pre.bn, controller.conv, pre.conv (values only; names fix the keys)
    controller = register_module("controller", Stage(bottleneck, bottleneck + tasks + 1, kDynamicParams));
    pre = register_module("pre", Stage(feature, feature, kHidden));
  }

  // logits (B, 2, ...) of the last decoder feature under `task`, with the controller on the bottleneck
  at::Tensor forward(const at::Tensor& bottleneck, const at::Tensor& feature, int64_t task) {
    const int64_t B = bottleneck.size(0);
    at::Tensor pooled = controller->bn->forward(bottleneck).relu().mean(std::vector<int64_t>{2, 3, 4}, true);
    at::Tensor code = at::zeros({B, tasks + 1, 1, 1, 1}, pooled.options());
    code.select(1, task).fill_(1);
    at::Tensor params = controller->conv->forward(at::cat({pooled, code}, 1)).reshape({B, kDynamicParams});
    at::Tensor x = pre->conv->forward(pre->bn->forward(feature).relu());
    std::vector<int64_t> shape{1, B * kHidden};
    for (int64_t d = 2; d < x.dim(); ++d) shape.push_back(x.size(d));
    x = x.reshape(shape);
    int64_t wAt = 0;
    int64_t bAt = 8 * 8 + 8 * 8 + 8 * 2;
    for (int i = 0; i < 3; ++i) {
      const int64_t cin = kLayers[i][0], cout = kLayers[i][1];
      at::Tensor w = params.narrow(1, wAt, cin * cout).reshape({B * cout, cin, 1, 1, 1});
      at::Tensor b = params.narrow(1, bAt, cout).reshape({B * cout});
      wAt += cin * cout;
      bAt += cout;
      x = at::conv3d(x, w, b, kOnes, kZeros, kOnes, B);
      if (i < 2) x = x.relu();
    }
    shape[0] = B;
    shape[1] = 2;
    return x.reshape(shape);
  }

  int64_t tasks;
  Stage controller{nullptr}, pre{nullptr};
};
TORCH_MODULE(Head);

NamedTensors prefixed(const std::string& prefix, const torch::OrderedDict<std::string, at::Tensor>& dict) {
  NamedTensors out;
  for (const auto& item : dict) out.emplace_back(prefix + item.key(), item.value());
  return out;
}

class VerSemiNetwork : public Network, public TaskPrompted {
 public:
  explicit VerSemiNetwork(const VerSemiOptions& o)
      : options_(o), backbone_(makeVNet3D(o.backbone)), head_(o.tasks, 16 * o.backbone.nFilters, o.backbone.nFilters) {}

  std::string kind() const override { return "VerSemi"; }
  int64_t spatialDims() const override { return 3; }
  int64_t inChannels() const override { return options_.backbone.inChannels; }
  int64_t outChannels() const override { return 2; }
  int64_t sizeMultiple() const override { return 16; }

  at::Tensor forward(const at::Tensor& x) override { return forwardFeatures(x).front(); }
  // the head's logits under the current task, then the backbone's x1..x9 (x5 after dropout)
  std::vector<at::Tensor> forwardFeatures(const at::Tensor& x) override {
    checkInput(x, "forwardFeatures");
    std::vector<at::Tensor> out = backbone_->forwardFeatures(prepareInput(x));
    out[0] = head_->forward(out[5], out[9], task_);
    return out;
  }

  void setTraining(bool on) override {
    backbone_->setTraining(on);
    head_->train(on);
  }
  bool isTraining() const override { return backbone_->isTraining(); }
  NamedTensors namedParameters() const override {
    return join(backbone_->namedParameters(), head_->named_parameters(true));
  }
  NamedTensors namedBuffers() const override { return join(backbone_->namedBuffers(), head_->named_buffers(true)); }
  NamedTensors stateDict() const override {
    NamedTensors out = backbone_->stateDict();
    for (const auto& m : head_->named_modules("head", true)) {
      const std::string prefix = m.key() + ".";
      for (const auto& p : m.value()->named_parameters(false)) out.emplace_back(prefix + p.key(), p.value());
      for (const auto& b : m.value()->named_buffers(false)) out.emplace_back(prefix + b.key(), b.value());
    }
    return out;
  }
  void to(const c10::Device& device, std::optional<c10::ScalarType> dtype) override {
    backbone_->to(device, dtype);
    if (dtype)
      head_->to(device, *dtype);
    else
      head_->to(device);
  }
  std::unique_ptr<Network> clone() const override {
    auto copy = std::make_unique<VerSemiNetwork>(options_);
    copy->to(device(), dtype());
    loadState(*copy, stateDict(), true);
    copy->setTraining(isTraining());
    copy->setChannelsLast(channelsLast());
    copy->task_ = task_;
    return copy;
  }
  std::string optionsJson() const override {
    // the backbone's options (as a VNet3D checkpoint records them) and the number of tasks
    std::string json = backbone_->optionsJson();
    std::ostringstream os;
    os << json.substr(0, json.size() - 1) << ",\"tasks\":" << options_.tasks << "}";
    return os.str();
  }

  int64_t tasks() const override { return options_.tasks; }
  int64_t task() const override { return task_; }
  void setTask(int64_t task) override {
    TORCH_CHECK(task >= 0 && task <= options_.tasks, "VerSemi.setTask(): task ", task, " is outside [0, ",
                options_.tasks, "] (", options_.tasks, " = the synthetic task)");
    task_ = task;
  }

 private:
  static NamedTensors join(NamedTensors a, const torch::OrderedDict<std::string, at::Tensor>& head) {
    for (auto& item : prefixed("head.", head)) a.push_back(std::move(item));
    return a;
  }

  VerSemiOptions options_;
  std::unique_ptr<Network> backbone_;
  Head head_;
  int64_t task_ = 0;
};

}  // namespace

std::unique_ptr<Network> makeVerSemi(const VerSemiOptions& o) {
  TORCH_CHECK(o.tasks >= 1, "VerSemi(): option 'tasks' must be >= 1, got ", o.tasks);
  TORCH_CHECK(o.backbone.outChannels == 2, "VerSemi(): every task is binary, so 'outChannels' must be 2, got ",
              o.backbone.outChannels);
  return std::make_unique<VerSemiNetwork>(o);
}

}  // namespace semiseg::nets
