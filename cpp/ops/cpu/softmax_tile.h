// One tile of pixels of one sample, softmaxed in the accumulation type: the kernels of the fused losses
// load (C, tile) logits once and work on probabilities, log-sum-exp and labels from here.
#pragma once

#include "ops/cpu/common.h"

#include <cmath>
#include <vector>

namespace semiseg::ops::cpu {

template <typename T>
struct SoftmaxTile {
  using A = Acc<T>;
  int64_t C;
  std::vector<A> p;    // (C, kTile) probabilities
  std::vector<A> lse;  // (kTile) log-sum-exp of the logits
  std::vector<A> xt;   // (kTile) the logit of the label (when labels are given)

  explicit SoftmaxTile(int64_t classes) : C(classes), p(classes * kTile), lse(kTile), xt(kTile) {}

  // Softmax of x[(n * C + c) * P + s] for s in [s0, s1); labels (when not null) pick xt.
  void load(const T* x, int64_t n, int64_t s0, int64_t s1, int64_t P, const int64_t* labels = nullptr) {
    const int64_t len = s1 - s0;
    A* m = lse.data();
    for (int64_t j = 0; j < len; ++j) m[j] = static_cast<A>(x[n * C * P + s0 + j]);
    for (int64_t c = 1; c < C; ++c) {
      const T* xc = x + (n * C + c) * P + s0;
      for (int64_t j = 0; j < len; ++j) m[j] = std::max(m[j], static_cast<A>(xc[j]));
    }
    A sum[kTile] = {};
    for (int64_t c = 0; c < C; ++c) {
      const T* xc = x + (n * C + c) * P + s0;
      A* pc = p.data() + c * kTile;
      for (int64_t j = 0; j < len; ++j) {
        pc[j] = std::exp(static_cast<A>(xc[j]) - m[j]);
        sum[j] += pc[j];
      }
    }
    for (int64_t j = 0; j < len; ++j) {
      const A inv = A(1) / sum[j];
      for (int64_t c = 0; c < C; ++c) p[c * kTile + j] *= inv;
    }
    if (labels) {
      for (int64_t j = 0; j < len; ++j) xt[j] = static_cast<A>(x[(n * C + labels[j]) * P + s0 + j]);
    }
    for (int64_t j = 0; j < len; ++j) lse[j] = m[j] + std::log(sum[j]);
  }
};

// Reads and checks the labels of one tile: every label in [0, C).
inline void checkLabels(const int64_t* t, int64_t len, int64_t C, const char* op) {
  for (int64_t j = 0; j < len; ++j) {
    TORCH_CHECK(t[j] >= 0 && t[j] < C, op, "(): argument 'target' must hold labels in [0, ", C, "), got ", t[j]);
  }
}

}  // namespace semiseg::ops::cpu
