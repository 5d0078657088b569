#include "tensor/options.h"

#include <ATen/Context.h>
#include <c10/util/Exception.h>

#include <array>
#include <utility>

namespace semiseg {

namespace {
constexpr std::array<std::pair<const char*, c10::ScalarType>, 8> kDtypes{{
    {"float32", c10::ScalarType::Float},
    {"float64", c10::ScalarType::Double},
    {"float16", c10::ScalarType::Half},
    {"bfloat16", c10::ScalarType::BFloat16},
    {"int32", c10::ScalarType::Int},
    {"int64", c10::ScalarType::Long},
    {"uint8", c10::ScalarType::Byte},
    {"bool", c10::ScalarType::Bool},
}};
}  // namespace

c10::ScalarType parseDtype(const std::string& name, const char* argName) {
  for (const auto& [n, t] : kDtypes)
    if (name == n) return t;
  TORCH_CHECK(false, "argument '", argName,
              "' must be one of float32, float64, float16, bfloat16, int32, int64, uint8, bool; got '", name, "'");
}

std::string dtypeName(c10::ScalarType t) {
  for (const auto& [n, s] : kDtypes)
    if (s == t) return n;
  return c10::toString(t);
}

c10::Device parseDevice(const std::string& name, const char* argName) {
  bool ok = name == "cpu" || name == "cuda" ||
            (name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() < 9 &&
             name.find_first_not_of("0123456789", 5) == std::string::npos);
  TORCH_CHECK(ok, "argument '", argName, "' must be 'cpu', 'cuda' or 'cuda:N'; got '", name, "'");
  c10::Device d(name);
  if (d.is_cuda()) {
    TORCH_CHECK(at::hasCUDA(), "argument '", argName, "' is '", name,
                "' but CUDA is not available (this LibTorch has no CUDA, or no GPU is visible)");
    int64_t index = d.has_index() ? d.index() : 0;
    int64_t count = static_cast<int64_t>(at::getNumGPUs());
    TORCH_CHECK(index < count, "argument '", argName, "' is '", name, "' but only ", count, " CUDA device(s) exist");
  }
  return d;
}

std::string deviceName(const c10::Device& d) {
  if (d.is_cpu()) return "cpu";
  return d.str();
}

c10::TensorOptions makeOptions(const std::string& dtype, const std::string& device) {
  return c10::TensorOptions().dtype(parseDtype(dtype)).device(parseDevice(device));
}

}  // namespace semiseg
