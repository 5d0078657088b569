#include "tensor/ops.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace semiseg {

namespace {
const OpTable& table() {
  static const OpTable t = [] {
    OpTable t;
    registerFactoryOps(t);
    registerElementwiseOps(t);
    registerReductionOps(t);
    registerShapeOps(t);
    registerNnOps(t);
    registerAutogradOps(t);
    registerLossOps(t);
    registerMetricOps(t);
    registerAugmentOps(t);
    registerFusedOps(t);
    registerContrastOps(t);
    return t;
  }();
  return t;
}
}  // namespace

Value callOp(const Args& args) {
  auto it = table().find(args.op());
  TORCH_CHECK(it != table().end(), "unknown tensor op '", args.op(), "'");
  // LibTorch's own messages ("Dimension out of range ...") do not say which op failed: prefix it
  const std::string prefix = args.op() + "(";
  auto named = [&](const c10::Error& e) {
    std::string m = e.what_without_backtrace();
    return m.rfind(prefix, 0) == 0 ? m : args.op() + "(): " + m;
  };
  try {
    return it->second(args);
  } catch (const c10::IndexError& e) {
    TORCH_CHECK_INDEX(false, named(e));
  } catch (const c10::TypeError& e) {
    TORCH_CHECK_TYPE(false, named(e));
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, named(e));
  }
}

std::vector<std::string> opNames() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace semiseg
