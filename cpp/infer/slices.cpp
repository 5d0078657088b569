#include "infer/slices.h"

#include <ATen/ops/argmax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/softmax.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

namespace semiseg::infer {

at::Tensor sliceLabels(nets::Network& net, const at::Tensor& volume, int64_t batch,
                       std::optional<c10::ScalarType> autocast, bool fold, const std::atomic<bool>* cancel) {
  TORCH_CHECK(net.spatialDims() == 2, "sliceInference(): needs a 2-D network, got a ", net.kind());
  TORCH_CHECK(volume.defined() && (volume.dim() == 3 || volume.dim() == 4),
              "sliceInference(): argument 'volume' must be (slices, H, W) or (slices, C, H, W), got shape ",
              volume.defined() ? volume.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(batch >= 1, "sliceInference(): argument 'batch' must be >= 1, got ", batch);
  c10::NoGradGuard noGrad;
  const std::shared_ptr<nets::Network> folded = fold ? net.inferenceNetwork() : nullptr;
  nets::Network& model = folded ? *folded : net;
  const at::Tensor x = (volume.dim() == 3 ? volume.unsqueeze(1) : volume).to(net.device(), net.dtype());
  const int64_t slices = x.size(0);
  at::Tensor labels = at::empty({slices, x.size(2), x.size(3)}, x.options().dtype(at::kLong));
  nets::AutocastScope scope(model.device().type(), autocast);
  for (int64_t first = 0; first < slices; first += batch) {
    TORCH_CHECK(!(cancel && cancel->load()), "sliceInference(): cancelled");
    const int64_t n = std::min(batch, slices - first);
    const at::Tensor logits = model.forward(x.narrow(0, first, n));
    labels.narrow(0, first, n).copy_(at::softmax(logits, 1, x.scalar_type()).argmax(1));
  }
  return labels;
}

}  // namespace semiseg::infer
