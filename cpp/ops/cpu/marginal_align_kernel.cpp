// CPU kernels of Co-DA's class-wise marginal alignment (q = p r / sum p r per pixel), its backward,
// and the masked per-class sums of probabilities behind the marginal EMAs.
#include "ops/cpu/common.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

namespace semiseg::ops::cpu {
namespace {

// Runs fn(n, s0, s1, ratio, scale) with scale[j] = 1 / sum_c p_c r_c on each tile of probs.
template <typename T, typename F>
void forScaledTiles(const at::Tensor& probs, const at::Tensor& ratioIn, const F& fn) {
  using A = Acc<T>;
  const int64_t N = probs.size(0), C = probs.size(1), P = probs.numel() / std::max<int64_t>(1, N * C);
  const at::Tensor ratio = ratioIn.to(at::kCPU, accType(probs.scalar_type())).contiguous();
  const A* r = ratio.data_ptr<A>();
  const T* pp = probs.data_ptr<T>();
  at::parallel_for(0, N * P, 2 * kTile, [&](int64_t b, int64_t e) {
    A scale[kTile];
    forTiles(b, e, P, [&](int64_t n, int64_t s0, int64_t s1) {
      const int64_t len = s1 - s0;
      std::fill(scale, scale + len, A(0));
      for (int64_t c = 0; c < C; ++c) {
        const T* pc = pp + (n * C + c) * P + s0;
        for (int64_t j = 0; j < len; ++j) scale[j] += static_cast<A>(pc[j]) * r[c];
      }
      for (int64_t j = 0; j < len; ++j) scale[j] = A(1) / scale[j];
      fn(n, s0, s1, r, scale);
    });
  });
}

at::Tensor marginalAlign(const at::Tensor& probsIn, const at::Tensor& ratio) {
  const at::Tensor p = probsIn.contiguous();
  at::Tensor q = at::empty_like(p);
  const int64_t N = p.size(0), C = p.size(1), P = p.numel() / std::max<int64_t>(1, N * C);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "_marginal_align", [&] {
    using A = Acc<scalar_t>;
    const scalar_t* pp = p.data_ptr<scalar_t>();
    scalar_t* qp = q.data_ptr<scalar_t>();
    forScaledTiles<scalar_t>(p, ratio, [&](int64_t n, int64_t s0, int64_t s1, const A* r, const A* scale) {
      for (int64_t c = 0; c < C; ++c) {
        const int64_t o = (n * C + c) * P + s0;
        for (int64_t j = 0; j < s1 - s0; ++j) qp[o + j] = static_cast<scalar_t>(pp[o + j] * r[c] * scale[j]);
      }
    });
  });
  return q;
}

at::Tensor marginalAlignBackward(const at::Tensor& gradIn, const at::Tensor& probsIn, const at::Tensor& ratio) {
  const at::Tensor p = probsIn.contiguous(), g = gradIn.contiguous();
  at::Tensor out = at::empty_like(p);
  const int64_t N = p.size(0), C = p.size(1), P = p.numel() / std::max<int64_t>(1, N * C);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "_marginal_align_backward", [&] {
    using A = Acc<scalar_t>;
    const scalar_t *pp = p.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    forScaledTiles<scalar_t>(p, ratio, [&](int64_t n, int64_t s0, int64_t s1, const A* r, const A* scale) {
      const int64_t len = s1 - s0;
      A dot[kTile] = {};  // sum_c g_c q_c
      for (int64_t c = 0; c < C; ++c) {
        const int64_t o = (n * C + c) * P + s0;
        for (int64_t j = 0; j < len; ++j) dot[j] += static_cast<A>(gp[o + j]) * pp[o + j] * r[c] * scale[j];
      }
      for (int64_t c = 0; c < C; ++c) {
        const int64_t o = (n * C + c) * P + s0;
        for (int64_t j = 0; j < len; ++j) {
          op[o + j] = static_cast<scalar_t>(r[c] * scale[j] * (static_cast<A>(gp[o + j]) - dot[j]));
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> classMarginalSums(const at::Tensor& probsIn,
                                                     const std::optional<at::Tensor>& maskIn) {
  const at::Tensor p = probsIn.contiguous();
  const at::Tensor mask = maskIn ? maskIn->to(at::kBool).contiguous() : at::Tensor();
  const int64_t N = p.size(0), C = p.size(1), P = p.numel() / std::max<int64_t>(1, N * C);
  at::Tensor sums = at::zeros({C}, p.options().dtype(accType(p.scalar_type())));
  at::Tensor count = at::zeros({}, sums.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "_class_marginal_sums", [&] {
    using A = Acc<scalar_t>;
    const scalar_t* pp = p.data_ptr<scalar_t>();
    const bool* mp = mask.defined() ? mask.data_ptr<bool>() : nullptr;
    std::vector<A> partial(at::get_num_threads() * (C + 1), A(0));
    const int64_t chunks = forChunks(N * P, 4 * kTile, [&](int64_t chunk, int64_t b, int64_t e) {
      A* acc = partial.data() + chunk * (C + 1);
      forTiles(b, e, P, [&](int64_t n, int64_t s0, int64_t s1) {
        const int64_t len = s1 - s0;
        const bool* m = mp ? mp + n * P + s0 : nullptr;
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* pc = pp + (n * C + c) * P + s0;
          A s = 0;
          for (int64_t j = 0; j < len; ++j) s += m && !m[j] ? A(0) : static_cast<A>(pc[j]);
          acc[c] += s;
        }
        A k = len;
        if (m) k = static_cast<A>(std::count(m, m + len, true));
        acc[C] += k;
      });
    });
    A *sp = sums.data_ptr<A>(), *cp = count.data_ptr<A>();
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      for (int64_t c = 0; c < C; ++c) sp[c] += partial[chunk * (C + 1) + c];
      *cp += partial[chunk * (C + 1) + C];
    }
  });
  return {sums, count};
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CPU, m) {
  m.impl("_marginal_align", &marginalAlign);
  m.impl("_marginal_align_backward", &marginalAlignBackward);
  m.impl("_class_marginal_sums", &classMarginalSums);
}

}  // namespace semiseg::ops::cpu
