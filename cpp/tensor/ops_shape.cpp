// Shape, indexing and joining ops. Views share storage with their input, as in PyTorch.
#include "tensor/ops.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/gather.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/narrow.h>
#include <ATen/ops/one_hot.h>
#include <ATen/ops/permute.h>
#include <ATen/ops/reshape.h>
#include <ATen/ops/rot90.h>
#include <ATen/ops/slice.h>
#include <ATen/ops/squeeze.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/transpose.h>
#include <ATen/ops/unsqueeze.h>
#include <c10/util/Exception.h>

namespace semiseg {

void registerShapeOps(OpTable& t) {
  // (input, shape)
  t["reshape"] = [](const Args& a) -> Value { return at::reshape(a.tensor(0, "input"), a.ints(1, "shape")); };
  // (input, dims)
  t["permute"] = [](const Args& a) -> Value { return at::permute(a.tensor(0, "input"), a.ints(1, "dims")); };
  // (input, dim0, dim1)
  t["transpose"] = [](const Args& a) -> Value {
    return at::transpose(a.tensor(0, "input"), a.int64(1, "dim0"), a.int64(2, "dim1"));
  };
  // (input, dim, start, length)
  t["narrow"] = [](const Args& a) -> Value {
    return at::narrow(a.tensor(0, "input"), a.int64(1, "dim"), a.int64(2, "start"), a.int64(3, "length"));
  };
  // (input, dim, start, end, step): Python slicing along one dim, negative indices from the end
  t["slice"] = [](const Args& a) -> Value {
    int64_t step = a.isNone(4) ? 1 : a.int64(4, "step");
    TORCH_CHECK(step > 0, "slice(): argument 'step' must be > 0, got ", step);
    return at::slice(a.tensor(0, "input"), a.int64(1, "dim"), a.optInt64(2, "start"), a.optInt64(3, "end"), step);
  };
  // (input, dim, index)
  t["indexSelect"] = [](const Args& a) -> Value {
    return at::index_select(a.tensor(0, "input"), a.int64(1, "dim"), a.tensor(2, "index"));
  };
  // (input, dim, index)
  t["gather"] = [](const Args& a) -> Value {
    return at::gather(a.tensor(0, "input"), a.int64(1, "dim"), a.tensor(2, "index"));
  };
  // (tensors, dim)
  t["cat"] = [](const Args& a) -> Value {
    const auto& ts = a.tensors(0, "tensors");
    TORCH_CHECK(!ts.empty(), "cat(): argument 'tensors' must hold at least one tensor");
    return at::cat(ts, a.int64(1, "dim"));
  };
  t["stack"] = [](const Args& a) -> Value {
    const auto& ts = a.tensors(0, "tensors");
    TORCH_CHECK(!ts.empty(), "stack(): argument 'tensors' must hold at least one tensor");
    return at::stack(ts, a.int64(1, "dim"));
  };
  // (input, numClasses): int64 labels -> int64 one-hot in a new last dimension
  t["oneHot"] = [](const Args& a) -> Value {
    return at::one_hot(a.tensor(0, "input"), a.isNone(1) ? -1 : a.int64(1, "numClasses"));
  };
  // (input, dim?)
  t["squeeze"] = [](const Args& a) -> Value {
    const at::Tensor& x = a.tensor(0, "input");
    auto dim = a.optInt64(1, "dim");
    return dim ? at::squeeze(x, *dim) : at::squeeze(x);
  };
  // (input, dim)
  t["unsqueeze"] = [](const Args& a) -> Value { return at::unsqueeze(a.tensor(0, "input"), a.int64(1, "dim")); };
  // (input, startDim, endDim)
  t["flatten"] = [](const Args& a) -> Value {
    return a.tensor(0, "input")
        .flatten(a.isNone(1) ? 0 : a.int64(1, "startDim"), a.isNone(2) ? -1 : a.int64(2, "endDim"));
  };
  // (input, shape): broadcast to shape (-1 keeps a size)
  t["expand"] = [](const Args& a) -> Value { return a.tensor(0, "input").expand(a.ints(1, "shape")); };
  // (input, dims)
  t["flip"] = [](const Args& a) -> Value { return at::flip(a.tensor(0, "input"), a.ints(1, "dims")); };
  // (input, k, dims): numpy.rot90 / torch.rot90, counter-clockwise from dims[0] towards dims[1]
  t["rot90"] = [](const Args& a) -> Value {
    return at::rot90(a.tensor(0, "input"), a.int64(1, "k"), a.ints(2, "dims"));
  };
  t["contiguous"] = [](const Args& a) -> Value { return a.tensor(0, "input").contiguous(); };
  t["clone"] = [](const Args& a) -> Value { return a.tensor(0, "input").clone(); };
  // (input, source): copies source's values into input in place, outside autograd (restoring trainable
  // tensors an optimizer already holds, from a checkpoint); same shape, dtype converted.
  t["copyFrom"] = [](const Args& a) -> Value {
    at::Tensor dst = a.tensor(0, "input");
    const at::Tensor& src = a.tensor(1, "source");
    TORCH_CHECK(dst.sizes() == src.sizes(), "copyFrom(): argument 'source' must have shape ", dst.sizes(), ", got ",
                src.sizes());
    at::NoGradGuard noGrad;
    dst.copy_(src);
    return None{};
  };
}

}  // namespace semiseg
