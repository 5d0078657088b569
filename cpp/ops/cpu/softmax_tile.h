// One tile of pixels of one sample, softmaxed in the accumulation type: the kernels of the fused losses
// load (C, tile) logits once and work on probabilities, log-sum-exp and labels from here. Loops run
// class by class over the tile's pixels, so they read memory sequentially and vectorise; exp and log go
// through vec_math (AVX2 + Sleef when the CPU has it). Labels are 32-bit inside tiles: compared with
// 32-bit class ids, the per-class selects vectorise too. (Selects read their operands into locals
// first: gcc does not if-convert `a[j] = cond ? b : a[j]`.)
#pragma once

#include "ops/cpu/common.h"
#include "ops/cpu/vec_math.h"

#include <cmath>
#include <type_traits>
#include <vector>

namespace semiseg::ops::cpu {

template <typename T>
struct SoftmaxTile {
  using A = Acc<T>;
  int64_t C;
  std::vector<A> p;    // (C, kTile) probabilities
  std::vector<A> lse;  // (kTile) log-sum-exp of the logits
  std::vector<A> xt;   // (kTile) the logit of the label (when labels are given)
  std::vector<A> mx;   // (kTile) the largest logit
  std::vector<A> sum;  // (kTile) sum of exp(x - mx)

  explicit SoftmaxTile(int64_t classes)
      : C(classes), p(classes * kTile), lse(kTile), xt(kTile), mx(kTile), sum(kTile) {}

  // Softmax of x[(n * C + c) * P + s] for s in [s0, s1); labels (when not null) pick xt.
  void load(const T* x, int64_t n, int64_t s0, int64_t s1, int64_t P, const int32_t* labels = nullptr) {
    const int64_t len = s1 - s0;
    A* __restrict m = mx.data();
    A* __restrict z = sum.data();
    const T* x0 = x + n * C * P + s0;
    for (int64_t j = 0; j < len; ++j) m[j] = static_cast<A>(x0[j]);
    for (int64_t c = 1; c < C; ++c) {
      const T* __restrict xc = x0 + c * P;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        const A v = static_cast<A>(xc[j]), cur = m[j];
        m[j] = v > cur ? v : cur;
      }
    }
    for (int64_t j = 0; j < len; ++j) z[j] = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T* __restrict xc = x0 + c * P;
      A* __restrict pc = p.data() + c * kTile;
      if constexpr (std::is_same_v<T, float>) {
        expShifted(pc, xc, m, len);
      } else {
        for (int64_t j = 0; j < len; ++j) pc[j] = std::exp(static_cast<A>(xc[j]) - m[j]);
      }
      for (int64_t j = 0; j < len; ++j) z[j] += pc[j];
    }
    A inv[kTile];
    for (int64_t j = 0; j < len; ++j) inv[j] = A(1) / z[j];
    for (int64_t c = 0; c < C; ++c) {
      A* __restrict pc = p.data() + c * kTile;
      for (int64_t j = 0; j < len; ++j) pc[j] *= inv[j];
    }
    if (labels) {
      A* __restrict t = xt.data();
      for (int64_t j = 0; j < len; ++j) t[j] = static_cast<A>(x0[j]);
      for (int32_t c = 1; c < C; ++c) {
        const T* __restrict xc = x0 + c * P;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          const A v = static_cast<A>(xc[j]), cur = t[j];
          t[j] = labels[j] == c ? v : cur;
        }
      }
    }
    if constexpr (std::is_same_v<A, float>) {
      logShifted(lse.data(), z, m, len);
    } else {
      for (int64_t j = 0; j < len; ++j) lse[j] = m[j] + std::log(z[j]);
    }
  }
};

// Copies one tile's labels to 32 bits, checking every label is in [0, C).
inline void tileLabels(const int64_t* t, int64_t len, int64_t C, int32_t* out, const char* op) {
  bool ok = true;
  for (int64_t j = 0; j < len; ++j) {
    ok &= (t[j] >= 0) & (t[j] < C);
    out[j] = static_cast<int32_t>(t[j]);
  }
  if (!ok) {
    for (int64_t j = 0; j < len; ++j) {
      TORCH_CHECK(t[j] >= 0 && t[j] < C, op, "(): argument 'target' must hold labels in [0, ", C, "), got ", t[j]);
    }
  }
}

// Tile sums shared by the loss kernels. They live outside the kernels' AT_DISPATCH lambdas so they can
// carry `#pragma omp simd reduction` (a directive cannot sit inside a macro argument): vectorised sums
// in an order fixed per build.

// ce += sum_j w_j * (lse_j - xt_j); ws += sum_j w_j.
template <typename A>
inline void weightedCeSums(const A* __restrict w, const A* __restrict lse, const A* __restrict xt, int64_t len, A& ce,
                           A& ws) {
  A s = 0, t = 0;
#pragma omp simd reduction(+ : s, t)
  for (int64_t j = 0; j < len; ++j) {
    s += w[j] * (lse[j] - xt[j]);
    t += w[j];
  }
  ce += s;
  ws += t;
}

// Over the pixels labelled c: sum += sum_j v_j and count += their number.
template <typename A>
inline void labelSums(const int32_t* __restrict lbl, const A* __restrict v, int32_t c, int64_t len, A& sum, A& count) {
  A s = 0, t = 0;
#pragma omp simd reduction(+ : s, t)
  for (int64_t j = 0; j < len; ++j) {
    const A y = lbl[j] == c ? A(1) : A(0);
    s += y * v[j];
    t += y;
  }
  sum += s;
  count += t;
}

// The Dice sums of class c in one pass: inter += sum_{lbl_j = c} w_j p_j, ySum += sum_{lbl_j = c} w_j,
// pSum += sum_j w_j p_j^2 (squared) or sum_j w_j p_j.
template <typename A>
inline void diceSums(const int32_t* __restrict lbl, const A* __restrict w, const A* __restrict p, int32_t c,
                     int64_t len, bool squared, A& inter, A& ySum, A& pSum) {
  A si = 0, sy = 0, sp = 0;
  if (squared) {
#pragma omp simd reduction(+ : si, sy, sp)
    for (int64_t j = 0; j < len; ++j) {
      const A wy = lbl[j] == c ? w[j] : A(0);
      si += wy * p[j];
      sy += wy;
      sp += w[j] * p[j] * p[j];
    }
  } else {
#pragma omp simd reduction(+ : si, sy, sp)
    for (int64_t j = 0; j < len; ++j) {
      const A wy = lbl[j] == c ? w[j] : A(0);
      si += wy * p[j];
      sy += wy;
      sp += w[j] * p[j];
    }
  }
  inter += si;
  ySum += sy;
  pSum += sp;
}

// out_j = w_j * (p_j - [lbl_j == c]): the gradient of w-weighted CE for class c.
template <typename A, typename T>
inline void weightedCeGrad(T* __restrict out, const A* __restrict w, const A* __restrict p,
                           const int32_t* __restrict lbl, int32_t c, int64_t len) {
#pragma omp simd
  for (int64_t j = 0; j < len; ++j) out[j] = static_cast<T>(w[j] * (p[j] - (lbl[j] == c ? A(1) : A(0))));
}

}  // namespace semiseg::ops::cpu
