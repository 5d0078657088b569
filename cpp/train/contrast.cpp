// Native pieces of ACTION's contrastive losses (spec 5): the ring-buffer update of a queue of teacher
// keys, in place, and the draws of the anco InfoNCE (hard queries and similarity-proportional negatives),
// which scan every pixel and make queries x negatives draws per class.
#include "tensor/ops.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace semiseg {

namespace {

// splitmix64: a small, fast generator with a fixed sequence per seed (the same draws on every machine).
struct SplitMix {
  uint64_t state;
  double uniform() {  // [0, 1)
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }
  int64_t below(int64_t n) {
    return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform() * static_cast<double>(n)));
  }
};

// (queue (K, D), keys (n, D), pointer) -> the new pointer; writes the keys at the pointer, wrapping around,
// as if one by one (of a batch larger than the queue, the last K survive).
Value queueEnqueue(const Args& a) {
  at::Tensor queue = a.tensor(0, "queue");
  const at::Tensor& keys = a.tensor(1, "keys");
  int64_t ptr = a.int64(2, "pointer");
  TORCH_CHECK(queue.dim() == 2 && keys.dim() == 2 && keys.size(1) == queue.size(1),
              "queueEnqueue(): argument 'keys' must be (n, ", queue.size(1), "), got ", keys.sizes());
  const int64_t K = queue.size(0), n = keys.size(0);
  TORCH_CHECK(K > 0 && ptr >= 0 && ptr < K, "queueEnqueue(): argument 'pointer' must be in [0, ", K, "), got ", ptr);
  at::NoGradGuard noGrad;
  int64_t done = 0;
  if (n > K) {
    ptr = (ptr + n - K) % K;
    done = n - K;
  }
  while (done < n) {
    const int64_t run = std::min(n - done, K - ptr);
    queue.narrow(0, ptr, run).copy_(keys.narrow(0, done, run));
    done += run;
    ptr = (ptr + run) % K;
  }
  return ptr;
}

// (labels (P) int64, valid (P) bool, probOfLabel (P), present, protoSim (K, K), queries, negatives,
//  hardThreshold, seed) -> [classes (n), queries_0 (Q), negatives_0 (Q * N), ...] for the n present classes
// with hard pixels: queries drawn with replacement among the hard valid pixels of the class; for each,
// N classes drawn from softmax(protoSim[k, j]) over the other present classes j, each a valid pixel of
// that class drawn uniformly with replacement.
Value ancoSample(const Args& a) {
  const at::Tensor labels = a.tensor(0, "labels").to(at::kCPU, at::kLong).contiguous();
  const at::Tensor valid = a.tensor(1, "valid").to(at::kCPU, at::kBool).contiguous();
  const at::Tensor prob = a.tensor(2, "probOfLabel").to(at::kCPU, at::kDouble).contiguous();
  const IntList present = a.ints(3, "present");
  const at::Tensor sim = a.tensor(4, "protoSim").to(at::kCPU, at::kDouble).contiguous();
  const int64_t Q = a.int64(5, "queries"), N = a.int64(6, "negatives");
  const double hardThreshold = a.f64(7, "hardThreshold");
  SplitMix rng{static_cast<uint64_t>(a.int64(8, "seed"))};
  const int64_t P = labels.numel(), K = static_cast<int64_t>(present.size());
  TORCH_CHECK(valid.numel() == P && prob.numel() == P, "ancoSample(): 'labels', 'valid' and 'probOfLabel' must have ",
              P, " values each, got ", valid.numel(), " and ", prob.numel());
  TORCH_CHECK(sim.dim() == 2 && sim.size(0) == K && sim.size(1) == K, "ancoSample(): argument 'protoSim' must be (", K,
              ", ", K, "), got ", sim.sizes());
  TORCH_CHECK(Q >= 1 && N >= 1, "ancoSample(): 'queries' and 'negatives' must be >= 1, got ", Q, " and ", N);
  int64_t classes = 0;
  for (auto c : present) classes = std::max(classes, c + 1);
  const int64_t* lp = labels.data_ptr<int64_t>();
  const bool* vp = valid.data_ptr<bool>();
  const double* pp = prob.data_ptr<double>();
  std::vector<std::vector<int64_t>> validOf(classes), hardOf(classes);
  for (int64_t i = 0; i < P; ++i) {
    const int64_t c = lp[i];
    if (!vp[i] || c < 0 || c >= classes) continue;
    validOf[c].push_back(i);
    if (pp[i] < hardThreshold) hardOf[c].push_back(i);
  }
  for (auto c : present) TORCH_CHECK(!validOf[c].empty(), "ancoSample(): present class ", c, " has no valid pixel");
  const double* sp = sim.data_ptr<double>();
  TensorList out;
  std::vector<int64_t> sampled;
  out.emplace_back();  // classes, filled below
  for (int64_t k = 0; k < K && K > 1; ++k) {
    const auto& hard = hardOf[present[k]];
    if (hard.empty()) continue;
    sampled.push_back(present[k]);
    at::Tensor q = at::empty({Q}, at::kLong), neg = at::empty({Q * N}, at::kLong);
    int64_t* qp = q.data_ptr<int64_t>();
    int64_t* np = neg.data_ptr<int64_t>();
    for (int64_t i = 0; i < Q; ++i) qp[i] = hard[rng.below(static_cast<int64_t>(hard.size()))];
    std::vector<int64_t> others;
    std::vector<double> cdf;
    double m = -INFINITY, z = 0;
    for (int64_t j = 0; j < K; ++j)
      if (j != k) m = std::max(m, sp[k * K + j]);
    for (int64_t j = 0; j < K; ++j) {
      if (j == k) continue;
      others.push_back(present[j]);
      z += std::exp(sp[k * K + j] - m);
      cdf.push_back(z);
    }
    for (auto& v : cdf) v /= z;
    for (int64_t i = 0; i < Q * N; ++i) {
      const double u = rng.uniform();
      size_t j = 0;
      while (j + 1 < cdf.size() && u >= cdf[j]) ++j;
      const auto& pool = validOf[others[j]];
      np[i] = pool[rng.below(static_cast<int64_t>(pool.size()))];
    }
    out.push_back(q);
    out.push_back(neg);
  }
  at::Tensor cls = at::empty({static_cast<int64_t>(sampled.size())}, at::kLong);
  for (size_t i = 0; i < sampled.size(); ++i) cls.data_ptr<int64_t>()[i] = sampled[i];
  out[0] = cls;
  return out;
}

}  // namespace

void registerContrastOps(OpTable& t) {
  t["queueEnqueue"] = queueEnqueue;
  t["ancoSample"] = ancoSample;
}

}  // namespace semiseg
