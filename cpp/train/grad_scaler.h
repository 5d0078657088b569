// Dynamic loss scaling for float16 mixed-precision training (torch.amp.GradScaler's rule; the scale
// itself is kept by lib/train/grad-scaler.ts): the loss is multiplied by the scale before backward, and
// the gradients are divided by it again before the optimizer step, which is skipped when any of them
// overflowed.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace semiseg::train {

// Divides every defined gradient of `params` by `scale` in place (one fused kernel per device);
// true when all of them are finite.
bool unscaleGradients(const std::vector<at::Tensor>& params, double scale);

}  // namespace semiseg::train
