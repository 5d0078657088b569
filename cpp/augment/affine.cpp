// Nearest-neighbour affine resampling with a constant-0 border, as scipy.ndimage.affine_transform with
// order=0, mode='constant' computes it: per output voxel of the last d dimensions,
// input = (sum over c of output[c] * matrix[r][c]) + offset[r], summed in that order as scipy does; a
// coordinate outside [0, len - 1] gives 0, else it is rounded half up (floor(x + 0.5)). Leading
// dimensions (batch, channels) are transformed alike. Used for rotations by an angle (spec 1.4).
#include "tensor/ops.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace semiseg {

namespace {

template <typename T>
void resample(const T* in, T* out, int64_t batch, const std::vector<int64_t>& inShape,
              const std::vector<int64_t>& outShape, const std::vector<double>& m, const std::vector<double>& off) {
  const int64_t d = static_cast<int64_t>(inShape.size());
  int64_t inVol = 1, outVol = 1;
  for (auto s : inShape) inVol *= s;
  for (auto s : outShape) outVol *= s;
  std::vector<int64_t> inStride(d, 1);
  for (int64_t k = d - 2; k >= 0; --k) inStride[k] = inStride[k + 1] * inShape[k + 1];
  at::parallel_for(0, batch * outVol, 4096, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> o(d);
    for (int64_t flat = begin; flat < end; ++flat) {
      const int64_t b = flat / outVol;
      int64_t rest = flat % outVol;
      for (int64_t k = d - 1; k >= 0; --k) {
        o[k] = rest % outShape[k];
        rest /= outShape[k];
      }
      int64_t src = 0;
      bool inside = true;
      for (int64_t r = 0; r < d && inside; ++r) {
        double x = 0.0;
        for (int64_t c = 0; c < d; ++c) x += static_cast<double>(o[c]) * m[r * d + c];
        x += off[r];
        inside = x >= 0.0 && x <= static_cast<double>(inShape[r] - 1);
        src += static_cast<int64_t>(std::floor(x + 0.5)) * inStride[r];
      }
      out[flat] = inside ? in[b * inVol + src] : T(0);
    }
  });
}

}  // namespace

void registerAugmentOps(OpTable& t) {
  // (input, matrix (d*d, row-major), offset (d), outShape (d)) over the last d dimensions
  t["affineNearest"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    at::Tensor m = a.tensor(1, "matrix").to(at::kDouble).contiguous();
    at::Tensor off = a.tensor(2, "offset").to(at::kDouble).contiguous();
    IntList outShape = a.ints(3, "outShape");
    const int64_t d = static_cast<int64_t>(outShape.size());
    TORCH_CHECK(d >= 1 && d <= x.dim(), "affineNearest(): 'outShape' must have between 1 and ", x.dim(),
                " entries, got ", d);
    TORCH_CHECK(m.numel() == d * d && off.numel() == d, "affineNearest(): 'matrix' must be ", d, "x", d,
                " and 'offset' ", d, " long");
    for (auto s : outShape) TORCH_CHECK(s > 0, "affineNearest(): 'outShape' must hold sizes > 0");
    at::Tensor in = x.contiguous().cpu();
    std::vector<int64_t> inShape(in.sizes().end() - d, in.sizes().end());
    std::vector<int64_t> shape(in.sizes().begin(), in.sizes().end() - d);
    int64_t batch = 1;
    for (auto s : shape) batch *= s;
    shape.insert(shape.end(), outShape.begin(), outShape.end());
    at::Tensor out = at::empty(shape, in.options());
    std::vector<double> mv(m.const_data_ptr<double>(), m.const_data_ptr<double>() + d * d);
    std::vector<double> ov(off.const_data_ptr<double>(), off.const_data_ptr<double>() + d);
    AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, in.scalar_type(), "affineNearest", [&] {
      resample<scalar_t>(in.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), batch, inShape, outShape, mv,
                         ov);
    });
    return out.to(x.device());
  };
}

}  // namespace semiseg
