#include "nets/network.h"

#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>

namespace semiseg::nets {

AutocastScope::AutocastScope(c10::DeviceType device, std::optional<c10::ScalarType> dtype) : device_(device) {
  if (!dtype) return;
  TORCH_CHECK(*dtype == c10::ScalarType::BFloat16 || (*dtype == c10::ScalarType::Half && device == c10::kCUDA),
              "autocast: use 'bfloat16' (CPU or CUDA) or 'float16' (CUDA only), got ", *dtype, " on ", device);
  prevEnabled_ = at::autocast::is_autocast_enabled(device);
  prevDtype_ = at::autocast::get_autocast_dtype(device);
  at::autocast::set_autocast_enabled(device, true);
  at::autocast::set_autocast_dtype(device, *dtype);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, prevEnabled_);
  at::autocast::set_autocast_dtype(device_, prevDtype_);
}

}  // namespace semiseg::nets
