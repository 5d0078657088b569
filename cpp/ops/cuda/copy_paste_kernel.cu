// CUDA kernels of bidirectional_copy_paste and its backward: one thread per pixel (i, s) of a mixed
// (forward) or source (backward) sample; the box test is made once per pixel, then all C channels are
// copied with stride P (coalesced across threads). The forward writes all six outputs in one kernel.
#include "ops/cuda/common.cuh"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

namespace semiseg::ops::cuda {
namespace {

// A box on the (D, H, W) grid, [begin, end) per axis; a 2-D image is the grid (1, H, W).
struct Box {
  int64_t begin[3], end[3];
};
static_assert(sizeof(Box) == 6 * sizeof(int64_t));

// The box rows (B, 2 * nd) [start..., size...] as Boxes on (D, H, W): `one` when B = 1 (passed to the
// kernel by value), else `many` on the device of the images (row i % B for mixed sample i).
struct Boxes {
  Box one{};
  at::Tensor many;
  int64_t rows = 0;
  Boxes(const at::Tensor& box, int64_t nd, const at::Device& device, const char* op) {
    const at::Tensor b = box.to(at::kCPU, at::kLong).contiguous();
    TORCH_CHECK(b.dim() == 2 && b.size(0) >= 1 && b.size(1) == 2 * nd, op, ": box must be (B, ", 2 * nd, "), got ",
                b.sizes());
    rows = b.size(0);
    const int64_t* v = b.const_data_ptr<int64_t>();
    std::vector<Box> all(rows);
    for (int64_t r = 0; r < rows; ++r) {
      Box& x = all[r];
      for (int64_t d = 0; d < 3; ++d) {
        const int64_t axis = d - (3 - nd);  // the box's own axis, < 0 for the depth of a 2-D image
        x.begin[d] = axis < 0 ? 0 : v[r * 2 * nd + axis];
        x.end[d] = axis < 0 ? 1 : x.begin[d] + v[r * 2 * nd + nd + axis];
      }
    }
    one = all[0];
    if (rows > 1) {
      at::Tensor host = at::empty({rows, 6}, at::TensorOptions().dtype(at::kLong));
      std::copy(all.begin(), all.end(), reinterpret_cast<Box*>(host.mutable_data_ptr<int64_t>()));
      many = host.to(device);
    }
  }
  const int64_t* device() const { return many.defined() ? many.const_data_ptr<int64_t>() : nullptr; }
};

// H, W and P = (D *) H * W of the spatial dims, as 32-bit values for the per-pixel index arithmetic.
struct Grid {
  uint32_t H, W, P;
};
Grid spatialGrid(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4 || x.dim() == 5, op, ": expected an (N, C, *S) tensor with 2 or 3 spatial dims, got ",
              x.sizes());
  const int64_t H = x.size(-2), W = x.size(-1), P = x.dim() == 5 ? x.size(2) * H * W : H * W;
  TORCH_CHECK(P < (int64_t{1} << 31), op, ": images of ", P, " pixels are too large");
  return {static_cast<uint32_t>(H), static_cast<uint32_t>(W), static_cast<uint32_t>(P)};
}

__device__ __forceinline__ Box boxOf(const int64_t* many, const Box& one, int64_t row) {
  return many ? reinterpret_cast<const Box*>(many)[row] : one;
}

__device__ __forceinline__ bool inside(const Box& b, uint32_t s, const Grid& g) {
  const int64_t w = s % g.W, h = (s / g.W) % g.H, d = s / (g.W * g.H);
  return d >= b.begin[0] && d < b.end[0] && h >= b.begin[1] && h < b.end[1] && w >= b.begin[2] && w < b.end[2];
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    copyPasteKernel(const T* __restrict__ labeled, const int64_t* __restrict__ labels, const T* __restrict__ unlabeled,
                    const int64_t* __restrict__ pseudo, const int64_t* __restrict__ boxes, Box one, int64_t rows,
                    Grid g, int64_t C, int64_t K, int64_t pairing, T alpha, T* __restrict__ mixIn,
                    int64_t* __restrict__ targetIn, T* __restrict__ weightIn, T* __restrict__ mixOut,
                    int64_t* __restrict__ targetOut, T* __restrict__ weightOut) {
  const int64_t i = blockIdx.y, P = g.P;
  const int64_t srcIn = pairing == 2 ? K + i : i, srcOut = pairing == 1 ? K + i : i;
  const Box box = boxOf(boxes, one, i % rows);
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const bool in = inside(box, static_cast<uint32_t>(s), g);
    // mixed_in = inside ? labeled[srcIn] : unlabeled[srcIn]; mixed_out = inside ? unlabeled[srcOut] : labeled[srcOut]
    const T* fromIn = (in ? labeled : unlabeled) + srcIn * C * P + s;
    const T* fromOut = (in ? unlabeled : labeled) + srcOut * C * P + s;
    T* toIn = mixIn + i * C * P + s;
    T* toOut = mixOut + i * C * P + s;
    for (int64_t c = 0; c < C; ++c) {
      toIn[c * P] = fromIn[c * P];
      toOut[c * P] = fromOut[c * P];
    }
    targetIn[i * P + s] = in ? labels[srcIn * P + s] : pseudo[srcIn * P + s];
    targetOut[i * P + s] = in ? pseudo[srcOut * P + s] : labels[srcOut * P + s];
    weightIn[i * P + s] = in ? T(1) : alpha;
    weightOut[i * P + s] = in ? alpha : T(1);
  }
}

// Source sample n's gradients: labeled takes grad_in inside the box (n = src_in) and grad_out outside
// (n = src_out); unlabeled the complement. inIdx / outIdx: the mixed samples reading n, or -1.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    copyPasteBackwardKernel(const T* __restrict__ gradIn, const T* __restrict__ gradOut,
                            const int64_t* __restrict__ boxes, Box one, int64_t rows, Grid g, int64_t C, int64_t K,
                            int64_t pairing, T* __restrict__ gradLabeled, T* __restrict__ gradUnlabeled) {
  const int64_t n = blockIdx.y, P = g.P;
  int64_t inIdx = -1, outIdx = -1;
  if (pairing == 0) {
    inIdx = outIdx = n;
  } else if (n < 2 * K && (pairing == 1) == (n < K)) {
    inIdx = n % K;  // inFirst: sources 0..K-1 feed the in-mix; outFirst: sources K..2K-1
  } else if (n < 2 * K) {
    outIdx = n % K;
  }
  const int64_t mixed = inIdx >= 0 ? inIdx : outIdx;
  const Box box = boxOf(boxes, one, (mixed >= 0 ? mixed : 0) % rows);
  const T* fromIn = gradIn && inIdx >= 0 ? gradIn + inIdx * C * P : nullptr;
  const T* fromOut = gradOut && outIdx >= 0 ? gradOut + outIdx * C * P : nullptr;
  for (int64_t s = firstPixel(); s < P; s += pixelStride()) {
    const bool in = inside(box, static_cast<uint32_t>(s), g);
    const T* srcL = in ? fromIn : fromOut;  // labeled: inside of the in-mix, outside of the out-mix
    const T* srcU = in ? fromOut : fromIn;  // unlabeled: the complement
    T* gl = gradLabeled + n * C * P + s;
    T* gu = gradUnlabeled + n * C * P + s;
    for (int64_t c = 0; c < C; ++c) {
      gl[c * P] = srcL ? srcL[c * P + s] : T(0);
      gu[c * P] = srcU ? srcU[c * P + s] : T(0);
    }
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> copyPaste(
    const at::Tensor& labeledIn, const at::Tensor& labelsIn, const at::Tensor& unlabeledIn, const at::Tensor& pseudoIn,
    const at::Tensor& box, double alpha, int64_t pairing) {
  constexpr const char* op = "bidirectional_copy_paste";
  const Grid g = spatialGrid(labeledIn, op);
  TORCH_CHECK(pairing >= 0 && pairing <= 2, op, ": pairing must be 0, 1 or 2, got ", pairing);
  const c10::cuda::CUDAGuard guard(labeledIn.device());
  const at::Tensor l = labeledIn.contiguous(), u = unlabeledIn.to(l.scalar_type()).contiguous();
  const at::Tensor y = labelsIn.to(at::kLong).contiguous(), py = pseudoIn.to(at::kLong).contiguous();
  const int64_t N = l.size(0), C = l.size(1), K = pairing == 0 ? N : N / 2, nd = l.dim() - 2;
  const Boxes boxes(box, nd, l.device(), op);
  auto imageShape = l.sizes().vec(), labelShape = y.sizes().vec();
  imageShape[0] = labelShape[0] = K;
  at::Tensor mixIn = at::empty(imageShape, l.options()), mixOut = at::empty(imageShape, l.options());
  at::Tensor tIn = at::empty(labelShape, y.options()), tOut = at::empty(labelShape, y.options());
  at::Tensor wIn = at::empty(labelShape, l.options()), wOut = at::empty(labelShape, l.options());
  if (K * C * g.P == 0) return {mixIn, tIn, wIn, mixOut, tOut, wOut};
  const dim3 grid = pixelGrid(K, g.P);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.scalar_type(), op, [&] {
    copyPasteKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        l.const_data_ptr<scalar_t>(), y.const_data_ptr<int64_t>(), u.const_data_ptr<scalar_t>(),
        py.const_data_ptr<int64_t>(), boxes.device(), boxes.one, boxes.rows, g, C, K, pairing,
        static_cast<scalar_t>(alpha), mixIn.mutable_data_ptr<scalar_t>(), tIn.mutable_data_ptr<int64_t>(),
        wIn.mutable_data_ptr<scalar_t>(), mixOut.mutable_data_ptr<scalar_t>(), tOut.mutable_data_ptr<int64_t>(),
        wOut.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {mixIn, tIn, wIn, mixOut, tOut, wOut};
}

// An undefined grad_in or grad_out (an unused output) counts as zeros.
std::tuple<at::Tensor, at::Tensor> copyPasteBackward(const at::Tensor& gradInArg, const at::Tensor& gradOutArg,
                                                     const at::Tensor& box, int64_t pairing, int64_t batch) {
  constexpr const char* op = "bidirectional_copy_paste_backward";
  TORCH_CHECK(gradInArg.defined() || gradOutArg.defined(), op, ": needs grad_in or grad_out");
  const at::Tensor& ref = gradInArg.defined() ? gradInArg : gradOutArg;
  const Grid g = spatialGrid(ref, op);
  TORCH_CHECK(pairing >= 0 && pairing <= 2, op, ": pairing must be 0, 1 or 2, got ", pairing);
  TORCH_CHECK(!gradInArg.defined() || !gradOutArg.defined() || gradInArg.sizes() == gradOutArg.sizes(), op,
              ": grad_in and grad_out must have one shape, got ", gradInArg.sizes(), " and ", gradOutArg.sizes());
  const c10::cuda::CUDAGuard guard(ref.device());
  const at::Tensor gi = gradInArg.defined() ? gradInArg.to(ref.scalar_type()).contiguous() : at::Tensor();
  const at::Tensor go = gradOutArg.defined() ? gradOutArg.to(ref.scalar_type()).contiguous() : at::Tensor();
  const int64_t K = ref.size(0), C = ref.size(1), N = batch, nd = ref.dim() - 2;
  TORCH_CHECK(K == (pairing == 0 ? N : N / 2), op, ": ", K, " mixed samples do not match batch ", N, " with pairing ",
              pairing);
  const Boxes boxes(box, nd, ref.device(), op);
  auto shape = ref.sizes().vec();
  shape[0] = N;
  at::Tensor gl = at::empty(shape, ref.options()), gu = at::empty(shape, ref.options());
  if (N * C * g.P == 0) return {gl, gu};
  const dim3 grid = pixelGrid(N, g.P);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, ref.scalar_type(), op, [&] {
    copyPasteBackwardKernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        gi.defined() ? gi.const_data_ptr<scalar_t>() : nullptr, go.defined() ? go.const_data_ptr<scalar_t>() : nullptr,
        boxes.device(), boxes.one, boxes.rows, g, C, K, pairing, gl.mutable_data_ptr<scalar_t>(),
        gu.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {gl, gu};
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CUDA, m) {
  m.impl("bidirectional_copy_paste", &copyPaste);
  m.impl("bidirectional_copy_paste_backward", &copyPasteBackward);
}

}  // namespace semiseg::ops::cuda
