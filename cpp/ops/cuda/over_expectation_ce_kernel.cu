// CUDA kernels of Co-DA's over-expectation cross-entropy: per pixel (n, s), one thread takes the
// pseudo-label (first maximum of the aligned probabilities), its confidence and keep = conf >= e[yhat];
// the stats kernel sums the kept pixels' CE and the per-class confidences (registers, block, one atomicAdd
// per block), the backward kernel writes the gradient of the logits.
#include "ops/cuda/common.cuh"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace semiseg::ops::cuda {
namespace {

// Per-thread sums: [sum conf, count] by yhat for the block's chunk of classes, then [sum keep ce, sum keep]
// (kept by the blocks of chunk 0 only).
constexpr int kOeSums = 2 * kClassChunk + 2;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    oeStatsKernel(const T* __restrict__ x, const T* __restrict__ aligned, const Acc<T>* __restrict__ expect, int64_t C,
                  int64_t P, Acc<T>* __restrict__ stats, Acc<T>* __restrict__ classStats) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.z) * kClassChunk;
  A sums[kOeSums] = {};
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const int64_t base = n * C * P + s;
    A conf;
    const int64_t yhat = argmaxClass(aligned + base, C, P, conf);
    if (c0 == 0 && conf >= expect[yhat]) {
      A m, total;
      softmaxStats(x + base, C, P, m, total);
      sums[2 * kClassChunk] += m + logAcc(total) - static_cast<A>(x[base + yhat * P]);
      sums[2 * kClassChunk + 1] += A(1);
    }
#pragma unroll
    for (int i = 0; i < kClassChunk; ++i) {
      if (c0 + i == yhat) {
        sums[i] += conf;
        sums[kClassChunk + i] += A(1);
      }
    }
  }
  __shared__ A smem[kWarps * kOeSums];
  blockSum(sums, smem, [&](int i, A v) {
    if (i < 2 * kClassChunk) {
      const int64_t row = i / kClassChunk, c = c0 + i % kClassChunk;
      if (c < C) atomicAdd(classStats + row * C + c, v);
    } else if (c0 == 0) {
      atomicAdd(stats + (i - 2 * kClassChunk), v);
    }
  });
}

// grad_x_j = keep ? scale (softmax(x)_j - [yhat = j]) : 0.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    oeBackwardKernel(const T* __restrict__ x, const T* __restrict__ aligned, const Acc<T>* __restrict__ expect,
                     const Acc<T>* __restrict__ scalePtr, int64_t C, int64_t P, T* __restrict__ grad) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y;
  const A scale = *scalePtr;
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const int64_t base = n * C * P + s;
    A conf;
    const int64_t yhat = argmaxClass(aligned + base, C, P, conf);
    if (!(conf >= expect[yhat])) {
      for (int64_t c = 0; c < C; ++c) grad[base + c * P] = static_cast<T>(0);
      continue;
    }
    A m, total;
    softmaxStats(x + base, C, P, m, total);
    const A inv = A(1) / total;
    for (int64_t c = 0; c < C; ++c) {
      const A p = expAcc(static_cast<A>(x[base + c * P]) - m) * inv;
      grad[base + c * P] = static_cast<T>(scale * (p - (c == yhat ? A(1) : A(0))));
    }
  }
}

struct Inputs {
  at::Tensor x, q, expect;
};
Inputs prepare(const at::Tensor& logits, const at::Tensor& aligned, const at::Tensor& expectations, int64_t C,
               const char* op) {
  TORCH_CHECK(aligned.sizes() == logits.sizes(), op, ": aligned must have the shape of logits ", logits.sizes(),
              ", got ", aligned.sizes());
  Inputs in{logits.contiguous(), aligned.to(logits.scalar_type()).contiguous(), at::Tensor()};
  in.expect = expectations.to(in.x.device(), accType(in.x.scalar_type())).contiguous();
  TORCH_CHECK(in.expect.numel() == C, op, ": expectations must hold ", C, " values, got ", in.expect.numel());
  return in;
}

std::tuple<at::Tensor, at::Tensor> oeStats(const at::Tensor& logits, const at::Tensor& aligned,
                                           const at::Tensor& expectations) {
  const Shape sh = pixelShape(logits, "_over_expectation_ce_stats");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  const c10::cuda::CUDAGuard guard(logits.device());
  const Inputs in = prepare(logits, aligned, expectations, C, "_over_expectation_ce_stats");
  at::Tensor stats = at::zeros({2}, in.expect.options());
  at::Tensor classStats = at::zeros({2, C}, in.expect.options());
  if (N * C * P == 0) return {stats, classStats};
  const dim3 grid = pixelGrid(N, P, classChunks(C));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.x.scalar_type(), "_over_expectation_ce_stats", [&] {
    using A = Acc<scalar_t>;
    oeStatsKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in.x.const_data_ptr<scalar_t>(), in.q.const_data_ptr<scalar_t>(), in.expect.const_data_ptr<A>(), C, P,
        stats.mutable_data_ptr<A>(), classStats.mutable_data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {stats, classStats};
}

at::Tensor oeBackward(const at::Tensor& logits, const at::Tensor& aligned, const at::Tensor& expectations,
                      const at::Tensor& scale) {
  const Shape sh = pixelShape(logits, "_over_expectation_ce_backward");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  const c10::cuda::CUDAGuard guard(logits.device());
  const Inputs in = prepare(logits, aligned, expectations, C, "_over_expectation_ce_backward");
  const at::Tensor sc = scale.to(in.x.device(), in.expect.scalar_type()).contiguous();
  TORCH_CHECK(sc.numel() == 1, "_over_expectation_ce_backward: scale must hold 1 value, got ", sc.numel());
  at::Tensor grad = at::empty_like(in.x);
  if (N * C * P == 0) return grad;
  const dim3 grid = pixelGrid(N, P);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.x.scalar_type(), "_over_expectation_ce_backward", [&] {
    using A = Acc<scalar_t>;
    oeBackwardKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in.x.const_data_ptr<scalar_t>(), in.q.const_data_ptr<scalar_t>(), in.expect.const_data_ptr<A>(),
        sc.const_data_ptr<A>(), C, P, grad.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CUDA, m) {
  m.impl("_over_expectation_ce_stats", &oeStats);
  m.impl("_over_expectation_ce_backward", &oeBackward);
}

}  // namespace semiseg::ops::cuda
