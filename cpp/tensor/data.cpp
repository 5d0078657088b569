#include "tensor/data.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <limits>

namespace semiseg {

at::Tensor fromBytes(const void* src, size_t nbytes, const IntList& shape, c10::ScalarType srcType,
                     c10::ScalarType dtype, const c10::Device& device, bool requiresGrad) {
  bool empty = false;
  for (size_t d = 0; d < shape.size(); ++d) {
    TORCH_CHECK(shape[d] >= 0, "tensor(): argument 'shape' must hold sizes >= 0, got ", shape[d], " at dimension ", d);
    empty = empty || shape[d] == 0;
  }
  int64_t numel = empty ? 0 : 1;
  for (size_t d = 0; d < shape.size() && !empty; ++d) {
    TORCH_CHECK(numel <= std::numeric_limits<int64_t>::max() / shape[d], "tensor(): argument 'shape' ",
                c10::IntArrayRef(shape), " has more elements than int64 can count");
    numel *= shape[d];
  }
  const size_t elem = c10::elementSize(srcType);
  TORCH_CHECK(static_cast<size_t>(numel) * elem == nbytes, "tensor(): argument 'shape' ", c10::IntArrayRef(shape),
              " needs ", numel, " elements but the data holds ", nbytes / elem);
  at::Tensor t = at::empty(shape, c10::TensorOptions().dtype(srcType));
  if (nbytes > 0) std::memcpy(t.data_ptr(), src, nbytes);
  if (srcType != dtype || !device.is_cpu()) t = t.to(device, dtype);
  if (requiresGrad) {
    TORCH_CHECK(at::isFloatingType(dtype), "tensor(): only floating-point tensors can require gradients, got ", dtype);
    t.set_requires_grad(true);
  }
  return t;
}

c10::ScalarType exportType(c10::ScalarType t) {
  return (t == c10::ScalarType::Half || t == c10::ScalarType::BFloat16) ? c10::ScalarType::Float : t;
}

at::Tensor exportable(const at::Tensor& t) {
  return t.detach().to(c10::Device(c10::kCPU), exportType(t.scalar_type())).contiguous();
}

}  // namespace semiseg
