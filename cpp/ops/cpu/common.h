// Helpers shared by the fused ops' CPU kernels: the accumulation type, deterministic chunked
// reductions over pixels, and the box geometry of the copy-paste ops.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace semiseg::ops::cpu {

// float64 accumulates in float64, everything else in float32.
template <typename T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

inline at::ScalarType accType(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// Pixels per tile: the inner loops run over a tile of one sample's pixels for each class, so they
// read memory sequentially and vectorise.
constexpr int64_t kTile = 256;

// Splits [0, total) into at most one chunk per thread, fixed by total and the thread count (so sums
// are reproducible run to run), and runs fn(chunk, begin, end) for each in parallel.
template <typename F>
int64_t forChunks(int64_t total, int64_t grain, const F& fn) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (total + grain - 1) / grain));
  const int64_t step = (total + chunks - 1) / chunks;
  at::parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) fn(c, c * step, std::min(total, (c + 1) * step));
  });
  return chunks;
}

// Calls fn(n, s0, s1) for each tile [s0, s1) of sample n's P pixels within the flat range [b, e) of N * P.
template <typename F>
void forTiles(int64_t b, int64_t e, int64_t P, const F& fn) {
  while (b < e) {
    const int64_t n = b / P;
    const int64_t s0 = b - n * P;
    const int64_t s1 = std::min({P, s0 + kTile, s0 + (e - b)});
    fn(n, s0, s1);
    b += s1 - s0;
  }
}

// Boxes of the copy-paste ops: (B, 2 * nd) int64 rows [start..., size...]; row i % B for sample i.
struct Boxes {
  std::vector<int64_t> v;
  int64_t rows = 0, nd = 0;
  Boxes(const at::Tensor& box, int64_t dims) : nd(dims) {
    at::Tensor b = box.to(at::kCPU, at::kLong).contiguous();
    TORCH_CHECK(b.dim() == 2 && b.size(1) == 2 * dims, "box must be (B, ", 2 * dims, "), got ", b.sizes());
    rows = b.size(0);
    v.assign(b.data_ptr<int64_t>(), b.data_ptr<int64_t>() + b.numel());
  }
  int64_t start(int64_t i, int64_t d) const { return v[(i % rows) * 2 * nd + d]; }
  int64_t size(int64_t i, int64_t d) const { return v[(i % rows) * 2 * nd + nd + d]; }
  // The [begin, end) of the last axis inside sample i's box on the row with outer index `row`
  // (rows enumerate all axes but the last); begin == end when the row misses the box.
  std::pair<int64_t, int64_t> segment(int64_t i, int64_t row, const int64_t* shape) const {
    int64_t rest = row;
    for (int64_t d = nd - 2; d >= 0; --d) {
      const int64_t c = rest % shape[d];
      rest /= shape[d];
      if (c < start(i, d) || c >= start(i, d) + size(i, d)) return {0, 0};
    }
    return {start(i, nd - 1), start(i, nd - 1) + size(i, nd - 1)};
  }
};

// Sources of mixed sample i for pairing 0 (same), 1 (inFirst), 2 (outFirst); K mixed samples.
inline int64_t sourceIn(int64_t pairing, int64_t i, int64_t K) { return pairing == 2 ? K + i : i; }
inline int64_t sourceOut(int64_t pairing, int64_t i, int64_t K) { return pairing == 1 ? K + i : i; }

}  // namespace semiseg::ops::cpu
