// Moving element data in and out of tensors. Both directions copy: a tensor never aliases host memory.
#pragma once

#include "tensor/value.h"

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstddef>

namespace semiseg {

// A new tensor of `shape` holding the `nbytes` at `src`, read as row-major elements of `srcType`,
// converted to `dtype` on `device`. Checks that the byte count matches the shape.
at::Tensor fromBytes(const void* src, size_t nbytes, const IntList& shape, c10::ScalarType srcType,
                     c10::ScalarType dtype, const c10::Device& device, bool requiresGrad);

// The element type a tensor's values are exported as (float16 and bfloat16 widen to float32).
c10::ScalarType exportType(c10::ScalarType t);

// A contiguous CPU tensor in exportType(t.scalar_type()) with t's values (detached).
at::Tensor exportable(const at::Tensor& t);

}  // namespace semiseg
