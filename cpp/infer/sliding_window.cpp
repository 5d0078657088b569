#include "infer/sliding_window.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <cmath>

namespace semiseg::infer {

at::Tensor slidingWindow(nets::Network& net, const at::Tensor& image, const SlidingWindowOptions& o,
                         const std::atomic<bool>* cancel) {
  const int64_t d = net.spatialDims();
  TORCH_CHECK(static_cast<int64_t>(o.patch.size()) == d && static_cast<int64_t>(o.strides.size()) == d,
              "slidingWindow(): 'patch' and 'strides' must have ", d, " entries for a ", net.kind());
  for (int64_t k = 0; k < d; ++k) {
    TORCH_CHECK(o.patch[k] > 0 && o.strides[k] > 0, "slidingWindow(): 'patch' and 'strides' must be > 0");
  }
  TORCH_CHECK(o.batch >= 1, "slidingWindow(): 'batch' must be >= 1, got ", o.batch);
  TORCH_CHECK(image.dim() == d || image.dim() == d + 1, "slidingWindow(): 'image' must be ", d, "-D or ", d + 1,
              "-D (channels first), got shape ", image.sizes());
  c10::NoGradGuard noGrad;
  const std::shared_ptr<nets::Network> folded = o.fold ? net.inferenceNetwork() : nullptr;
  nets::Network& model = folded ? *folded : net;
  at::Tensor x = (image.dim() == d ? image.unsqueeze(0) : image).to(net.device(), net.dtype());
  // zero padding up to the patch, (pad // 2, pad - pad // 2) per axis
  std::vector<int64_t> pad(2 * d, 0), lo(d, 0), size(d);
  for (int64_t k = 0; k < d; ++k) {
    const int64_t n = x.size(1 + k);
    size[k] = n;
    const int64_t p = std::max<int64_t>(o.patch[k] - n, 0);
    lo[k] = p / 2;
    // constant_pad_nd takes (last dim left, last dim right, ...)
    pad[2 * (d - 1 - k)] = p / 2;
    pad[2 * (d - 1 - k) + 1] = p - p / 2;
  }
  at::Tensor padded = at::constant_pad_nd(x, pad, 0);
  std::vector<int64_t> counts(d), full(d);
  for (int64_t k = 0; k < d; ++k) {
    full[k] = padded.size(1 + k);
    counts[k] = (full[k] - o.patch[k] + o.strides[k] - 1) / o.strides[k] + 1;  // ceil(...) + 1
  }
  // window origins, row-major over the axes
  std::vector<std::vector<int64_t>> starts;
  std::vector<int64_t> idx(d, 0);
  for (bool more = true; more;) {
    std::vector<int64_t> s(d);
    for (int64_t k = 0; k < d; ++k) s[k] = std::min(o.strides[k] * idx[k], full[k] - o.patch[k]);
    starts.push_back(s);
    int64_t k = d - 1;
    while (k >= 0 && ++idx[k] == counts[k]) idx[k--] = 0;
    more = k >= 0;
  }
  at::Tensor weight;
  if (o.gaussian) {
    weight = at::ones({1}, padded.options());
    for (int64_t k = 0; k < d; ++k) {
      const double sigma = o.patch[k] / 8.0, mid = (o.patch[k] - 1) / 2.0;
      at::Tensor g = at::zeros({o.patch[k]}, at::kDouble);
      auto acc = g.accessor<double, 1>();
      for (int64_t i = 0; i < o.patch[k]; ++i) acc[i] = std::exp(-((i - mid) * (i - mid)) / (2 * sigma * sigma));
      std::vector<int64_t> view(d, 1);
      view[k] = o.patch[k];
      weight = weight * g.to(padded.options()).view(view);
    }
  } else {
    std::vector<int64_t> ones(o.patch);
    weight = at::ones(ones, padded.options());
  }
  // accumulators allocated once, in the network's dtype
  std::vector<int64_t> scoreShape{net.outChannels()};
  scoreShape.insert(scoreShape.end(), full.begin(), full.end());
  at::Tensor score = at::zeros(scoreShape, padded.options());
  at::Tensor count = at::zeros(full, padded.options());
  nets::AutocastScope autocast(model.device().type(), o.autocast);
  for (size_t first = 0; first < starts.size(); first += o.batch) {
    TORCH_CHECK(!(cancel && cancel->load()), "slidingWindow(): cancelled");
    const size_t last = std::min(starts.size(), first + static_cast<size_t>(o.batch));
    std::vector<at::Tensor> windows;
    for (size_t w = first; w < last; ++w) {
      at::Tensor win = padded;
      for (int64_t k = 0; k < d; ++k) win = win.narrow(1 + k, starts[w][k], o.patch[k]);
      windows.push_back(win);
    }
    at::Tensor probs = at::softmax(model.forward(at::stack(windows, 0)), 1, padded.scalar_type());
    for (size_t w = first; w < last; ++w) {
      at::Tensor s = score, c = count;
      for (int64_t k = 0; k < d; ++k) {
        s = s.narrow(1 + k, starts[w][k], o.patch[k]);
        c = c.narrow(k, starts[w][k], o.patch[k]);
      }
      if (o.gaussian) {
        s.add_(probs[static_cast<int64_t>(w - first)] * weight);
        c.add_(weight);
      } else {
        s.add_(probs[static_cast<int64_t>(w - first)]);
        c.add_(1);
      }
    }
  }
  at::Tensor out = score / count.unsqueeze(0);
  for (int64_t k = 0; k < d; ++k) out = out.narrow(1 + k, lo[k], size[k]);
  return out.contiguous();
}

}  // namespace semiseg::infer
