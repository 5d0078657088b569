// bidirectionalCopyPaste: argument checks and the call of semiseg::bidirectional_copy_paste.
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

#include <ATen/ops/_to_copy.h>
#include <c10/util/Exception.h>

namespace semiseg::ops {

using CopyPasteSig = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double, int64_t);

CopyPaste bidirectionalCopyPaste(const at::Tensor& labeled, const at::Tensor& labels, const at::Tensor& unlabeled,
                                 const at::Tensor& pseudoLabels, const at::Tensor& box, double alpha, Pairing pairing) {
  constexpr const char* op = "bidirectionalCopyPaste";
  checkScores(op, "labeled", labeled);
  checkLike(op, "unlabeled", unlabeled, "labeled", labeled);
  checkLabels(op, "labels", labels, labeled, false);
  checkLabels(op, "pseudoLabels", pseudoLabels, labeled, false);
  TORCH_CHECK(alpha >= 0 && alpha <= 1, op, "(): option 'alpha' must be in [0, 1], got ", alpha);
  const int64_t N = labeled.size(0), nd = labeled.dim() - 2;
  TORCH_CHECK(pairing == Pairing::Same || N % 2 == 0, op,
              "(): pairing by halves needs an even batch, got 'labeled' with N = ", N);
  const int64_t K = pairing == Pairing::Same ? N : N / 2;
  TORCH_CHECK(at::isIntegralType(box.scalar_type(), false), op, "(): argument 'box' must hold integers, got ",
              box.scalar_type());
  TORCH_CHECK(box.dim() == 2 && box.size(1) == 2 * nd && (box.size(0) == 1 || box.size(0) == K), op,
              "(): argument 'box' must be (1, ", 2 * nd, ") or (", K, ", ", 2 * nd,
              ") rows of [start..., size...] for ", nd, "-D images, got shape ", box.sizes());
  const at::Tensor cpuBox = box.to(at::kCPU, at::kLong).contiguous();
  const int64_t* b = cpuBox.data_ptr<int64_t>();
  for (int64_t r = 0; r < cpuBox.size(0); ++r) {
    for (int64_t d = 0; d < nd; ++d) {
      const int64_t start = b[r * 2 * nd + d], size = b[r * 2 * nd + nd + d], len = labeled.size(2 + d);
      TORCH_CHECK(start >= 0 && size >= 0 && start + size <= len, op, "(): argument 'box' row ", r,
                  " must lie inside the image: on spatial axis ", d, " (size ", len, ") it spans [", start, ", ",
                  start + size, ")");
    }
  }
  auto [mi, ti, wi, mo, to, wo] =
      opHandle<CopyPasteSig>("semiseg::bidirectional_copy_paste")
          .call(labeled, labels, unlabeled, pseudoLabels, cpuBox, alpha, static_cast<int64_t>(pairing));
  return {mi, ti, wi, mo, to, wo};
}

}  // namespace semiseg::ops
