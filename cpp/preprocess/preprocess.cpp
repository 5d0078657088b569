#include "preprocess/preprocess.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/_upsample_nearest_exact2d.h>
#include <ATen/ops/_upsample_nearest_exact3d.h>
#include <ATen/ops/any.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/one_hot.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/std_mean.h>
#include <ATen/ops/upsample_bicubic2d.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/upsample_trilinear3d.h>
#include <ATen/ops/zeros_like.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

namespace semiseg::preprocess {

namespace {

void checkMode(const std::string& mode, std::initializer_list<const char*> allowed, const char* what) {
  std::string list;
  for (const char* a : allowed) {
    if (mode == a) return;
    list += list.empty() ? std::string("'") + a + "'" : std::string(", '") + a + "'";
  }
  TORCH_CHECK(false, "preprocess: ", what, " must be one of ", list, ", got '", mode, "'");
}

// Cubic convolution along dimension `dim` of (N, C, ...) through the 2-D bicubic kernel on a (len, 1) grid:
// a width of one makes the second axis the identity, so three such passes are a separable tricubic.
at::Tensor cubicAlong(const at::Tensor& x, int64_t dim, int64_t out) {
  if (x.size(dim) == out) return x;
  at::Tensor moved = x.movedim(dim, -1);  // (..., len)
  auto lead = moved.sizes().vec();
  lead.pop_back();
  int64_t len = moved.size(-1);
  at::Tensor flat = moved.reshape({-1, 1, len, 1});
  at::Tensor r = at::upsample_bicubic2d(flat, {out, 1}, false);
  lead.push_back(out);
  return r.reshape(lead).movedim(-1, dim);
}

}  // namespace

at::Tensor resample(const at::Tensor& x, const std::vector<int64_t>& size, const std::string& mode) {
  checkMode(mode, {"linear", "cubic", "nearest"}, "the image interpolation");
  int64_t d = static_cast<int64_t>(size.size());
  TORCH_CHECK(d == 2 || d == 3, "resample: 2 or 3 spatial sizes expected, got ", d);
  TORCH_CHECK(x.dim() == d + 1, "resample: a (C, ...spatial) tensor of ", d + 1, " dimensions expected, got ", x.dim());
  for (auto s : size) TORCH_CHECK(s >= 1, "resample: sizes must be >= 1, got ", s);
  TORCH_CHECK(x.is_floating_point(), "resample: a floating-point image expected, got ", x.scalar_type());
  if (x.sizes().slice(1).vec() == size) return x.clone();
  at::Tensor b = x.unsqueeze(0);
  at::Tensor r;
  if (mode == "nearest") {
    r = d == 2 ? at::_upsample_nearest_exact2d(b, size) : at::_upsample_nearest_exact3d(b, size);
  } else if (mode == "linear") {
    r = d == 2 ? at::upsample_bilinear2d(b, size, false) : at::upsample_trilinear3d(b, size, false);
  } else {
    r = b;
    for (int64_t k = 0; k < d; ++k) r = cubicAlong(r, 2 + k, size[k]);
  }
  return r.squeeze(0).contiguous();
}

at::Tensor resampleLabels(const at::Tensor& labels, const std::vector<int64_t>& size, const std::string& mode,
                          int64_t classes) {
  checkMode(mode, {"nearest", "linear"}, "the label interpolation");
  int64_t d = static_cast<int64_t>(size.size());
  TORCH_CHECK(labels.dim() == d, "resampleLabels: a label map of ", d, " dimensions expected, got ", labels.dim());
  TORCH_CHECK(!labels.is_floating_point(), "resampleLabels: an integer label map expected, got ", labels.scalar_type());
  if (labels.sizes().vec() == size) return labels.to(at::kLong).clone();
  if (mode == "nearest")
    return resample(labels.to(at::kFloat).unsqueeze(0), size, "nearest").squeeze(0).round().to(at::kLong);
  TORCH_CHECK(classes >= 2, "resampleLabels: linear label interpolation needs the number of classes (>= 2), got ",
              classes);
  at::Tensor hot = at::one_hot(labels.to(at::kLong), classes).movedim(-1, 0).to(at::kFloat);
  return resample(hot, size, "linear").argmax(0);
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> nonzeroBox(const at::Tensor& image) {
  int64_t d = image.dim() - 1;
  at::Tensor mask = (image != 0).any(0);
  at::Tensor idx = at::nonzero(mask);  // (n, d)
  std::vector<int64_t> start(d, 0), shape(d);
  for (int64_t k = 0; k < d; ++k) shape[k] = image.size(k + 1);
  if (idx.size(0) == 0) return {start, shape};
  at::Tensor lo = std::get<0>(idx.min(0)), hi = std::get<0>(idx.max(0));
  for (int64_t k = 0; k < d; ++k) {
    start[k] = lo[k].item<int64_t>();
    shape[k] = hi[k].item<int64_t>() - start[k] + 1;
  }
  return {start, shape};
}

Result run(const at::Tensor& imageIn, const std::optional<at::Tensor>& labelIn, const Options& o) {
  c10::NoGradGuard noGrad;
  TORCH_CHECK(imageIn.dim() == 3 || imageIn.dim() == 4,
              "preprocess: image must be (C, ...spatial) with 2 or 3 spatial dimensions, got ", imageIn.dim(),
              " dimensions");
  at::Tensor image = imageIn.to(at::kFloat);
  int64_t d = image.dim() - 1;
  TORCH_CHECK(at::isfinite(image).all().item<bool>(), "preprocess: the image holds NaN or infinite intensities");
  if (labelIn) {
    TORCH_CHECK(labelIn->sizes() == image.sizes().slice(1), "preprocess: label shape ", labelIn->sizes(),
                " differs from the image's spatial shape ", image.sizes().slice(1));
  }
  at::Tensor label = labelIn ? labelIn->to(at::kLong) : at::Tensor();
  Result out;
  if (o.crop) {
    auto [start, shape] = nonzeroBox(image);
    for (int64_t k = 0; k < d; ++k) {
      image = image.narrow(k + 1, start[k], shape[k]);
      if (label.defined()) label = label.narrow(k, start[k], shape[k]);
    }
    out.cropStart = start;
    out.cropShape = shape;
  } else {
    out.cropStart.assign(d, 0);
    out.cropShape = image.sizes().slice(1).vec();
  }
  int64_t c = image.size(0);
  TORCH_CHECK(o.channels.size() <= 1 || static_cast<int64_t>(o.channels.size()) == c, "preprocess: ", o.channels.size(),
              " normalisations given for an image of ", c, " channels");
  std::vector<at::Tensor> parts;
  at::Tensor nonzero;  // the voxels non-zero in some channel (after the crop), for masked z-scores
  for (int64_t ch = 0; ch < c; ++ch) {
    Normalization n = o.channels.empty() ? Normalization{} : o.channels[o.channels.size() == 1 ? 0 : ch];
    at::Tensor x = image[ch];
    if (n.scheme == "zscore") {
      if (n.mask && !nonzero.defined()) nonzero = image.ne(0).any(0);
      at::Tensor xd = x.to(at::kDouble);
      // statistics over the whole volume, or (masked) over the non-zero voxels, which are the only ones set
      at::Tensor values = n.mask ? xd.masked_select(nonzero) : xd;
      if (values.numel() == 0) {
        x = at::zeros_like(x);
      } else {
        auto [sd, mean] = at::std_mean(values, at::OptionalIntArrayRef(), at::Scalar(0), false);
        at::Tensor z = (xd - mean) / at::clamp(sd, 1e-8);
        x = (n.mask ? at::where(nonzero, z, at::zeros_like(z)) : z).to(at::kFloat);
      }
    } else if (n.scheme == "ct") {
      TORCH_CHECK(n.std > 0, "preprocess: the CT normalisation needs a foreground std > 0, got ", n.std);
      x = (at::clamp(x, n.lo, n.hi) - n.mean) / n.std;
    } else if (n.scheme == "minmax") {
      double lo = x.min().item<double>(), hi = x.max().item<double>();
      x = hi > lo ? (x - lo) / (hi - lo) : at::zeros_like(x);
    } else {
      TORCH_CHECK(n.scheme == "none", "preprocess: unknown normalisation '", n.scheme,
                  "' (one of 'none', 'zscore', 'ct', 'minmax')");
    }
    parts.push_back(x);
  }
  image = at::stack(parts, 0);
  std::vector<int64_t> size = o.size;
  if (!o.targetSpacing.empty()) {
    TORCH_CHECK(static_cast<int64_t>(o.targetSpacing.size()) == d && static_cast<int64_t>(o.spacing.size()) == d,
                "preprocess: spacing and target spacing need ", d, " entries each");
    size.clear();
    for (int64_t k = 0; k < d; ++k) {
      TORCH_CHECK(o.spacing[k] > 0 && o.targetSpacing[k] > 0, "preprocess: voxel spacings must be > 0, got ",
                  o.spacing[k], " and ", o.targetSpacing[k], " on axis ", k);
      int64_t n = image.size(k + 1);
      // round half to even, as numpy (and nnU-Net's shape computation) does
      size.push_back(
          k == o.keepAxis
              ? n
              : std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(n * o.spacing[k] / o.targetSpacing[k]))));
    }
  }
  if (!size.empty()) {
    TORCH_CHECK(static_cast<int64_t>(size.size()) == d, "preprocess: ", size.size(), " target sizes for ", d,
                " spatial dimensions");
    image = resample(image, size, o.imageMode);
    if (label.defined()) label = resampleLabels(label, size, o.labelMode, o.classes);
  }
  out.image = image.contiguous();
  if (label.defined()) out.label = label.contiguous();
  return out;
}

}  // namespace semiseg::preprocess
