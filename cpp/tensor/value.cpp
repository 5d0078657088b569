#include "tensor/value.h"

#include <c10/util/Exception.h>

namespace semiseg {

namespace {
const Value kNone{};
}

const char* kindName(const Value& v) {
  switch (v.index()) {
    case 0: return "nothing";
    case 1: return "a tensor";
    case 2: return "an integer";
    case 3: return "a number";
    case 4: return "a boolean";
    case 5: return "a list of integers";
    case 6: return "a list of tensors";
    default: return "a string";
  }
}

const Value& Args::at(size_t i) const { return i < values_.size() ? values_[i] : kNone; }

TensorList Args::allTensors() const {
  TensorList out;
  for (const Value& v : values_) {
    if (const auto* t = std::get_if<at::Tensor>(&v)) out.push_back(*t);
    if (const auto* l = std::get_if<TensorList>(&v)) out.insert(out.end(), l->begin(), l->end());
  }
  return out;
}

void Args::fail(size_t i, const char* name, const char* expected) const {
  TORCH_CHECK(false, op_, "(): argument '", name, "' must be ", expected, ", got ", kindName(at(i)));
}

bool Args::isNone(size_t i) const { return std::holds_alternative<None>(at(i)); }
bool Args::isTensor(size_t i) const { return std::holds_alternative<at::Tensor>(at(i)); }

const at::Tensor& Args::tensor(size_t i, const char* name) const {
  if (auto* t = std::get_if<at::Tensor>(&at(i))) {
    TORCH_CHECK(t->defined(), op_, "(): argument '", name, "' is an undefined tensor");
    return *t;
  }
  fail(i, name, "a tensor");
}

at::Scalar Args::scalar(size_t i, const char* name) const {
  const Value& v = at(i);
  if (auto* x = std::get_if<int64_t>(&v)) return at::Scalar(*x);
  if (auto* x = std::get_if<double>(&v)) return at::Scalar(*x);
  if (auto* x = std::get_if<bool>(&v)) return at::Scalar(*x);
  fail(i, name, "a number or a boolean");
}

int64_t Args::int64(size_t i, const char* name) const {
  const Value& v = at(i);
  if (auto* x = std::get_if<int64_t>(&v)) return *x;
  fail(i, name, "an integer");
}

double Args::f64(size_t i, const char* name) const {
  const Value& v = at(i);
  if (auto* x = std::get_if<double>(&v)) return *x;
  if (auto* x = std::get_if<int64_t>(&v)) return static_cast<double>(*x);
  fail(i, name, "a number");
}

bool Args::boolean(size_t i, const char* name) const {
  if (auto* x = std::get_if<bool>(&at(i))) return *x;
  fail(i, name, "a boolean");
}

const std::string& Args::string(size_t i, const char* name) const {
  if (auto* x = std::get_if<std::string>(&at(i))) return *x;
  fail(i, name, "a string");
}

IntList Args::ints(size_t i, const char* name) const {
  const Value& v = at(i);
  if (auto* x = std::get_if<IntList>(&v)) return *x;
  if (auto* x = std::get_if<int64_t>(&v)) return {*x};
  fail(i, name, "an integer or a list of integers");
}

const TensorList& Args::tensors(size_t i, const char* name) const {
  if (auto* x = std::get_if<TensorList>(&at(i))) {
    for (const auto& t : *x) TORCH_CHECK(t.defined(), op_, "(): argument '", name, "' holds an undefined tensor");
    return *x;
  }
  fail(i, name, "a list of tensors");
}

std::optional<int64_t> Args::optInt64(size_t i, const char* name) const {
  return isNone(i) ? std::nullopt : std::optional<int64_t>(int64(i, name));
}
std::optional<double> Args::optF64(size_t i, const char* name) const {
  return isNone(i) ? std::nullopt : std::optional<double>(f64(i, name));
}
std::optional<at::Scalar> Args::optScalar(size_t i, const char* name) const {
  return isNone(i) ? std::nullopt : std::optional<at::Scalar>(scalar(i, name));
}
std::optional<IntList> Args::optInts(size_t i, const char* name) const {
  return isNone(i) ? std::nullopt : std::optional<IntList>(ints(i, name));
}
std::optional<at::Tensor> Args::optTensor(size_t i, const char* name) const {
  return isNone(i) ? std::nullopt : std::optional<at::Tensor>(tensor(i, name));
}

}  // namespace semiseg
