#include "ops/cpu/vec_math.h"

#include <dlfcn.h>

#include <cmath>
#include <initializer_list>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace {
// Sleef's 8-wide float exp and log (1 ulp), which libtorch_cpu exports for ATen's Vectorized<float>.
// They are not a public API, so they are looked up at run time: a LibTorch without them (another
// build, another version) falls back to libm instead of failing to load the addon.
using Vec8Fn = __m256 (*)(__m256);
struct Sleef8 {
  Vec8Fn exp = nullptr, log = nullptr;
  Sleef8() {
    void* torch = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
    for (void* h : {RTLD_DEFAULT, torch}) {
      if (!h || (exp && log)) continue;
      exp = reinterpret_cast<Vec8Fn>(dlsym(h, "Sleef_expf8_u10avx2"));
      log = reinterpret_cast<Vec8Fn>(dlsym(h, "Sleef_logf8_u10avx2"));
    }
    if (torch) dlclose(torch);
    if (!exp || !log) exp = log = nullptr;
  }
};
const Sleef8& sleef() {
  static const Sleef8 s;
  return s;
}

void expShiftedAvx2(float* out, const float* x, const float* shift, int64_t len) {
  const Vec8Fn exp8 = sleef().exp;
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(shift + j));
    _mm256_storeu_ps(out + j, exp8(v));
  }
  for (; j < len; ++j) out[j] = std::exp(x[j] - shift[j]);
}

void logShiftedAvx2(float* out, const float* x, const float* shift, int64_t len) {
  const Vec8Fn log8 = sleef().log;
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m256 v = log8(_mm256_loadu_ps(x + j));
    _mm256_storeu_ps(out + j, _mm256_add_ps(_mm256_loadu_ps(shift + j), v));
  }
  for (; j < len; ++j) out[j] = shift[j] + std::log(x[j]);
}
}  // namespace
#pragma GCC pop_options
#define SEMISEG_HAVE_AVX2_PATH 1
#endif

namespace semiseg::ops::cpu {

bool vecMathAvx2() {
#ifdef SEMISEG_HAVE_AVX2_PATH
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && sleef().exp;
  return yes;
#else
  return false;
#endif
}

void expShifted(float* out, const float* x, const float* shift, int64_t len) {
#ifdef SEMISEG_HAVE_AVX2_PATH
  if (vecMathAvx2()) return expShiftedAvx2(out, x, shift, len);
#endif
  for (int64_t j = 0; j < len; ++j) out[j] = std::exp(x[j] - shift[j]);
}

void logShifted(float* out, const float* x, const float* shift, int64_t len) {
#ifdef SEMISEG_HAVE_AVX2_PATH
  if (vecMathAvx2()) return logShiftedAvx2(out, x, shift, len);
#endif
  for (int64_t j = 0; j < len; ++j) out[j] = shift[j] + std::log(x[j]);
}

}  // namespace semiseg::ops::cpu
