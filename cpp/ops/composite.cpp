#include "ops/composite.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>

namespace semiseg::ops::composite {

namespace {
std::vector<int64_t> allDimsBut1(const at::Tensor& t) {
  std::vector<int64_t> d{0};
  for (int64_t i = 2; i < t.dim(); ++i) d.push_back(i);
  return d;
}
}  // namespace

CopyPaste bidirectionalCopyPaste(const at::Tensor& l, const at::Tensor& y, const at::Tensor& u, const at::Tensor& py,
                                 const at::Tensor& box, double alpha, Pairing pairing) {
  const int64_t N = l.size(0), nd = l.dim() - 2;
  const int64_t K = pairing == Pairing::Same ? N : N / 2;
  // M = 1 outside the box, 0 inside, one (1, *S) mask per mixed sample.
  auto shape = l.sizes().vec();
  shape[0] = K;
  shape[1] = 1;
  at::Tensor M = at::ones(shape, l.options());
  const at::Tensor b = box.to(at::kCPU, at::kLong);
  for (int64_t i = 0; i < K; ++i) {
    at::Tensor region = M[i][0];
    const int64_t row = b.size(0) == 1 ? 0 : i;
    for (int64_t d = 0; d < nd; ++d)
      region = region.narrow(d, b[row][d].item<int64_t>(), b[row][nd + d].item<int64_t>());
    region.zero_();
  }
  const int64_t inStart = pairing == Pairing::OutFirst ? K : 0, outStart = pairing == Pairing::InFirst ? K : 0;
  auto part = [&](const at::Tensor& t, int64_t s) { return t.narrow(0, s, K); };
  at::Tensor m = M.squeeze(1), outside = m == 1;
  CopyPaste r;
  r.mixedIn = part(u, inStart) * M + part(l, inStart) * (1 - M);
  r.targetIn = at::where(outside, part(py, inStart), part(y, inStart)).to(at::kLong);
  r.weightIn = m * alpha + (1 - m);
  r.mixedOut = part(l, outStart) * M + part(u, outStart) * (1 - M);
  r.targetOut = at::where(outside, part(y, outStart), part(py, outStart)).to(at::kLong);
  r.weightOut = m + (1 - m) * alpha;
  return r;
}

at::Tensor marginalAlign(const at::Tensor& p, const at::Tensor& piL, const at::Tensor& piU, double eps) {
  std::vector<int64_t> view(p.dim(), 1);
  view[1] = p.size(1);
  at::Tensor q = p * (piL / (piU + eps)).to(p.scalar_type()).view(view);
  return q / q.sum(1, true);
}

std::pair<at::Tensor, at::Tensor> classMarginals(const at::Tensor& p, const std::optional<at::Tensor>& mask) {
  if (!mask) return {p.mean(allDimsBut1(p)), at::full({}, p.numel() / p.size(1), p.options())};
  at::Tensor m = mask->unsqueeze(1).to(p.scalar_type());
  at::Tensor count = m.sum();
  return {(p * m).sum(allDimsBut1(p)) / at::clamp_min(count, 1), count};
}

OverExpectation overExpectationCe(const at::Tensor& logits, const at::Tensor& q, const at::Tensor& e) {
  const int64_t C = logits.size(1);
  at::Tensor yhat = at::argmax(q, 1);
  at::Tensor conf = q.gather(1, yhat.unsqueeze(1)).squeeze(1);
  at::Tensor keep =
      (conf >= e.to(q.scalar_type()).index_select(0, yhat.flatten()).view_as(conf)).to(logits.scalar_type());
  at::Tensor ce = at::cross_entropy_loss(logits, yhat, {}, at::Reduction::None);
  at::Tensor count = keep.sum();
  OverExpectation r;
  r.loss = (ce * keep).sum() / at::clamp_min(count, 1);
  r.count = count;
  at::Tensor classCount = at::zeros({C}, q.options()).index_add_(0, yhat.flatten(), at::ones_like(conf).flatten());
  r.classConfidence =
      at::zeros({C}, q.options()).index_add_(0, yhat.flatten(), conf.flatten()) / at::clamp_min(classCount, 1);
  r.classCount = classCount;
  return r;
}

}  // namespace semiseg::ops::composite
