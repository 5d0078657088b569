// Linear algebra, convolution, resampling and conversion ops.
#include "tensor/ops.h"
#include "tensor/options.h"

#include <ATen/ops/_upsample_nearest_exact1d.h>
#include <ATen/ops/_upsample_nearest_exact2d.h>
#include <ATen/ops/_upsample_nearest_exact3d.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/conv3d.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/upsample_linear1d.h>
#include <ATen/ops/upsample_nearest1d.h>
#include <ATen/ops/upsample_nearest2d.h>
#include <ATen/ops/upsample_nearest3d.h>
#include <ATen/ops/upsample_trilinear3d.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace semiseg {

namespace {

using OptD = std::optional<double>;

// (input, size?, scaleFactor?, mode, alignCorners?): torch.nn.functional.interpolate with
// recompute_scale_factor=None, i.e. a given scale factor is passed to the kernel as PyTorch does.
Value interpolate(const Args& a) {
  const at::Tensor& x = a.tensor(0, "input");
  const int64_t spatial = x.dim() - 2;
  TORCH_CHECK(spatial >= 1 && spatial <= 3, "interpolate(): argument 'input' must be 3-D, 4-D or 5-D (N, C, ...), got ",
              x.dim(), "-D with shape ", x.sizes());
  auto size = a.optInts(1, "size");
  std::vector<OptD> scales(spatial);
  IntList out(spatial);
  const std::string& mode = a.string(3, "mode");
  TORCH_CHECK(size.has_value() != !a.isNone(2), "interpolate(): give exactly one of 'size' and 'scaleFactor'");
  if (size) {
    if (size->size() == 1) size = IntList(spatial, (*size)[0]);
    TORCH_CHECK(static_cast<int64_t>(size->size()) == spatial, "interpolate(): argument 'size' must have ", spatial,
                " entries for a ", x.dim(), "-D input, got ", size->size());
    for (int64_t d = 0; d < spatial; ++d) {
      TORCH_CHECK((*size)[d] > 0, "interpolate(): argument 'size' must be > 0, got ", (*size)[d]);
      out[d] = (*size)[d];
    }
  } else {
    double f = a.f64(2, "scaleFactor");
    TORCH_CHECK(std::isfinite(f) && f > 0, "interpolate(): argument 'scaleFactor' must be > 0, got ", f);
    for (int64_t d = 0; d < spatial; ++d) {
      out[d] = static_cast<int64_t>(std::floor(static_cast<double>(x.size(d + 2)) * f));
      scales[d] = f;
    }
  }
  const bool linear = mode == "linear" || mode == "bilinear" || mode == "trilinear";
  TORCH_CHECK(linear || a.isNone(4), "interpolate(): 'alignCorners' applies only to linear modes, not '", mode, "'");
  const bool align = linear && !a.isNone(4) && a.boolean(4, "alignCorners");
  if (mode == "nearest") {
    if (spatial == 1) return at::upsample_nearest1d(x, out, scales[0]);
    if (spatial == 2) return at::upsample_nearest2d(x, out, scales[0], scales[1]);
    return at::upsample_nearest3d(x, out, scales[0], scales[1], scales[2]);
  }
  if (mode == "nearest-exact") {
    if (spatial == 1) return at::_upsample_nearest_exact1d(x, out, scales[0]);
    if (spatial == 2) return at::_upsample_nearest_exact2d(x, out, scales[0], scales[1]);
    return at::_upsample_nearest_exact3d(x, out, scales[0], scales[1], scales[2]);
  }
  const char* want = spatial == 1 ? "linear" : spatial == 2 ? "bilinear" : "trilinear";
  TORCH_CHECK(mode == want, "interpolate(): argument 'mode' must be 'nearest', 'nearest-exact' or '", want, "' for a ",
              x.dim(), "-D input, got '", mode, "'");
  if (spatial == 1) return at::upsample_linear1d(x, out, align, scales[0]);
  if (spatial == 2) return at::upsample_bilinear2d(x, out, align, scales[0], scales[1]);
  return at::upsample_trilinear3d(x, out, align, scales[0], scales[1], scales[2]);
}

}  // namespace

void registerNnOps(OpTable& t) {
  // (input, other)
  t["matmul"] = [](const Args& a) -> Value { return at::matmul(a.tensor(0, "input"), a.tensor(1, "other")); };
  // (input, weight, bias?, stride, padding, dilation, groups)
  t["conv"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    const at::Tensor& w = a.tensor(1, "weight");
    auto b = a.optTensor(2, "bias");
    IntList stride = a.isNone(3) ? IntList{1} : a.ints(3, "stride");
    IntList padding = a.isNone(4) ? IntList{0} : a.ints(4, "padding");
    IntList dilation = a.isNone(5) ? IntList{1} : a.ints(5, "dilation");
    int64_t groups = a.isNone(6) ? 1 : a.int64(6, "groups");
    TORCH_CHECK(x.dim() == 4 || x.dim() == 5,
                "conv(): argument 'input' must be 4-D (N, C, H, W) or 5-D (N, C, D, H, W), got ", x.dim(),
                "-D with shape ", x.sizes());
    if (x.dim() == 4) return at::conv2d(x, w, b, stride, padding, dilation, groups);
    return at::conv3d(x, w, b, stride, padding, dilation, groups);
  };
  t["interpolate"] = interpolate;
  // (input, padding, value): torch.nn.functional.pad(mode='constant'); padding pairs start at the last
  // dimension (left, right, then the one before, ...); negative amounts crop.
  t["pad"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    const IntList padding = a.ints(1, "padding");
    TORCH_CHECK(padding.size() % 2 == 0 && static_cast<int64_t>(padding.size()) <= 2 * x.dim(),
                "pad(): argument 'padding' must hold pairs for at most ", x.dim(), " dimensions, got ", padding.size(),
                " values");
    return at::constant_pad_nd(x, padding, a.scalar(2, "value"));
  };
  // (input, dtype?, device?): a copy only when something changes, as Tensor.to does
  t["to"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    auto dtype = a.isNone(1) ? x.scalar_type() : parseDtype(a.string(1, "dtype"));
    auto device = a.isNone(2) ? x.device() : parseDevice(a.string(2, "device"));
    return x.to(device, dtype);
  };
}

}  // namespace semiseg
