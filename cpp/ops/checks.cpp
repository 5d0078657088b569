#include "ops/checks.h"

#include <ATen/ops/aminmax.h>
#include <c10/util/Exception.h>

namespace semiseg::ops {

namespace {
std::vector<int64_t> withoutClassDim(const at::Tensor& scores) {
  auto s = scores.sizes().vec();
  s.erase(s.begin() + 1);
  return s;
}
}  // namespace

void checkScores(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, "(): argument '", name, "' must be a tensor");
  TORCH_CHECK(t.dim() == 4 || t.dim() == 5, op, "(): argument '", name,
              "' must be (N, C, H, W) or (N, C, D, H, W), got shape ", t.sizes());
  const auto dt = t.scalar_type();
  // float16 / bfloat16 (mixed precision) are read in float32 and accumulated in float32
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, op, "(): argument '",
              name, "' must be float32, float64, float16 or bfloat16, got ", dt, " on ", t.device());
}

void checkLike(const char* op, const char* name, const at::Tensor& t, const char* refName, const at::Tensor& ref) {
  TORCH_CHECK(t.sizes() == ref.sizes(), op, "(): argument '", name, "' must have the shape of '", refName, "' ",
              ref.sizes(), ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, "(): argument '", name, "' must have the dtype of '", refName,
              "' (", ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), op, "(): argument '", name, "' is on ", t.device(), " but '", refName,
              "' is on ", ref.device());
}

void checkLabels(const char* op, const char* name, const at::Tensor& labels, const at::Tensor& scores,
                 bool checkRange) {
  const auto expected = withoutClassDim(scores);
  TORCH_CHECK(labels.sizes() == c10::IntArrayRef(expected), op, "(): argument '", name, "' must have shape ",
              c10::IntArrayRef(expected), ", got ", labels.sizes());
  TORCH_CHECK(at::isIntegralType(labels.scalar_type(), false), op, "(): argument '", name,
              "' must hold integer labels, got ", labels.scalar_type());
  TORCH_CHECK(labels.device() == scores.device(), op, "(): argument '", name, "' is on ", labels.device(),
              " but the scores are on ", scores.device());
  if (checkRange && labels.numel() > 0) {
    auto [lo, hi] = at::aminmax(labels);
    const int64_t l = lo.item<int64_t>(), h = hi.item<int64_t>();
    TORCH_CHECK(l >= 0 && h < scores.size(1), op, "(): argument '", name, "' must hold labels in [0, ", scores.size(1),
                "), got values in [", l, ", ", h, "]");
  }
}

void checkPixelMap(const char* op, const char* name, const at::Tensor& map, const at::Tensor& scores) {
  const auto expected = withoutClassDim(scores);
  TORCH_CHECK(map.sizes() == c10::IntArrayRef(expected), op, "(): argument '", name, "' must have shape ",
              c10::IntArrayRef(expected), ", got ", map.sizes());
  TORCH_CHECK(map.device() == scores.device(), op, "(): argument '", name, "' is on ", map.device(),
              " but the scores are on ", scores.device());
}

void checkPerClass(const char* op, const char* name, const at::Tensor& t, int64_t classes) {
  TORCH_CHECK(t.dim() == 1 && t.size(0) == classes, op, "(): argument '", name, "' must be a 1-D tensor of ", classes,
              " values (one per class), got shape ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, "(): argument '", name, "' must be floating-point, got ",
              t.scalar_type());
}

}  // namespace semiseg::ops
