// Reductions and normalisations. Reductions take (input, dim, keepdim); `dim` absent reduces everything.
#include "tensor/ops.h"
#include "tensor/options.h"

#include <ATen/ops/all.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>
#include <ATen/ops/any.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/argmin.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/max.h>
#include <ATen/ops/mean.h>
#include <ATen/ops/min.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sum.h>
#include <c10/util/Exception.h>

namespace semiseg {

namespace {

bool keepdim(const Args& a, size_t i) { return a.isNone(i) ? false : a.boolean(i, "keepdim"); }

std::optional<c10::ScalarType> optDtype(const Args& a, size_t i) {
  if (a.isNone(i)) return std::nullopt;
  return parseDtype(a.string(i, "dtype"));
}

// Every dim of x (a reduction without dims that keeps them: keepdim=true gives rank-many ones).
std::vector<int64_t> allDims(const at::Tensor& x) {
  std::vector<int64_t> d(x.dim());
  for (int64_t i = 0; i < x.dim(); ++i) d[i] = i;
  return d;
}

// max / min: one dim returns the values along it (see argmax for the indices)
template <bool IsMax>
Value extreme(const Args& a) {
  const at::Tensor& x = a.tensor(0, "input");
  auto dim = a.optInt64(1, "dim");
  if (!dim && keepdim(a, 2)) return IsMax ? at::amax(x, allDims(x), true) : at::amin(x, allDims(x), true);
  if (!dim) return IsMax ? at::max(x) : at::min(x);
  return std::get<0>(IsMax ? at::max(x, *dim, keepdim(a, 2)) : at::min(x, *dim, keepdim(a, 2)));
}

template <bool IsMax>
Value argExtreme(const Args& a) {
  const at::Tensor& x = a.tensor(0, "input");
  auto dim = a.optInt64(1, "dim");
  return IsMax ? at::argmax(x, dim, keepdim(a, 2)) : at::argmin(x, dim, keepdim(a, 2));
}

}  // namespace

void registerReductionOps(OpTable& t) {
  // (input, dims, keepdim, dtype)
  t["sum"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    auto dims = a.optInts(1, "dim");
    if (!dims && !keepdim(a, 2)) return at::sum(x, optDtype(a, 3));
    return at::sum(x, dims ? *dims : allDims(x), keepdim(a, 2), optDtype(a, 3));
  };
  t["mean"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    auto dims = a.optInts(1, "dim");
    if (!dims && !keepdim(a, 2)) return at::mean(x, optDtype(a, 3));
    return at::mean(x, dims ? *dims : allDims(x), keepdim(a, 2), optDtype(a, 3));
  };
  t["max"] = extreme<true>;
  t["min"] = extreme<false>;
  t["argmax"] = argExtreme<true>;
  t["argmin"] = argExtreme<false>;
  // (input): whole-tensor truth tests
  t["any"] = [](const Args& a) -> Value { return at::any(a.tensor(0, "input")); };
  t["all"] = [](const Args& a) -> Value { return at::all(a.tensor(0, "input")); };
  // (input, dim, dtype)
  t["softmax"] = [](const Args& a) -> Value {
    return at::softmax(a.tensor(0, "input"), a.int64(1, "dim"), optDtype(a, 2));
  };
  t["logSoftmax"] = [](const Args& a) -> Value {
    return at::log_softmax(a.tensor(0, "input"), a.int64(1, "dim"), optDtype(a, 2));
  };
}

}  // namespace semiseg
