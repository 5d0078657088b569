#include "train/grad_scaler.h"

#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <map>

namespace semiseg::train {

bool unscaleGradients(const std::vector<at::Tensor>& params, double scale) {
  TORCH_CHECK(scale > 0 && std::isfinite(scale), "GradScaler: the scale must be a finite number > 0, got ", scale);
  c10::NoGradGuard noGrad;
  // the fused op wants the gradients of one device (and one dtype) per call
  std::map<std::pair<std::string, int>, std::vector<at::Tensor>> groups;
  for (const auto& p : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    groups[{g.device().str(), static_cast<int>(g.scalar_type())}].push_back(g);
  }
  bool finite = true;
  for (auto& [key, grads] : groups) {
    const auto opts = at::TensorOptions().device(grads.front().device()).dtype(at::kFloat);
    at::Tensor found = at::zeros({1}, opts);
    at::Tensor inv = at::full({1}, 1.0 / scale, opts);
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv);
    if (found.item<float>() != 0) finite = false;
  }
  return finite;
}

}  // namespace semiseg::train
