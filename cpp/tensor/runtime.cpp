#include "tensor/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

namespace semiseg {

void manualSeed(uint64_t seed) { at::manual_seed(seed); }

void setNumThreads(int64_t n) {
  TORCH_CHECK(n >= 1 && n <= 1024, "setNumThreads(): argument 'n' must be between 1 and 1024, got ", n);
  at::set_num_threads(static_cast<int>(n));
}

int64_t numThreads() { return at::get_num_threads(); }
bool gradEnabled() { return c10::GradMode::is_enabled(); }
void setGradEnabled(bool enabled) { c10::GradMode::set_enabled(enabled); }
bool cudaAvailable() { return at::hasCUDA() && at::getNumGPUs() > 0; }
int64_t cudaDeviceCount() { return at::hasCUDA() ? static_cast<int64_t>(at::getNumGPUs()) : 0; }

bool builtWithCuda() {
#ifdef SEMISEG_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace semiseg
