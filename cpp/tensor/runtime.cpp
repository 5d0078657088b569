#include "tensor/runtime.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
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

void cudaSynchronize(int64_t device) {
  TORCH_CHECK(at::hasCUDA(), "cuda.synchronize(): this LibTorch has no CUDA or no GPU is visible");
  TORCH_CHECK(device >= 0 && device < cudaDeviceCount(), "cuda.synchronize(): argument 'device' must be in [0, ",
              cudaDeviceCount(), "), got ", device);
  at::detail::getCUDAHooks().deviceSynchronize(static_cast<c10::DeviceIndex>(device));
}

at::Tensor cpuRngState() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void setCpuRngState(const at::Tensor& state) {
  TORCH_CHECK(state.defined() && state.scalar_type() == at::kByte && state.dim() == 1,
              "setCpuRngState(): the state must be a 1-D uint8 tensor, got ",
              state.defined() ? state.sizes() : at::IntArrayRef{});
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state.cpu());
}

bool builtWithCuda() {
#ifdef SEMISEG_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace semiseg
