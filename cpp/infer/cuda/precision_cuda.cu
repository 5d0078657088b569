// CUDA side of infer/precision.cpp: compute capability from the runtime API (no ATen CUDA headers).
#include <cuda_runtime_api.h>

namespace semiseg::infer {

bool cudaDeviceBf16(int index) {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed query
    return false;
  }
  return major >= 8;
}

}  // namespace semiseg::infer
