// CPU kernels of the region-weighted CE + Dice loss: one pass of sums (_ce_dice_stats) and one pass
// for the gradient of the logits (_ce_dice_backward), both over tiles of one sample's pixels.
#include "ops/cpu/softmax_tile.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

namespace semiseg::ops::cpu {
namespace {

std::tuple<at::Tensor, at::Tensor> ceDiceStats(const at::Tensor& logitsIn, const at::Tensor& targetIn,
                                               const std::optional<at::Tensor>& weightsIn, bool squared,
                                               bool perSample) {
  const at::Tensor x = logitsIn.contiguous(), t = targetIn.to(at::kLong).contiguous();
  const at::Tensor w = weightsIn ? weightsIn->to(x.scalar_type()).contiguous() : at::Tensor();
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / std::max<int64_t>(1, N * C);
  const int64_t G = perSample ? N : 1, width = G * 3 * C + 2;
  at::Tensor classStats = at::zeros({G, 3, C}, x.options().dtype(accType(x.scalar_type())));
  at::Tensor ceStats = at::zeros({2}, classStats.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "_ce_dice_stats", [&] {
    using A = Acc<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = w.defined() ? w.data_ptr<scalar_t>() : nullptr;
    const int64_t* tp = t.data_ptr<int64_t>();
    std::vector<A> partial(at::get_num_threads() * width, A(0));
    const int64_t chunks = forChunks(N * P, 2 * kTile, [&](int64_t chunk, int64_t b, int64_t e) {
      A* acc = partial.data() + chunk * width;
      SoftmaxTile<scalar_t> tile(C);
      A wt[kTile];
      forTiles(b, e, P, [&](int64_t n, int64_t s0, int64_t s1) {
        const int64_t len = s1 - s0;
        int32_t lbl[kTile];
        tileLabels(tp + n * P + s0, len, C, lbl, "regionWeightedCeDice");
        tile.load(xp, n, s0, s1, P, lbl);
        for (int64_t j = 0; j < len; ++j) wt[j] = wp ? static_cast<A>(wp[n * P + s0 + j]) : A(1);
        A* inter = acc + (perSample ? n : 0) * 3 * C;
        A* pSum = inter + C;
        A* ySum = inter + 2 * C;
        weightedCeSums(wt, tile.lse.data(), tile.xt.data(), len, acc[width - 2], acc[width - 1]);
        for (int32_t c = 0; c < C; ++c) {
          diceSums(lbl, wt, tile.p.data() + c * kTile, c, len, squared, inter[c], ySum[c], pSum[c]);
        }
      });
    });
    A* cs = classStats.data_ptr<A>();
    A* ces = ceStats.data_ptr<A>();
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const A* acc = partial.data() + chunk * width;
      for (int64_t k = 0; k < G * 3 * C; ++k) cs[k] += acc[k];
      ces[0] += acc[width - 2];
      ces[1] += acc[width - 1];
    }
  });
  return {classStats, ceStats};
}

at::Tensor ceDiceBackward(const at::Tensor& logitsIn, const at::Tensor& targetIn,
                          const std::optional<at::Tensor>& weightsIn, const at::Tensor& coeffsIn, bool squared,
                          bool perSample) {
  const at::Tensor x = logitsIn.contiguous(), t = targetIn.to(at::kLong).contiguous();
  const at::Tensor w = weightsIn ? weightsIn->to(x.scalar_type()).contiguous() : at::Tensor();
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / std::max<int64_t>(1, N * C);
  const at::Tensor coeffs = coeffsIn.to(at::kCPU, accType(x.scalar_type())).contiguous();
  at::Tensor grad = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "_ce_dice_backward", [&] {
    using A = Acc<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = w.defined() ? w.data_ptr<scalar_t>() : nullptr;
    const int64_t* tp = t.data_ptr<int64_t>();
    const A* co = coeffs.data_ptr<A>();
    const A k = co[coeffs.numel() - 1];
    scalar_t* gp = grad.data_ptr<scalar_t>();
    at::parallel_for(0, N * P, 2 * kTile, [&](int64_t b, int64_t e) {
      SoftmaxTile<scalar_t> tile(C);
      std::vector<A> g(C * kTile);
      A wt[kTile], dot[kTile];
      int32_t lbl[kTile];  // 32-bit labels: compared with 32-bit class ids, the loops below vectorise
      forTiles(b, e, P, [&](int64_t n, int64_t s0, int64_t s1) {
        const int64_t len = s1 - s0;
        for (int64_t j = 0; j < len; ++j) lbl[j] = static_cast<int32_t>(tp[n * P + s0 + j]);
        tile.load(xp, n, s0, s1, P);
        const A* a = co + (perSample ? n : 0) * 2 * C;
        const A* bb = a + C;
        for (int64_t j = 0; j < len; ++j) {
          wt[j] = wp ? static_cast<A>(wp[n * P + s0 + j]) : A(1);
          dot[j] = 0;
        }
        for (int32_t c = 0; c < C; ++c) {
          const A* __restrict pc = tile.p.data() + c * kTile;
          A* __restrict gc = g.data() + c * kTile;
          const A ac = a[c], bc = bb[c];
          for (int64_t j = 0; j < len; ++j) {
            const A yc = lbl[j] == c ? A(1) : A(0);
            gc[j] = wt[j] * (bc * (squared ? 2 * pc[j] : A(1)) + ac * yc);
            dot[j] += pc[j] * gc[j];
          }
        }
        for (int32_t c = 0; c < C; ++c) {
          const A* __restrict pc = tile.p.data() + c * kTile;
          const A* __restrict gc = g.data() + c * kTile;
          scalar_t* __restrict out = gp + (n * C + c) * P + s0;
          for (int64_t j = 0; j < len; ++j) {
            const A y = lbl[j] == c ? A(1) : A(0);
            out[j] = static_cast<scalar_t>(pc[j] * (gc[j] - dot[j]) + k * wt[j] * (pc[j] - y));
          }
        }
      });
    });
  });
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(semiseg, CPU, m) {
  m.impl("_ce_dice_stats", &ceDiceStats);
  m.impl("_ce_dice_backward", &ceDiceBackward);
}

}  // namespace semiseg::ops::cpu
