// marginalAlign and classMarginals: argument checks, the ratio pi_l / (pi_u + eps) and the
// CompositeExplicitAutograd kernels of semiseg::marginal_align and semiseg::class_marginals.
#include "ops/checks.h"
#include "ops/dispatch.h"
#include "ops/ops.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

namespace semiseg::ops {

namespace {
using AlignSig = at::Tensor(const at::Tensor&, const at::Tensor&);
using SumsSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const std::optional<at::Tensor>&);

at::Tensor alignRatio(const at::Tensor& probs, const at::Tensor& piL, const at::Tensor& piU, double eps) {
  const auto acc = probs.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return piL.to(probs.device(), acc) / (piU.to(probs.device(), acc) + eps);
}

at::Tensor marginalAlignComposite(const at::Tensor& probs, const at::Tensor& piL, const at::Tensor& piU, double eps) {
  return opHandle<AlignSig>("semiseg::_marginal_align").call(probs, alignRatio(probs, piL, piU, eps));
}

std::tuple<at::Tensor, at::Tensor> classMarginalsComposite(const at::Tensor& probs,
                                                           const std::optional<at::Tensor>& mask) {
  auto [sums, count] = opHandle<SumsSig>("semiseg::_class_marginal_sums").call(probs, mask);
  return {sums / at::clamp_min(count, 1), count};
}
}  // namespace

// Shared with the autograd wrapper.
at::Tensor marginalAlignRatio(const at::Tensor& probs, const at::Tensor& piL, const at::Tensor& piU, double eps) {
  return alignRatio(probs, piL, piU, eps);
}

TORCH_LIBRARY_IMPL(semiseg, CompositeExplicitAutograd, m) {
  m.impl("marginal_align", &marginalAlignComposite);
  m.impl("class_marginals", &classMarginalsComposite);
}

at::Tensor marginalAlign(const at::Tensor& probs, const at::Tensor& labeledMarginal,
                         const at::Tensor& unlabeledMarginal, double eps) {
  constexpr const char* op = "marginalAlign";
  checkScores(op, "input", probs);
  checkPerClass(op, "labeledMarginal", labeledMarginal, probs.size(1));
  checkPerClass(op, "unlabeledMarginal", unlabeledMarginal, probs.size(1));
  TORCH_CHECK(eps > 0, op, "(): option 'eps' must be > 0, got ", eps);
  using Sig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double);
  return opHandle<Sig>("semiseg::marginal_align").call(probs, labeledMarginal, unlabeledMarginal, eps);
}

std::pair<at::Tensor, at::Tensor> classMarginals(const at::Tensor& probs, const std::optional<at::Tensor>& mask) {
  constexpr const char* op = "classMarginals";
  checkScores(op, "input", probs);
  if (mask) checkPixelMap(op, "mask", *mask, probs);
  using Sig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const std::optional<at::Tensor>&);
  // The marginals are constants for every backward (the spec's EMAs): never part of a graph.
  std::optional<at::Tensor> m;
  if (mask) m = mask->detach();
  auto [means, count] = opHandle<Sig>("semiseg::class_marginals").call(probs.detach(), m);
  return {means, count};
}

}  // namespace semiseg::ops
