#include "train/optimizer.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <unordered_map>

namespace semiseg::train {

Optimizer::Optimizer(Kind kind, std::vector<ParamGroup> groups) : kind_(kind), groups_(std::move(groups)) {
  const char* name = kind == Kind::SGD ? "SGD" : "Adam";
  TORCH_CHECK(!groups_.empty(), name, "(): there must be at least one parameter group");
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& o = groups_[g].options;
    TORCH_CHECK(!groups_[g].params.empty(), name, "(): parameter group ", g, " holds no parameters");
    TORCH_CHECK(o.lr >= 0, name, "(): option 'lr' must be >= 0, got ", o.lr);
    TORCH_CHECK(o.weightDecay >= 0, name, "(): option 'weightDecay' must be >= 0, got ", o.weightDecay);
    TORCH_CHECK(o.momentum >= 0, name, "(): option 'momentum' must be >= 0, got ", o.momentum);
    TORCH_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), name,
                "(): Nesterov momentum needs momentum > 0 and dampening 0");
    TORCH_CHECK(o.beta1 >= 0 && o.beta1 < 1, name, "(): option 'beta1' must be in [0, 1), got ", o.beta1);
    TORCH_CHECK(o.beta2 >= 0 && o.beta2 < 1, name, "(): option 'beta2' must be in [0, 1), got ", o.beta2);
    TORCH_CHECK(o.eps >= 0, name, "(): option 'eps' must be >= 0, got ", o.eps);
    for (const auto& p : groups_[g].params)
      TORCH_CHECK(p.defined() && p.is_leaf() && p.requires_grad(), name,
                  "(): every parameter must be a leaf tensor that requires grad");
    state_.emplace_back(groups_[g].params.size());
  }
  std::unordered_map<const void*, size_t> seen;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (const auto& p : groups_[g].params) {
      auto [it, fresh] = seen.emplace(p.unsafeGetTensorImpl(), g);
      TORCH_CHECK(fresh, name, "(): a parameter appears twice (in groups ", it->second, " and ", g,
                  "); it would be updated twice per step");
    }
}

void Optimizer::zeroGrad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.mutable_grad() = at::Tensor();
  if (hook_) hook_->afterZeroGrad();
}

std::vector<at::Tensor> Optimizer::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

double Optimizer::lr(size_t group) const {
  TORCH_CHECK(group < groups_.size(), "optimizer: no parameter group ", group);
  return groups_[group].options.lr;
}

void Optimizer::setLr(double lr) {
  TORCH_CHECK(lr >= 0 && std::isfinite(lr), "setLr(): argument 'lr' must be a finite number >= 0, got ", lr);
  for (auto& g : groups_) g.options.lr = lr;
}

void Optimizer::setGroupLr(size_t group, double lr) {
  TORCH_CHECK(group < groups_.size(), "setGroupLr(): no parameter group ", group);
  TORCH_CHECK(lr >= 0 && std::isfinite(lr), "setGroupLr(): argument 'lr' must be a finite number >= 0, got ", lr);
  groups_[group].options.lr = lr;
}

void Optimizer::step() {
  if (hook_) hook_->beforeStep();
  c10::NoGradGuard noGrad;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const OptimizerOptions& o = groups_[g].options;
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      at::Tensor& p = groups_[g].params[i];
      const at::Tensor& grad0 = p.grad();
      if (!grad0.defined()) continue;
      ParamState& s = state_[g][i];
      at::Tensor grad = o.weightDecay != 0 ? grad0.add(p, o.weightDecay) : grad0;
      if (kind_ == Kind::SGD) {
        if (o.momentum != 0) {
          if (!s.buf1.defined()) {
            s.buf1 = grad.clone().detach();
          } else {
            s.buf1.mul_(o.momentum).add_(grad, 1 - o.dampening);
          }
          grad = o.nesterov ? grad.add(s.buf1, o.momentum) : s.buf1;
        }
        p.add_(grad, -o.lr);
      } else {
        if (!s.buf1.defined()) {
          s.buf1 = at::zeros_like(p, at::MemoryFormat::Preserve);
          s.buf2 = at::zeros_like(p, at::MemoryFormat::Preserve);
        }
        s.step += 1;
        s.buf1.lerp_(grad, 1 - o.beta1);
        s.buf2.mul_(o.beta2).addcmul_(grad, grad, 1 - o.beta2);
        const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(s.step));
        const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(s.step));
        at::Tensor denom = s.buf2.sqrt().div(std::sqrt(bc2)).add_(o.eps);
        p.addcdiv_(s.buf1, denom, -o.lr / bc1);
      }
    }
  }
}

nets::NamedTensors Optimizer::state() const {
  nets::NamedTensors out;
  const char* first = kind_ == Kind::SGD ? "momentum_buffer" : "exp_avg";
  for (size_t g = 0; g < state_.size(); ++g)
    for (size_t i = 0; i < state_[g].size(); ++i) {
      const auto& s = state_[g][i];
      const std::string prefix = std::to_string(g) + "." + std::to_string(i) + ".";
      if (s.buf1.defined()) out.emplace_back(prefix + first, s.buf1);
      if (s.buf2.defined()) out.emplace_back(prefix + "exp_avg_sq", s.buf2);
      if (kind_ == Kind::Adam && s.step > 0) out.emplace_back(prefix + "step", at::full({}, s.step, at::kLong));
    }
  return out;
}

void Optimizer::loadState(const nets::NamedTensors& state) {
  std::vector<std::vector<ParamState>> next(state_.size());
  for (size_t g = 0; g < state_.size(); ++g) next[g].resize(state_[g].size());
  for (const auto& [key, t] : state) {
    size_t g = 0, i = 0;
    char field[32] = {0};
    TORCH_CHECK(std::sscanf(key.c_str(), "%zu.%zu.%31s", &g, &i, field) == 3, "optimizer state: bad key '", key, "'");
    TORCH_CHECK(g < next.size() && i < next[g].size(), "optimizer state: key '", key,
                "' names a parameter this optimizer does not have");
    const at::Tensor& p = groups_[g].params[i];
    const std::string f(field);
    const bool adam = kind_ == Kind::Adam;
    TORCH_CHECK(adam ? (f == "exp_avg" || f == "exp_avg_sq" || f == "step") : f == "momentum_buffer",
                "optimizer state: '", key, "' is not ", adam ? "Adam" : "SGD",
                " state (state of the other optimizer?)");
    if (f == "step") {
      next[g][i].step = t.item<int64_t>();
      continue;
    }
    TORCH_CHECK(t.sizes() == p.sizes(), "optimizer state: '", key, "' has shape ", t.sizes(), " but its parameter has ",
                p.sizes());
    at::Tensor v = t.to(p.device(), p.scalar_type()).clone();
    if (f == "exp_avg_sq")
      next[g][i].buf2 = v;
    else
      next[g][i].buf1 = v;  // momentum_buffer or exp_avg
  }
  // Adam needs all of its state per parameter or none of it (partial state gives wrong updates).
  for (size_t g = 0; g < next.size(); ++g)
    for (size_t i = 0; i < next[g].size(); ++i) {
      const auto& s = next[g][i];
      if (kind_ == Kind::Adam) {
        const bool any = s.buf1.defined() || s.buf2.defined() || s.step > 0;
        TORCH_CHECK(!any || (s.buf1.defined() && s.buf2.defined() && s.step > 0), "optimizer state: parameter ", g, ".",
                    i, " has partial Adam state (exp_avg, exp_avg_sq and step go together)");
      }
    }
  state_ = std::move(next);
}

}  // namespace semiseg::train
