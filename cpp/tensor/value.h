// semiseg::Value: the argument and result type of the tensor op table (cpp/tensor/ops.h).
// A host (the Node binding, a test) converts its own values to these; nothing here knows Node.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace semiseg {

using None = std::monostate;
using IntList = std::vector<int64_t>;
using TensorList = std::vector<at::Tensor>;

using Value = std::variant<None, at::Tensor, int64_t, double, bool, IntList, TensorList, std::string>;

// Positional arguments of one op call, with typed accessors whose errors name the op and the
// argument ("add(): argument 'other' must be a tensor or a number, got a list").
class Args {
 public:
  Args(std::string op, std::vector<Value> values) : op_(std::move(op)), values_(std::move(values)) {}

  const std::string& op() const { return op_; }
  size_t size() const { return values_.size(); }
  bool isNone(size_t i) const;
  bool isTensor(size_t i) const;

  const at::Tensor& tensor(size_t i, const char* name) const;
  at::Scalar scalar(size_t i, const char* name) const;
  int64_t int64(size_t i, const char* name) const;
  double f64(size_t i, const char* name) const;
  bool boolean(size_t i, const char* name) const;
  const std::string& string(size_t i, const char* name) const;
  IntList ints(size_t i, const char* name) const;  // an int or a list of ints
  const TensorList& tensors(size_t i, const char* name) const;
  // Every tensor among the arguments (lists flattened).
  TensorList allTensors() const;

  std::optional<int64_t> optInt64(size_t i, const char* name) const;
  std::optional<double> optF64(size_t i, const char* name) const;
  std::optional<at::Scalar> optScalar(size_t i, const char* name) const;
  std::optional<IntList> optInts(size_t i, const char* name) const;
  std::optional<at::Tensor> optTensor(size_t i, const char* name) const;

 private:
  const Value& at(size_t i) const;
  [[noreturn]] void fail(size_t i, const char* name, const char* expected) const;

  std::string op_;
  std::vector<Value> values_;
};

// A short human name of the kind of value held ("a tensor", "a list of ints", ...).
const char* kindName(const Value& v);

}  // namespace semiseg
