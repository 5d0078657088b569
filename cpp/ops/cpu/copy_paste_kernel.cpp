// CPU kernels of bidirectional_copy_paste and its backward: row by row (every axis but the last),
// each row is at most three contiguous segments (before, inside, after the box), copied with memcpy.
#include "ops/cpu/common.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <c10/util/accumulate.h>

#include <cstring>

namespace semiseg::ops::cpu {
namespace {

template <typename T>
void copySegments(T* dst, const T* inside, const T* outside, int64_t W, std::pair<int64_t, int64_t> seg) {
  auto [b, e] = seg;
  if (outside) {
    std::memcpy(dst, outside, b * sizeof(T));
    std::memcpy(dst + e, outside + e, (W - e) * sizeof(T));
  } else {
    std::fill(dst, dst + b, T(0));
    std::fill(dst + e, dst + W, T(0));
  }
  if (inside) {
    std::memcpy(dst + b, inside + b, (e - b) * sizeof(T));
  } else {
    std::fill(dst + b, dst + e, T(0));
  }
}

template <typename T>
void fillSegments(T* dst, T inside, T outside, int64_t W, std::pair<int64_t, int64_t> seg) {
  std::fill(dst, dst + seg.first, outside);
  std::fill(dst + seg.first, dst + seg.second, inside);
  std::fill(dst + seg.second, dst + W, outside);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> copyPaste(
    const at::Tensor& labeledIn, const at::Tensor& labelsIn, const at::Tensor& unlabeledIn, const at::Tensor& pseudoIn,
    const at::Tensor& box, double alpha, int64_t pairing) {
  TORCH_CHECK(labeledIn.dim() == 4 || labeledIn.dim() == 5, "bidirectional_copy_paste: images must be 4-D or 5-D");
  const at::Tensor l = labeledIn.contiguous(), u = unlabeledIn.contiguous();
  const at::Tensor y = labelsIn.to(at::kLong).contiguous(), py = pseudoIn.to(at::kLong).contiguous();
  const int64_t N = l.size(0), C = l.size(1), nd = l.dim() - 2;
  const int64_t K = pairing == 0 ? N : N / 2;
  const Boxes boxes(box, nd);
  const auto spatial = l.sizes().slice(2).vec();
  const int64_t W = spatial.back(), P = c10::multiply_integers(spatial), rows = W == 0 ? 0 : P / W;
  auto imgShape = l.sizes().vec(), lblShape = y.sizes().vec();
  imgShape[0] = lblShape[0] = K;
  at::Tensor mixIn = at::empty(imgShape, l.options()), mixOut = at::empty(imgShape, l.options());
  at::Tensor tIn = at::empty(lblShape, y.options()), tOut = at::empty(lblShape, y.options());
  at::Tensor wIn = at::empty(lblShape, l.options()), wOut = at::empty(lblShape, l.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.scalar_type(), "bidirectional_copy_paste", [&] {
    const scalar_t *lp = l.data_ptr<scalar_t>(), *up = u.data_ptr<scalar_t>();
    const int64_t *yp = y.data_ptr<int64_t>(), *pp = py.data_ptr<int64_t>();
    scalar_t *mi = mixIn.data_ptr<scalar_t>(), *mo = mixOut.data_ptr<scalar_t>();
    scalar_t *wi = wIn.data_ptr<scalar_t>(), *wo = wOut.data_ptr<scalar_t>();
    int64_t *ti = tIn.data_ptr<int64_t>(), *to = tOut.data_ptr<int64_t>();
    const auto a = static_cast<scalar_t>(alpha);
    at::parallel_for(0, K * rows, std::max<int64_t>(1, 4096 / W), [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t i = k / rows, r = k % rows;
        const int64_t si = sourceIn(pairing, i, K), so = sourceOut(pairing, i, K);
        const auto seg = boxes.segment(i, r, spatial.data());
        for (int64_t c = 0; c < C; ++c) {
          const int64_t dst = (i * C + c) * P + r * W;
          copySegments(mi + dst, lp + (si * C + c) * P + r * W, up + (si * C + c) * P + r * W, W, seg);
          copySegments(mo + dst, up + (so * C + c) * P + r * W, lp + (so * C + c) * P + r * W, W, seg);
        }
        const int64_t dst = i * P + r * W;
        copySegments(ti + dst, yp + si * P + r * W, pp + si * P + r * W, W, seg);
        copySegments(to + dst, pp + so * P + r * W, yp + so * P + r * W, W, seg);
        fillSegments(wi + dst, scalar_t(1), a, W, seg);
        fillSegments(wo + dst, a, scalar_t(1), W, seg);
      }
    });
  });
  return {mixIn, tIn, wIn, mixOut, tOut, wOut};
}

std::tuple<at::Tensor, at::Tensor> copyPasteBackward(const at::Tensor& gradInArg, const at::Tensor& gradOutArg,
                                                     const at::Tensor& box, int64_t pairing, int64_t batch) {
  const at::Tensor gi = gradInArg.contiguous(), go = gradOutArg.contiguous();
  const int64_t K = gi.size(0), C = gi.size(1), nd = gi.dim() - 2, N = batch;
  const Boxes boxes(box, nd);
  const auto spatial = gi.sizes().slice(2).vec();
  const int64_t W = spatial.back(), P = c10::multiply_integers(spatial), rows = W == 0 ? 0 : P / W;
  auto shape = gi.sizes().vec();
  shape[0] = N;
  at::Tensor gl = at::empty(shape, gi.options()), gu = at::empty(shape, gi.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gi.scalar_type(), "bidirectional_copy_paste_backward", [&] {
    const scalar_t *gip = gi.data_ptr<scalar_t>(), *gop = go.data_ptr<scalar_t>();
    scalar_t *glp = gl.data_ptr<scalar_t>(), *gup = gu.data_ptr<scalar_t>();
    at::parallel_for(0, N * rows, std::max<int64_t>(1, 4096 / W), [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t n = k / rows, r = k % rows;
        // The mixed samples reading source n: in-mix index and out-mix index, or -1.
        int64_t in = -1, out = -1;
        if (pairing == 0) {
          in = out = n;
        } else if ((pairing == 1) == (n < K)) {
          in = n % K;
        } else {
          out = n % K;
        }
        const int64_t i = in >= 0 ? in : out;
        const auto seg = boxes.segment(i, r, spatial.data());
        for (int64_t c = 0; c < C; ++c) {
          const int64_t dst = (n * C + c) * P + r * W;
          const scalar_t* fromIn = in >= 0 ? gip + (in * C + c) * P + r * W : nullptr;
          const scalar_t* fromOut = out >= 0 ? gop + (out * C + c) * P + r * W : nullptr;
          copySegments(glp + dst, fromIn, fromOut, W, seg);  // labeled: inside of the in-mix, outside of the out-mix
          copySegments(gup + dst, fromOut, fromIn, W, seg);  // unlabeled: the complement
        }
      }
    });
  });
  return {gl, gu};
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CPU, m) {
  m.impl("bidirectional_copy_paste", &copyPaste);
  m.impl("bidirectional_copy_paste_backward", &copyPasteBackward);
}

}  // namespace semiseg::ops::cpu
