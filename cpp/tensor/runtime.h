// Process-wide LibTorch controls: seeding, threads, grad mode, devices, versions.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace semiseg {

void manualSeed(uint64_t seed);
// Intra-op threads. The configured count applies to the compute threads, which run the async work
// (useIntraOpThreadsHere() before each job); a JS thread that calls setNumThreads or runs synchronous ops
// stays at one (serialCallingThread()). Two OpenMP teams started from two threads make libgomp throttle
// its spin-wait (more managed threads than cores), and every parallel region then pays a futex wake-up.
void setNumThreads(int64_t n);
int64_t numThreads();
void serialCallingThread();
void useIntraOpThreadsHere();
bool gradEnabled();
void setGradEnabled(bool enabled);  // thread-local, as in PyTorch
bool cudaAvailable();
int64_t cudaDeviceCount();
// Waits for the work queued on GPU `device` (benchmarks time kernels with it).
void cudaSynchronize(int64_t device);
bool builtWithCuda();

// The default CPU generator's state (a uint8 tensor) and its restoration, for checkpoints.
at::Tensor cpuRngState();
void setCpuRngState(const at::Tensor& state);

}  // namespace semiseg
