#include "tensor/runtime.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <atomic>

// libgomp's, when LibTorch uses OpenMP (weak: absent with other thread pools).
extern "C" __attribute__((weak)) void omp_set_num_threads(int);

namespace semiseg {

namespace {
std::atomic<int> gThreads{0};  // configured intra-op threads; 0 until first asked

int configured() {
  int n = gThreads.load();
  if (n == 0) {
    int expected = 0;
    gThreads.compare_exchange_strong(expected, at::get_num_threads());
    n = gThreads.load();
  }
  return n;
}
}  // namespace

void serialCallingThread() {
  configured();
  at::get_num_threads();  // ATen's lazy per-thread set-up first, so it does not undo the next line
  if (omp_set_num_threads) omp_set_num_threads(1);
}

void useIntraOpThreadsHere() {
  thread_local int applied = -1;
  const int n = configured();
  if (n != applied) {
    at::set_num_threads(n);
    applied = n;
  }
}

void manualSeed(uint64_t seed) { at::manual_seed(seed); }

void setNumThreads(int64_t n) {
  TORCH_CHECK(n >= 1 && n <= 1024, "setNumThreads(): argument 'n' must be between 1 and 1024, got ", n);
  configured();
  gThreads.store(static_cast<int>(n));
  at::set_num_threads(static_cast<int>(n));  // ATen's global count (new threads start from it)
  serialCallingThread();
}

int64_t numThreads() { return configured(); }
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
