#include "metrics/surface.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace semiseg::metrics {

int64_t Grid::size() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

namespace {

std::vector<int64_t> strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> st(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) st[d] = st[d + 1] * shape[d + 1];
  return st;
}

// 1-D squared distance transform of f (in place) along one line, weight w = spacing^2.
void transform1d(double* f, int64_t n, int64_t stride, double w, std::vector<double>& g, std::vector<int64_t>& v,
                 std::vector<double>& z) {
  const double inf = std::numeric_limits<double>::infinity();
  g.resize(n);
  for (int64_t i = 0; i < n; ++i) g[i] = f[i * stride];
  v.resize(n);
  z.resize(n + 1);
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (g[q] == inf) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -inf;
      z[1] = inf;
      continue;
    }
    double s;
    for (;;) {  // pop parabolas the new one hides; z[0] = -inf stops this at k = 0
      const int64_t p = v[k];
      s = ((g[q] + w * q * q) - (g[p] + w * p * p)) / (2 * w * (q - p));
      if (s > z[k]) break;
      --k;
    }
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = inf;
  }
  if (k < 0) return;  // no finite value on this line: stays +inf
  int64_t j = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (z[j + 1] < q) ++j;
    const double d = static_cast<double>(q - v[j]);
    f[q * stride] = w * d * d + g[v[j]];
  }
}

}  // namespace

std::vector<uint8_t> surface(const uint8_t* mask, const Grid& grid) {
  const auto st = strides(grid.shape);
  const int64_t n = grid.size();
  const size_t dims = grid.shape.size();
  std::vector<uint8_t> out(n, 0);
  std::vector<int64_t> idx(dims, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i]) {
      bool interior = true;
      for (size_t d = 0; d < dims && interior; ++d) {
        if (idx[d] == 0 || idx[d] == grid.shape[d] - 1) {
          interior = false;  // a neighbour outside the image is background
        } else {
          interior = mask[i - st[d]] && mask[i + st[d]];
        }
      }
      out[i] = interior ? 0 : 1;
    }
    for (int64_t d = static_cast<int64_t>(dims) - 1; d >= 0; --d) {  // advance the multi-index
      if (++idx[d] < grid.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

std::vector<double> squaredDistanceTo(const std::vector<uint8_t>& feature, const Grid& grid) {
  const int64_t n = grid.size();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> f(n);
  for (int64_t i = 0; i < n; ++i) f[i] = feature[i] ? 0.0 : inf;
  const auto st = strides(grid.shape);
  std::vector<double> g, z;
  std::vector<int64_t> v;
  for (size_t d = 0; d < grid.shape.size(); ++d) {
    const int64_t len = grid.shape[d];
    const double w = grid.spacing[d] * grid.spacing[d];
    // every line along dimension d: start offsets are all indices with idx[d] == 0
    for (int64_t start = 0; start < n; ++start) {
      if ((start / st[d]) % len != 0) continue;
      transform1d(f.data() + start, len, st[d], w, g, v, z);
    }
  }
  return f;
}

std::vector<double> surfaceDistances(const uint8_t* from, const uint8_t* to, const Grid& grid) {
  const auto fromSurface = surface(from, grid);
  const auto dist = squaredDistanceTo(surface(to, grid), grid);
  std::vector<double> out;
  for (int64_t i = 0; i < grid.size(); ++i)
    if (fromSurface[i]) out.push_back(std::sqrt(dist[i]));
  return out;
}

double percentile(std::vector<double>& values, double q) {
  const double pos = (static_cast<double>(values.size()) - 1) * q / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(pos));
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double a = values[lo];
  if (lo + 1 >= values.size()) return a;
  const double b = *std::min_element(values.begin() + lo + 1, values.end());
  return a + (b - a) * (pos - static_cast<double>(lo));
}

}  // namespace semiseg::metrics
