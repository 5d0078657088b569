// Argument checks of the fused ops' public entries, one message template:
// "<op>(): argument '<name>' must be <expected>, got <received>".
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace semiseg::ops {

// (N, C, *S) floating scores with 2 or 3 spatial dims: float32 / float64, and float16 / bfloat16 on CUDA.
void checkScores(const char* op, const char* name, const at::Tensor& t);
// Same shape, dtype and device as `ref` (named refName).
void checkLike(const char* op, const char* name, const at::Tensor& t, const char* refName, const at::Tensor& ref);
// (N, *S) integer labels matching scores (N, C, *S), on their device; with checkRange, labels in [0, C).
void checkLabels(const char* op, const char* name, const at::Tensor& labels, const at::Tensor& scores, bool checkRange);
// (N, *S) weights or mask matching scores (N, C, *S), on their device.
void checkPixelMap(const char* op, const char* name, const at::Tensor& map, const at::Tensor& scores);
// A 1-D tensor of C floating values (per-class statistics).
void checkPerClass(const char* op, const char* name, const at::Tensor& t, int64_t classes);

}  // namespace semiseg::ops
