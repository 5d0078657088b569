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
  return it->second(args);
}

std::vector<std::string> opNames() {
  std::vector<std::string> names;
  for (const auto& [name, fn] : table()) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace semiseg
