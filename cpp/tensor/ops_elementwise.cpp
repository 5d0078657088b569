// Element-wise arithmetic, comparisons and maths, with broadcasting. Binary ops take (a, other[, alpha]),
// `other` a tensor or a number; a number behaves as a Python scalar does in PyTorch's type promotion.
#include "tensor/ops.h"

#include <ATen/ScalarOps.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/add.h>
#include <ATen/ops/ceil.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/div.h>
#include <ATen/ops/eq.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/floor.h>
#include <ATen/ops/ge.h>
#include <ATen/ops/gt.h>
#include <ATen/ops/isnan.h>
#include <ATen/ops/le.h>
#include <ATen/ops/log.h>
#include <ATen/ops/logical_and.h>
#include <ATen/ops/logical_not.h>
#include <ATen/ops/logical_or.h>
#include <ATen/ops/lt.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/ne.h>
#include <ATen/ops/neg.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/remainder.h>
#include <ATen/ops/round.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/sign.h>
#include <ATen/ops/sqrt.h>
#include <ATen/ops/square.h>
#include <ATen/ops/sub.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/where.h>

namespace semiseg {

namespace {

// A tensor argument, or a number wrapped as PyTorch wraps Python scalars (it does not decide the dtype).
at::Tensor operand(const Args& a, size_t i, const char* name, const at::Device& device) {
  if (a.isTensor(i)) return a.tensor(i, name);
  return at::native::wrapped_scalar_tensor(a.scalar(i, name), device);
}

template <at::Tensor (*Fn)(const at::Tensor&, const at::Tensor&)>
Value binary(const Args& a) {
  const at::Tensor& x = a.tensor(0, "input");
  return Fn(x, operand(a, 1, "other", x.device()));
}

template <at::Tensor (*Fn)(const at::Tensor&)>
Value unary(const Args& a) {
  return Fn(a.tensor(0, "input"));
}

// at:: overload sets cannot be template arguments; these plain wrappers pick one overload each.
#define SEMISEG_BINARY(name, expr) \
  at::Tensor name(const at::Tensor& x, const at::Tensor& y) { return expr; }
SEMISEG_BINARY(mulFn, at::mul(x, y))
SEMISEG_BINARY(divFn, at::div(x, y))
SEMISEG_BINARY(maximumFn, at::maximum(x, y))
SEMISEG_BINARY(minimumFn, at::minimum(x, y))
SEMISEG_BINARY(remainderFn, at::remainder(x, y))
SEMISEG_BINARY(eqFn, at::eq(x, y))
SEMISEG_BINARY(neFn, at::ne(x, y))
SEMISEG_BINARY(ltFn, at::lt(x, y))
SEMISEG_BINARY(leFn, at::le(x, y))
SEMISEG_BINARY(gtFn, at::gt(x, y))
SEMISEG_BINARY(geFn, at::ge(x, y))
SEMISEG_BINARY(andFn, at::logical_and(x, y))
SEMISEG_BINARY(orFn, at::logical_or(x, y))
#undef SEMISEG_BINARY

#define SEMISEG_UNARY(name, expr) \
  at::Tensor name(const at::Tensor& x) { return expr; }
SEMISEG_UNARY(negFn, at::neg(x))
SEMISEG_UNARY(absFn, at::abs(x))
SEMISEG_UNARY(expFn, at::exp(x))
SEMISEG_UNARY(logFn, at::log(x))
SEMISEG_UNARY(sqrtFn, at::sqrt(x))
SEMISEG_UNARY(rsqrtFn, at::rsqrt(x))
SEMISEG_UNARY(squareFn, at::square(x))
SEMISEG_UNARY(reciprocalFn, at::reciprocal(x))
SEMISEG_UNARY(sigmoidFn, at::sigmoid(x))
SEMISEG_UNARY(tanhFn, at::tanh(x))
SEMISEG_UNARY(reluFn, at::relu(x))
SEMISEG_UNARY(floorFn, at::floor(x))
SEMISEG_UNARY(ceilFn, at::ceil(x))
SEMISEG_UNARY(roundFn, at::round(x))
SEMISEG_UNARY(signFn, at::sign(x))
SEMISEG_UNARY(notFn, at::logical_not(x))
SEMISEG_UNARY(isnanFn, at::isnan(x))
#undef SEMISEG_UNARY

}  // namespace

void registerElementwiseOps(OpTable& t) {
  // (input, other, alpha): input + alpha * other
  t["add"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    return at::add(x, operand(a, 1, "other", x.device()), a.isNone(2) ? at::Scalar(1) : a.scalar(2, "alpha"));
  };
  t["sub"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    return at::sub(x, operand(a, 1, "other", x.device()), a.isNone(2) ? at::Scalar(1) : a.scalar(2, "alpha"));
  };
  t["mul"] = binary<mulFn>;
  t["div"] = binary<divFn>;
  // a number exponent as PyTorch's pow(Tensor, Scalar): integer tensors refuse negative integer powers
  t["pow"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    if (a.isTensor(1)) return at::pow(x, a.tensor(1, "exponent"));
    return at::pow(x, a.scalar(1, "exponent"));
  };
  t["maximum"] = binary<maximumFn>;
  t["minimum"] = binary<minimumFn>;
  t["remainder"] = binary<remainderFn>;
  t["eq"] = binary<eqFn>;
  t["ne"] = binary<neFn>;
  t["lt"] = binary<ltFn>;
  t["le"] = binary<leFn>;
  t["gt"] = binary<gtFn>;
  t["ge"] = binary<geFn>;
  t["logicalAnd"] = binary<andFn>;
  t["logicalOr"] = binary<orFn>;

  t["neg"] = unary<negFn>;
  t["abs"] = unary<absFn>;
  t["exp"] = unary<expFn>;
  t["log"] = unary<logFn>;
  t["sqrt"] = unary<sqrtFn>;
  t["rsqrt"] = unary<rsqrtFn>;
  t["square"] = unary<squareFn>;
  t["reciprocal"] = unary<reciprocalFn>;
  t["sigmoid"] = unary<sigmoidFn>;
  t["tanh"] = unary<tanhFn>;
  t["relu"] = unary<reluFn>;
  t["floor"] = unary<floorFn>;
  t["ceil"] = unary<ceilFn>;
  t["round"] = unary<roundFn>;
  t["sign"] = unary<signFn>;
  t["logicalNot"] = unary<notFn>;
  t["isNan"] = unary<isnanFn>;

  // (input, min, max): either bound may be absent, not both
  t["clamp"] = [](const Args& a) -> Value {
    auto lo = a.optScalar(1, "min");
    auto hi = a.optScalar(2, "max");
    TORCH_CHECK(lo || hi, "clamp(): at least one of 'min' and 'max' must be given");
    return at::clamp(a.tensor(0, "input"), lo, hi);
  };
  // (condition, input, other): input where condition, else other; input/other tensors or numbers
  t["where"] = [](const Args& a) -> Value {
    const at::Tensor& c = a.tensor(0, "condition");
    return at::where(c, operand(a, 1, "input", c.device()), operand(a, 2, "other", c.device()));
  };
}

}  // namespace semiseg
