// Autograd and scalar read-back: (input, ...) for each.
#include "tensor/ops.h"

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>

#include <unordered_set>

namespace semiseg {

std::vector<at::Tensor> autogradLeaves(const at::Tensor& root) {
  std::vector<at::Tensor> leaves;
  if (!root.defined()) return leaves;
  if (!root.grad_fn()) {
    if (root.requires_grad()) leaves.push_back(root);
    return leaves;
  }
  std::vector<torch::autograd::Node*> stack{root.grad_fn().get()};
  std::unordered_set<torch::autograd::Node*> seen{stack.front()};
  while (!stack.empty()) {
    torch::autograd::Node* node = stack.back();
    stack.pop_back();
    if (auto* acc = dynamic_cast<torch::autograd::AccumulateGrad*>(node)) leaves.push_back(acc->variable);
    for (const auto& edge : node->next_edges()) {
      torch::autograd::Node* next = edge.function.get();
      if (next && seen.insert(next).second) stack.push_back(next);
    }
  }
  return leaves;
}

void registerAutogradOps(OpTable& t) {
  // (input, flag): sets requires_grad in place; returns nothing
  t["setRequiresGrad"] = [](const Args& a) -> Value {
    at::Tensor x = a.tensor(0, "input");
    bool flag = a.boolean(1, "requiresGrad");
    TORCH_CHECK(!flag || at::isFloatingType(x.scalar_type()) || at::isComplexType(x.scalar_type()),
                "requiresGrad: only floating-point tensors can require gradients, got ", x.scalar_type());
    x.set_requires_grad(flag);
    return None{};
  };
  // (input, gradient?, retainGraph?)
  t["backward"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    TORCH_CHECK(x.requires_grad(), "backward(): the tensor does not require grad and has no grad_fn");
    auto g = a.optTensor(1, "gradient");
    TORCH_CHECK(g || x.numel() == 1, "backward(): a gradient is needed for a non-scalar tensor of shape ", x.sizes());
    std::optional<bool> retain = a.isNone(2) ? std::nullopt : std::optional<bool>(a.boolean(2, "retainGraph"));
    x.backward(g.value_or(at::Tensor()), retain, false);
    return None{};
  };
  // (input): the accumulated gradient, or nothing
  t["grad"] = [](const Args& a) -> Value {
    const at::Tensor& g = a.tensor(0, "input").grad();
    if (!g.defined()) return None{};
    return g;
  };
  // (input): forgets the accumulated gradient
  t["zeroGrad"] = [](const Args& a) -> Value {
    at::Tensor x = a.tensor(0, "input");
    x.mutable_grad() = at::Tensor();
    return None{};
  };
  t["detach"] = [](const Args& a) -> Value { return a.tensor(0, "input").detach(); };
  // (input): the single value of a one-element tensor
  t["item"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    TORCH_CHECK(x.numel() == 1, "item(): the tensor must have exactly one element, got ", x.numel(), " (shape ",
                x.sizes(), ")");
    at::Scalar s = x.item();
    if (s.isBoolean()) return s.toBool();
    if (s.isIntegral(false)) return s.toLong();
    return s.toDouble();
  };
}

}  // namespace semiseg
