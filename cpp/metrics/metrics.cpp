#include "metrics/metrics.h"

#include "metrics/surface.h"
#include "tensor/ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/ne.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>
#include <numeric>

namespace semiseg::metrics {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

at::Tensor asMask(const at::Tensor& t) {
  return at::ne(t.detach(), 0).to(c10::Device(c10::kCPU), at::kByte).contiguous();
}

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

}  // namespace

BinaryMetrics binaryMetrics(const at::Tensor& pred, const at::Tensor& ref, const std::vector<double>& spacing,
                            EmptyPolicy policy, bool distances) {
  TORCH_CHECK(pred.sizes() == ref.sizes(), "metrics: 'yPred' and 'y' must have the same shape, got ", pred.sizes(),
              " and ", ref.sizes());
  TORCH_CHECK(pred.dim() >= 1, "metrics: masks must have at least one dimension");
  TORCH_CHECK(spacing.empty() || static_cast<int64_t>(spacing.size()) == pred.dim(),
              "metrics: option 'spacing' must have ", pred.dim(), " entries (one per dimension), got ", spacing.size());
  for (double s : spacing)
    TORCH_CHECK(s > 0 && std::isfinite(s), "metrics: option 'spacing' must hold sizes > 0, got ", s);
  at::Tensor p = asMask(pred);
  at::Tensor r = asMask(ref);
  Grid grid{pred.sizes().vec(), spacing.empty() ? std::vector<double>(pred.dim(), 1.0) : spacing};
  const uint8_t* pp = p.const_data_ptr<uint8_t>();
  const uint8_t* rp = r.const_data_ptr<uint8_t>();
  int64_t np = 0, nr = 0, inter = 0;
  for (int64_t i = 0; i < grid.size(); ++i) {
    np += pp[i];
    nr += rp[i];
    inter += pp[i] & rp[i];
  }
  BinaryMetrics m{};
  m.predictionEmpty = np == 0;
  m.referenceEmpty = nr == 0;
  if (m.predictionEmpty && policy == EmptyPolicy::Zero) return m;  // all zeros, as the published code
  m.dice = np + nr == 0 ? kNan : 2.0 * static_cast<double>(inter) / static_cast<double>(np + nr);
  m.jaccard = np + nr - inter == 0 ? kNan : static_cast<double>(inter) / static_cast<double>(np + nr - inter);
  if (!distances || m.predictionEmpty || m.referenceEmpty) {
    m.hd95 = m.asd = m.assd = kNan;  // not asked for, or undefined: surface distances need both surfaces
    return m;
  }
  auto forward = surfaceDistances(pp, rp, grid);   // prediction surface -> reference surface
  auto backward = surfaceDistances(rp, pp, grid);  // reference surface -> prediction surface
  m.asd = mean(forward);
  m.assd = (m.asd + mean(backward)) / 2;
  std::vector<double> both(forward);
  both.insert(both.end(), backward.begin(), backward.end());
  m.hd95 = percentile(both, 95.0);
  return m;
}

at::Tensor largestConnectedComponent(const at::Tensor& labels, int64_t spatialDims,
                                     const std::vector<int64_t>& classes) {
  TORCH_CHECK(spatialDims >= 1 && spatialDims <= labels.dim(),
              "largestConnectedComponent(): 'spatialDims' must be in [1, ", labels.dim(), "], got ", spatialDims);
  TORCH_CHECK(!at::isFloatingType(labels.scalar_type()),
              "largestConnectedComponent(): 'labels' must be an integer label map, got ", labels.scalar_type());
  at::Tensor in = labels.detach().to(c10::Device(c10::kCPU), at::kLong).contiguous();
  at::Tensor out = in.clone();
  std::vector<int64_t> shape(in.sizes().end() - spatialDims, in.sizes().end());
  int64_t volume = 1;
  for (auto s : shape) volume *= s;
  const int64_t batch = volume == 0 ? 0 : in.numel() / volume;
  std::vector<int64_t> st(spatialDims, 1);
  for (int64_t d = spatialDims - 2; d >= 0; --d) st[d] = st[d + 1] * shape[d + 1];
  // full-connectivity neighbour offsets (3^d - 1 of them) as per-dimension steps in {-1, 0, 1}
  std::vector<std::vector<int64_t>> steps;
  std::vector<int64_t> step(spatialDims, -1);
  for (;;) {
    if (std::any_of(step.begin(), step.end(), [](int64_t x) { return x != 0; })) steps.push_back(step);
    int64_t d = spatialDims - 1;
    while (d >= 0 && step[d] == 1) step[d--] = -1;
    if (d < 0) break;
    ++step[d];
  }
  std::vector<int32_t> comp(volume);
  std::vector<int64_t> stack, coords(spatialDims);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* src = in.const_data_ptr<int64_t>() + b * volume;
    int64_t* dst = out.mutable_data_ptr<int64_t>() + b * volume;
    for (int64_t c : classes) {
      std::fill(comp.begin(), comp.end(), 0);
      int32_t next = 0, best = 0;
      int64_t bestSize = 0;
      for (int64_t seed = 0; seed < volume; ++seed) {
        if (src[seed] != c || comp[seed] != 0) continue;
        comp[seed] = ++next;
        int64_t size = 0;
        stack.assign(1, seed);
        while (!stack.empty()) {
          const int64_t i = stack.back();
          stack.pop_back();
          ++size;
          for (int64_t d = 0, rest = i; d < spatialDims; ++d) {
            coords[d] = rest / st[d];
            rest %= st[d];
          }
          for (const auto& s : steps) {
            int64_t j = i;
            bool inside = true;
            for (int64_t d = 0; d < spatialDims && inside; ++d) {
              const int64_t x = coords[d] + s[d];
              inside = x >= 0 && x < shape[d];
              j += s[d] * st[d];
            }
            if (inside && src[j] == c && comp[j] == 0) {
              comp[j] = next;
              stack.push_back(j);
            }
          }
        }
        if (size > bestSize) {
          bestSize = size;
          best = next;
        }
      }
      for (int64_t i = 0; i < volume; ++i)
        if (src[i] == c && comp[i] != best) dst[i] = 0;
    }
  }
  return out.to(labels.device(), labels.scalar_type());
}

}  // namespace semiseg::metrics

namespace semiseg {

void registerMetricOps(OpTable& t) {
  // (yPred, y, spacing?, policy 'zero' | 'nan', distances = true) -> float64 [dice, jaccard, hd95, asd, assd,
  // predEmpty, refEmpty]
  t["binaryMetrics"] = [](const Args& a) -> Value {
    std::vector<double> spacing;
    if (!a.isNone(2)) {
      const at::Tensor& s = a.tensor(2, "spacing");
      at::Tensor sd = s.to(at::kDouble).contiguous();
      spacing.assign(sd.const_data_ptr<double>(), sd.const_data_ptr<double>() + sd.numel());
    }
    const std::string& policy = a.isNone(3) ? std::string("zero") : a.string(3, "emptyPolicy");
    TORCH_CHECK(policy == "zero" || policy == "nan", "metrics: option 'emptyPolicy' must be 'zero' or 'nan', got '",
                policy, "'");
    auto m = metrics::binaryMetrics(a.tensor(0, "yPred"), a.tensor(1, "y"), spacing,
                                    policy == "zero" ? metrics::EmptyPolicy::Zero : metrics::EmptyPolicy::Nan,
                                    a.isNone(4) ? true : a.boolean(4, "distances"));
    at::Tensor out = at::empty({7}, at::kDouble);
    double* o = out.mutable_data_ptr<double>();
    o[0] = m.dice;
    o[1] = m.jaccard;
    o[2] = m.hd95;
    o[3] = m.asd;
    o[4] = m.assd;
    o[5] = m.predictionEmpty;
    o[6] = m.referenceEmpty;
    return out;
  };
  // (labels, spatialDims, classes)
  t["largestConnectedComponent"] = [](const Args& a) -> Value {
    return metrics::largestConnectedComponent(a.tensor(0, "labels"), a.int64(1, "spatialDims"), a.ints(2, "classes"));
  };
}

}  // namespace semiseg
