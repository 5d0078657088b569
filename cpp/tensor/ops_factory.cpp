// Factories. Argument order: shape first, then values, then dtype and device names.
#include "tensor/ops.h"
#include "tensor/options.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

namespace semiseg {

namespace {

c10::TensorOptions opts(const Args& a, size_t i) {
  return makeOptions(a.string(i, "dtype"), a.string(i + 1, "device"));
}

IntList checkedShape(const Args& a, size_t i) {
  IntList shape = a.ints(i, "shape");
  for (size_t d = 0; d < shape.size(); ++d)
    TORCH_CHECK(shape[d] >= 0, a.op(), "(): argument 'shape' must hold sizes >= 0, got ", shape[d], " at dimension ",
                d);
  return shape;
}

}  // namespace

void registerFactoryOps(OpTable& t) {
  // (shape, dtype, device)
  t["zeros"] = [](const Args& a) -> Value { return at::zeros(checkedShape(a, 0), opts(a, 1)); };
  t["ones"] = [](const Args& a) -> Value { return at::ones(checkedShape(a, 0), opts(a, 1)); };
  t["rand"] = [](const Args& a) -> Value { return at::rand(checkedShape(a, 0), opts(a, 1)); };
  t["randn"] = [](const Args& a) -> Value { return at::randn(checkedShape(a, 0), opts(a, 1)); };
  // (shape, value, dtype, device)
  t["full"] = [](const Args& a) -> Value { return at::full(checkedShape(a, 0), a.scalar(1, "value"), opts(a, 2)); };
  // (shape, low, high, dtype, device): integers in [low, high)
  t["randint"] = [](const Args& a) -> Value {
    return at::randint(a.int64(1, "low"), a.int64(2, "high"), checkedShape(a, 0), opts(a, 3));
  };
  // (start, end, step, dtype, device)
  t["arange"] = [](const Args& a) -> Value {
    return at::arange(a.scalar(0, "start"), a.scalar(1, "end"), a.scalar(2, "step"), opts(a, 3));
  };
  // (start, end, steps, dtype, device)
  t["linspace"] = [](const Args& a) -> Value {
    return at::linspace(a.scalar(0, "start"), a.scalar(1, "end"), a.int64(2, "steps"), opts(a, 3));
  };
}

}  // namespace semiseg
