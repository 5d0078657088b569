// exp and log over arrays of floats, with AVX2 and Sleef (the vectorised math LibTorch ships and exports)
// when the CPU has AVX2 and FMA and the symbols are there, else with libm. The kernels' loops otherwise vectorise on
// their own; these two calls would not (libm's expf / logf are scalar).
#pragma once

#include <cstdint>

namespace semiseg::ops::cpu {

// out[j] = exp(x[j] - shift[j]) for j in [0, len).
void expShifted(float* out, const float* x, const float* shift, int64_t len);
// out[j] = shift[j] + log(x[j]) for j in [0, len).
void logShifted(float* out, const float* x, const float* shift, int64_t len);
// True when the AVX2 paths are used (this CPU has AVX2 and FMA, and the LibTorch loaded exports Sleef's
// 8-wide expf / logf).
bool vecMathAvx2();

}  // namespace semiseg::ops::cpu
