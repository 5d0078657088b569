// CPU kernels of Co-DA's over-expectation cross-entropy: pseudo-labels and confidences from the
// aligned probabilities, the kept pixels' CE sums and per-class confidence sums in one pass, and the
// gradient of the logits in a second.
#include "ops/cpu/softmax_tile.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

namespace semiseg::ops::cpu {
namespace {

// yhat (first maximum), conf and keep (1 or 0) of each pixel of a tile of the aligned probabilities.
template <typename T>
void pseudoLabels(const T* q, int64_t n, int64_t s0, int64_t s1, int64_t C, int64_t P, const Acc<T>* expect,
                  int32_t* __restrict yhat, Acc<T>* __restrict conf, Acc<T>* __restrict keep) {
  using A = Acc<T>;
  const int64_t len = s1 - s0;
  const T* q0 = q + n * C * P + s0;
  for (int64_t j = 0; j < len; ++j) {
    yhat[j] = 0;
    conf[j] = static_cast<A>(q0[j]);
  }
  for (int32_t c = 1; c < C; ++c) {
    const T* __restrict qc = q0 + c * P;
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) {
      // Arithmetic rather than a select on yhat: gcc does not if-convert an int select on a float compare.
      const A v = static_cast<A>(qc[j]), cur = conf[j];
      const int32_t gt = v > cur;
      conf[j] = v > cur ? v : cur;
      yhat[j] += gt * (c - yhat[j]);
    }
  }
  A thr[kTile];
  for (int64_t j = 0; j < len; ++j) thr[j] = expect[0];
  for (int32_t c = 1; c < C; ++c) {
    const A ec = expect[c];
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) thr[j] = yhat[j] == c ? ec : thr[j];
  }
  for (int64_t j = 0; j < len; ++j) keep[j] = conf[j] >= thr[j] ? A(1) : A(0);
}

std::tuple<at::Tensor, at::Tensor> oeStats(const at::Tensor& logitsIn, const at::Tensor& alignedIn,
                                           const at::Tensor& expectIn) {
  const at::Tensor x = logitsIn.contiguous(), q = alignedIn.to(x.scalar_type()).contiguous();
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / std::max<int64_t>(1, N * C);
  const auto acc = accType(x.scalar_type());
  const at::Tensor expect = expectIn.to(at::kCPU, acc).contiguous();
  at::Tensor stats = at::zeros({2}, x.options().dtype(acc)), classStats = at::zeros({2, C}, stats.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "_over_expectation_ce_stats", [&] {
    using A = Acc<scalar_t>;
    const scalar_t *xp = x.data_ptr<scalar_t>(), *qp = q.data_ptr<scalar_t>();
    const A* ep = expect.data_ptr<A>();
    const int64_t width = 2 * C + 2;
    std::vector<A> partial(at::get_num_threads() * width, A(0));
    const int64_t chunks = forChunks(N * P, 2 * kTile, [&](int64_t chunk, int64_t b, int64_t e) {
      A* sums = partial.data() + chunk * width;
      SoftmaxTile<scalar_t> tile(C);
      int32_t yhat[kTile];
      A conf[kTile], keep[kTile];
      forTiles(b, e, P, [&](int64_t n, int64_t s0, int64_t s1) {
        const int64_t len = s1 - s0;
        pseudoLabels(qp, n, s0, s1, C, P, ep, yhat, conf, keep);
        tile.load(xp, n, s0, s1, P, yhat);
        weightedCeSums(keep, tile.lse.data(), tile.xt.data(), len, sums[0], sums[1]);
        for (int32_t c = 0; c < C; ++c) labelSums(yhat, conf, c, len, sums[2 + c], sums[2 + C + c]);
      });
    });
    A *sp = stats.data_ptr<A>(), *cp = classStats.data_ptr<A>();
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const A* sums = partial.data() + chunk * width;
      sp[0] += sums[0];
      sp[1] += sums[1];
      for (int64_t k = 0; k < 2 * C; ++k) cp[k] += sums[2 + k];
    }
  });
  return {stats, classStats};
}

at::Tensor oeBackward(const at::Tensor& logitsIn, const at::Tensor& alignedIn, const at::Tensor& expectIn,
                      const at::Tensor& scaleIn) {
  const at::Tensor x = logitsIn.contiguous(), q = alignedIn.to(x.scalar_type()).contiguous();
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / std::max<int64_t>(1, N * C);
  const auto acc = accType(x.scalar_type());
  const at::Tensor expect = expectIn.to(at::kCPU, acc).contiguous();
  at::Tensor grad = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "_over_expectation_ce_backward", [&] {
    using A = Acc<scalar_t>;
    const scalar_t *xp = x.data_ptr<scalar_t>(), *qp = q.data_ptr<scalar_t>();
    const A* ep = expect.data_ptr<A>();
    const A scale = scaleIn.to(at::kCPU, acc).item<A>();
    scalar_t* gp = grad.data_ptr<scalar_t>();
    at::parallel_for(0, N * P, 2 * kTile, [&](int64_t b, int64_t e) {
      SoftmaxTile<scalar_t> tile(C);
      int32_t yhat[kTile];
      A conf[kTile], keep[kTile];
      forTiles(b, e, P, [&](int64_t n, int64_t s0, int64_t s1) {
        const int64_t len = s1 - s0;
        pseudoLabels(qp, n, s0, s1, C, P, ep, yhat, conf, keep);
        tile.load(xp, n, s0, s1, P);
        for (int64_t j = 0; j < len; ++j) keep[j] *= scale;
        for (int32_t c = 0; c < C; ++c) {
          weightedCeGrad(gp + (n * C + c) * P + s0, keep, tile.p.data() + c * kTile, yhat, c, len);
        }
      });
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CPU, m) {
  m.impl("_over_expectation_ce_stats", &oeStats);
  m.impl("_over_expectation_ce_backward", &oeBackward);
}

}  // namespace semiseg::ops::cpu
