// Helpers shared by the fused ops' CUDA kernels: the accumulation type, the launch grid (one thread per
// pixel in a grid-stride loop, blockIdx.y = sample, blockIdx.z = class chunk), the per-pixel softmax
// statistics, and the block reduction that flushes per-thread register sums with one atomicAdd per block.
#pragma once

#include <ATen/AccumulateType.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace semiseg::ops::cuda {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// The reductions keep each thread's per-class sums in registers for kClassChunk classes; blockIdx.z picks
// the chunk of classes [z * kClassChunk, (z + 1) * kClassChunk), so any number of classes is covered.
constexpr int kClassChunk = 8;

// float64 accumulates in float64, everything else (float32, float16, bfloat16) in float32.
template <typename T>
using Acc = at::acc_type<T, true>;

inline at::ScalarType accType(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// N, C and P = prod(S) of an (N, C, *S) tensor with 2 or 3 spatial dims.
struct Shape {
  int64_t N, C, P;
};
inline Shape pixelShape(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4 || x.dim() == 5, op, ": expected an (N, C, *S) tensor with 2 or 3 spatial dims, got ",
              x.sizes());
  const int64_t N = x.size(0), C = x.size(1);
  return {N, C, N * C > 0 ? x.numel() / (N * C) : 0};
}

inline int64_t classChunks(int64_t C) { return (C + kClassChunk - 1) / kClassChunk; }

// blockIdx.y = sample (N of them), blockIdx.z = class chunk; the x blocks of a sample stride over its P
// pixels, about 8 blocks of kThreads per multiprocessor in all (fewer when P is small).
inline dim3 pixelGrid(int64_t N, int64_t P, int64_t chunks = 1) {
  TORCH_CHECK(N >= 1 && N <= 65535 && chunks >= 1 && chunks <= 65535, "semiseg CUDA kernels: ", N, " samples and ",
              chunks, " class chunks exceed the launch grid");
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t want = std::max<int64_t>(1, int64_t{8} * sms / (N * chunks));
  const int64_t needed = std::max<int64_t>(1, (P + kThreads - 1) / kThreads);
  return dim3(static_cast<unsigned>(std::min(want, needed)), static_cast<unsigned>(N), static_cast<unsigned>(chunks));
}

__device__ __forceinline__ float expAcc(float v) { return expf(v); }
__device__ __forceinline__ double expAcc(double v) { return exp(v); }
__device__ __forceinline__ float logAcc(float v) { return logf(v); }
__device__ __forceinline__ double logAcc(double v) { return log(v); }

// First and stride of the grid-stride loop over one sample's pixels.
__device__ __forceinline__ int64_t firstPixel() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t pixelStride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Max m and sum of exp(x_c - m) over the C values x[c * P] (online: each value is read once).
template <typename T>
__device__ __forceinline__ void softmaxStats(const T* x, int64_t C, int64_t P, Acc<T>& m, Acc<T>& sum) {
  using A = Acc<T>;
  m = static_cast<A>(x[0]);
  sum = A(1);
  for (int64_t c = 1; c < C; ++c) {
    const A v = static_cast<A>(x[c * P]);
    if (v > m) {
      sum = sum * expAcc(m - v) + A(1);
      m = v;
    } else {
      sum += expAcc(v - m);
    }
  }
}

// First maximum (lowest class index on ties) of the C values q[c * P], compared in the accumulation type.
template <typename T>
__device__ __forceinline__ int64_t argmaxClass(const T* q, int64_t C, int64_t P, Acc<T>& best) {
  using A = Acc<T>;
  best = static_cast<A>(q[0]);
  int64_t arg = 0;
  for (int64_t c = 1; c < C; ++c) {
    const A v = static_cast<A>(q[c * P]);
    if (v > best) {
      best = v;
      arg = c;
    }
  }
  return arg;
}

// Sums each of the kN per-thread values v over the block (every thread of the block must call it, once),
// then calls flush(i, sum) for i in [0, kN), on thread i. smem holds kWarps * kN values.
template <int kN, typename A, typename F>
__device__ __forceinline__ void blockSum(const A (&v)[kN], A* smem, const F& flush) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int i = 0; i < kN; ++i) {
    A s = v[i];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
    if (lane == 0) smem[warp * kN + i] = s;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kN; i += blockDim.x) {
    A s = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) s += smem[w * kN + i];
    flush(i, s);
  }
}

}  // namespace semiseg::ops::cuda
