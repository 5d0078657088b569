// SGD and Adam with parameter groups, written with ATen ops to match torch.optim's single-tensor code
// path step for step, with state that can be saved and restored by name.
#pragma once

#include "nets/network.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace semiseg::train {

// Work attached to an optimizer around its step (the distributed gradient all-reduce): afterZeroGrad()
// when gradients are cleared, beforeStep() before parameters change.
class StepHook {
 public:
  virtual ~StepHook() = default;
  virtual void afterZeroGrad() = 0;
  virtual void beforeStep() = 0;
};

struct OptimizerOptions {
  double lr = 0.01;
  double momentum = 0;  // SGD
  double dampening = 0;
  double weightDecay = 0;
  bool nesterov = false;
  double beta1 = 0.9;  // Adam
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct ParamGroup {
  std::vector<at::Tensor> params;
  OptimizerOptions options;
};

class Optimizer {
 public:
  enum class Kind { SGD, Adam };
  Optimizer(Kind kind, std::vector<ParamGroup> groups);

  Kind kind() const { return kind_; }
  void zeroGrad();  // sets gradients to none, as torch.optim does by default
  void step();
  size_t groupCount() const { return groups_.size(); }
  double lr(size_t group) const;
  void setLr(double lr);  // every group
  void setGroupLr(size_t group, double lr);
  // State by name: "<group>.<param>.momentum_buffer", ".exp_avg", ".exp_avg_sq", ".step" (absent until used).
  nets::NamedTensors state() const;
  void loadState(const nets::NamedTensors& state);
  // Every parameter, group by group.
  std::vector<at::Tensor> parameters() const;
  void setStepHook(std::shared_ptr<StepHook> hook) { hook_ = std::move(hook); }
  const std::shared_ptr<StepHook>& stepHook() const { return hook_; }

 private:
  struct ParamState {
    at::Tensor buf1, buf2;  // SGD: momentum buffer; Adam: exp_avg, exp_avg_sq
    int64_t step = 0;
  };
  Kind kind_;
  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;
  std::shared_ptr<StepHook> hook_;
};

}  // namespace semiseg::train
