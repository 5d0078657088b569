// CUDA kernels of Co-DA's class-wise marginal alignment (q = p r / sum_k p_k r_k per pixel), its
// backward, and the masked per-class sums of probabilities behind the marginal EMAs. One thread per
// pixel (n, s); the sums go through registers, the block (shared memory) and one atomicAdd per block.
#include "ops/cuda/common.cuh"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

namespace semiseg::ops::cuda {
namespace {

// 1 / sum_c p_c r_c over the C values p[c * P].
template <typename T>
__device__ __forceinline__ Acc<T> inverseScale(const T* p, const Acc<T>* ratio, int64_t C, int64_t P) {
  using A = Acc<T>;
  A s = 0;
  for (int64_t c = 0; c < C; ++c) s += static_cast<A>(p[c * P]) * ratio[c];
  return A(1) / s;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    marginalAlignKernel(const T* __restrict__ probs, const Acc<T>* __restrict__ ratio, int64_t C, int64_t P,
                        T* __restrict__ out) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y;
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const T* ps = probs + n * C * P + s;
    const A inv = inverseScale(ps, ratio, C, P);
    T* qs = out + n * C * P + s;
    for (int64_t c = 0; c < C; ++c) qs[c * P] = static_cast<T>(static_cast<A>(ps[c * P]) * ratio[c] * inv);
  }
}

// grad_p_j = (r_j / s) (g_j - sum_c g_c q_c), s = sum_k p_k r_k, q_c = p_c r_c / s.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    marginalAlignBackwardKernel(const T* __restrict__ grad, const T* __restrict__ probs,
                                const Acc<T>* __restrict__ ratio, int64_t C, int64_t P, T* __restrict__ out) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y;
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const int64_t base = n * C * P + s;
    const A inv = inverseScale(probs + base, ratio, C, P);
    A dot = 0;
    for (int64_t c = 0; c < C; ++c) {
      dot += static_cast<A>(grad[base + c * P]) * static_cast<A>(probs[base + c * P]) * ratio[c] * inv;
    }
    for (int64_t c = 0; c < C; ++c) {
      out[base + c * P] = static_cast<T>(ratio[c] * inv * (static_cast<A>(grad[base + c * P]) - dot));
    }
  }
}

// Per-thread sums: sum p_c over the counted pixels for the block's chunk of classes, then the count
// (kept by the blocks of chunk 0 only).
constexpr int kMarginalSums = kClassChunk + 1;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    classMarginalSumsKernel(const T* __restrict__ probs, const bool* __restrict__ mask, int64_t C, int64_t P,
                            Acc<T>* __restrict__ sums, Acc<T>* __restrict__ count) {
  using A = Acc<T>;
  const int64_t n = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.z) * kClassChunk;
  A acc[kMarginalSums] = {};
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    if (mask && !mask[n * P + s]) continue;
    const T* ps = probs + n * C * P + s;
#pragma unroll
    for (int i = 0; i < kClassChunk; ++i) {
      if (c0 + i < C) acc[i] += static_cast<A>(ps[(c0 + i) * P]);
    }
    acc[kClassChunk] += A(1);
  }
  __shared__ A smem[kWarps * kMarginalSums];
  blockSum(acc, smem, [&](int i, A v) {
    if (i < kClassChunk) {
      if (c0 + i < C) atomicAdd(sums + c0 + i, v);
    } else if (c0 == 0) {
      atomicAdd(count, v);
    }
  });
}

at::Tensor ratioOn(const at::Tensor& ratio, const at::Tensor& probs, int64_t C, const char* op) {
  at::Tensor r = ratio.to(probs.device(), accType(probs.scalar_type())).contiguous();
  TORCH_CHECK(r.numel() == C, op, ": ratio must hold ", C, " values, got ", r.numel());
  return r;
}

at::Tensor marginalAlign(const at::Tensor& probsIn, const at::Tensor& ratioIn) {
  const Shape sh = pixelShape(probsIn, "_marginal_align");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  const c10::cuda::CUDAGuard guard(probsIn.device());
  const at::Tensor p = probsIn.contiguous(), ratio = ratioOn(ratioIn, p, C, "_marginal_align");
  at::Tensor q = at::empty_like(p);
  if (N * C * P == 0) return q;
  const dim3 grid = pixelGrid(N, P);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "_marginal_align", [&] {
    marginalAlignKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        p.const_data_ptr<scalar_t>(), ratio.const_data_ptr<Acc<scalar_t>>(), C, P, q.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return q;
}

at::Tensor marginalAlignBackward(const at::Tensor& gradIn, const at::Tensor& probsIn, const at::Tensor& ratioIn) {
  const Shape sh = pixelShape(probsIn, "_marginal_align_backward");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  TORCH_CHECK(gradIn.sizes() == probsIn.sizes(), "_marginal_align_backward: grad must have the shape of probs ",
              probsIn.sizes(), ", got ", gradIn.sizes());
  const c10::cuda::CUDAGuard guard(probsIn.device());
  const at::Tensor p = probsIn.contiguous(), g = gradIn.to(p.scalar_type()).contiguous();
  const at::Tensor ratio = ratioOn(ratioIn, p, C, "_marginal_align_backward");
  at::Tensor out = at::empty_like(p);
  if (N * C * P == 0) return out;
  const dim3 grid = pixelGrid(N, P);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "_marginal_align_backward", [&] {
    marginalAlignBackwardKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), p.const_data_ptr<scalar_t>(), ratio.const_data_ptr<Acc<scalar_t>>(), C, P,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> classMarginalSums(const at::Tensor& probsIn,
                                                     const std::optional<at::Tensor>& maskIn) {
  const Shape sh = pixelShape(probsIn, "_class_marginal_sums");
  const int64_t N = sh.N, C = sh.C, P = sh.P;
  const c10::cuda::CUDAGuard guard(probsIn.device());
  const at::Tensor p = probsIn.contiguous();
  const bool masked = maskIn.has_value() && maskIn->defined();
  const at::Tensor mask = masked ? maskIn->to(p.device(), at::kBool).contiguous() : at::Tensor();
  TORCH_CHECK(!masked || mask.numel() == N * P, "_class_marginal_sums: mask must hold ", N * P, " values, got ",
              mask.numel());
  at::Tensor sums = at::zeros({C}, p.options().dtype(accType(p.scalar_type())));
  at::Tensor count = at::zeros({}, sums.options());
  if (N * C * P == 0) return {sums, count};
  const dim3 grid = pixelGrid(N, P, classChunks(C));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "_class_marginal_sums", [&] {
    using A = Acc<scalar_t>;
    classMarginalSumsKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        p.const_data_ptr<scalar_t>(), masked ? mask.const_data_ptr<bool>() : nullptr, C, P, sums.mutable_data_ptr<A>(),
        count.mutable_data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {sums, count};
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CUDA, m) {
  m.impl("_marginal_align", &marginalAlign);
  m.impl("_marginal_align_backward", &marginalAlignBackward);
  m.impl("_class_marginal_sums", &classMarginalSums);
}

}  // namespace semiseg::ops::cuda
