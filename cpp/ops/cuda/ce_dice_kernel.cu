// CUDA kernels of the region-weighted CE + Dice loss: the sums of one pass (_ce_dice_stats) and the
// gradient of the logits in one pass (_ce_dice_backward). One thread per pixel (n, s), softmax in the
// accumulation type; the sums go through registers, the block (shared memory) and one atomicAdd per block.
#include "ops/cuda/common.cuh"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace semiseg::ops::cuda {
namespace {

// Per-thread sums: [sum w p_c [t = c], sum w p_c^2 or w p_c, sum w [t = c]] for the block's chunk of
// classes, then [sum w ce, sum w] (kept by the blocks of chunk 0 only).
constexpr int kStatSums = 3 * kClassChunk + 2;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    ceDiceStatsKernel(const T* __restrict__ x, const int64_t* __restrict__ target, const T* __restrict__ weights,
                      int64_t C, int64_t P, bool squared, bool perSample, Acc<T>* __restrict__ classStats,
                      Acc<T>* __restrict__ ceStats) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.z) * kClassChunk;
  A sums[kStatSums] = {};
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const T* xs = x + n * C * P + s;
    A m, total;
    softmaxStats(xs, C, P, m, total);
    const A inv = A(1) / total;
    const int64_t t = target[n * P + s];
    const A w = weights ? static_cast<A>(weights[n * P + s]) : A(1);
    if (c0 == 0) {
      sums[3 * kClassChunk] += w * (m + logAcc(total) - static_cast<A>(xs[t * P]));
      sums[3 * kClassChunk + 1] += w;
    }
#pragma unroll
    for (int i = 0; i < kClassChunk; ++i) {
      const int64_t c = c0 + i;
      if (c < C) {
        const A p = expAcc(static_cast<A>(xs[c * P]) - m) * inv;
        sums[kClassChunk + i] += w * (squared ? p * p : p);
        if (c == t) {
          sums[i] += w * p;
          sums[2 * kClassChunk + i] += w;
        }
      }
    }
  }
  __shared__ A smem[kWarps * kStatSums];
  blockSum(sums, smem, [&](int i, A v) {
    if (i < 3 * kClassChunk) {
      const int64_t row = i / kClassChunk, c = c0 + i % kClassChunk;
      if (c < C) atomicAdd(classStats + ((perSample ? n : 0) * 3 + row) * C + c, v);
    } else if (c0 == 0) {
      atomicAdd(ceStats + (i - 3 * kClassChunk), v);
    }
  });
}

// grad_x_j = p_j (g_j - sum_c p_c g_c) + k w (p_j - y_j), g_c = w (a_c y_c + b_c (squared ? 2 p_c : 1)).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    ceDiceBackwardKernel(const T* __restrict__ x, const int64_t* __restrict__ target, const T* __restrict__ weights,
                         const Acc<T>* __restrict__ coeffs, int64_t C, int64_t P, int64_t kIndex, bool squared,
                         bool perSample, T* __restrict__ grad) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y;
  const A* a = coeffs + (perSample ? n : 0) * 2 * C;
  const A* b = a + C;
  const A k = coeffs[kIndex];
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const T* xs = x + n * C * P + s;
    A m, total;
    softmaxStats(xs, C, P, m, total);
    const A inv = A(1) / total;
    const int64_t t = target[n * P + s];
    const A w = weights ? static_cast<A>(weights[n * P + s]) : A(1);
    A dot = 0;  // sum_c p_c g_c
    for (int64_t c = 0; c < C; ++c) {
      const A p = expAcc(static_cast<A>(xs[c * P]) - m) * inv;
      dot += p * w * (b[c] * (squared ? 2 * p : A(1)) + (c == t ? a[c] : A(0)));
    }
    T* gs = grad + n * C * P + s;
    for (int64_t c = 0; c < C; ++c) {
      const A p = expAcc(static_cast<A>(xs[c * P]) - m) * inv;
      const A g = w * (b[c] * (squared ? 2 * p : A(1)) + (c == t ? a[c] : A(0)));
      gs[c * P] = static_cast<T>(p * (g - dot) + k * w * (p - (c == t ? A(1) : A(0))));
    }
  }
}

struct Inputs {
  at::Tensor x, t, w;
};
Inputs prepare(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights) {
  Inputs in{logits.contiguous(), target.to(at::kLong).contiguous(), at::Tensor()};
  if (weights && weights->defined()) in.w = weights->to(in.x.scalar_type()).contiguous();
  return in;
}

std::tuple<at::Tensor, at::Tensor> ceDiceStats(const at::Tensor& logits, const at::Tensor& target,
                                               const std::optional<at::Tensor>& weights, bool squared, bool perSample) {
  const Shape sh = pixelShape(logits, "_ce_dice_stats");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  const c10::cuda::CUDAGuard guard(logits.device());
  const Inputs in = prepare(logits, target, weights);
  const int64_t G = perSample ? N : 1;
  at::Tensor classStats = at::zeros({G, 3, C}, in.x.options().dtype(accType(in.x.scalar_type())));
  at::Tensor ceStats = at::zeros({2}, classStats.options());
  if (N * C * P == 0) return {classStats, ceStats};
  const dim3 grid = pixelGrid(N, P, classChunks(C));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.x.scalar_type(), "_ce_dice_stats", [&] {
    using A = Acc<scalar_t>;
    ceDiceStatsKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in.x.const_data_ptr<scalar_t>(), in.t.const_data_ptr<int64_t>(),
        in.w.defined() ? in.w.const_data_ptr<scalar_t>() : nullptr, C, P, squared, perSample,
        classStats.mutable_data_ptr<A>(), ceStats.mutable_data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {classStats, ceStats};
}

at::Tensor ceDiceBackward(const at::Tensor& logits, const at::Tensor& target, const std::optional<at::Tensor>& weights,
                          const at::Tensor& coeffs, bool squared, bool perSample) {
  const Shape sh = pixelShape(logits, "_ce_dice_backward");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  const c10::cuda::CUDAGuard guard(logits.device());
  const Inputs in = prepare(logits, target, weights);
  const at::Tensor co = coeffs.to(in.x.device(), accType(in.x.scalar_type())).contiguous();
  const int64_t G = perSample ? N : 1;
  TORCH_CHECK(co.numel() == G * 2 * C + 1, "_ce_dice_backward: coeffs must hold ", G * 2 * C + 1, " values, got ",
              co.numel());
  at::Tensor grad = at::empty_like(in.x);
  if (N * C * P == 0) return grad;
  const dim3 grid = pixelGrid(N, P);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.x.scalar_type(), "_ce_dice_backward", [&] {
    using A = Acc<scalar_t>;
    ceDiceBackwardKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        in.x.const_data_ptr<scalar_t>(), in.t.const_data_ptr<int64_t>(),
        in.w.defined() ? in.w.const_data_ptr<scalar_t>() : nullptr, co.const_data_ptr<A>(), C, P, G * 2 * C, squared,
        perSample, grad.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CUDA, m) {
  m.impl("_ce_dice_stats", &ceDiceStats);
  m.impl("_ce_dice_backward", &ceDiceBackward);
}

}  // namespace semiseg::ops::cuda
