#include "values.h"

#include "tensor_handle.h"

#include <cmath>
#include <string>

namespace semiseg::binding {

namespace {

[[noreturn]] void typeError(Napi::Env env, size_t index, const std::string& what) {
  throw Napi::TypeError::New(env, "argument " + std::to_string(index) + " " + what);
}

// Whole numbers become int64 so scalars keep PyTorch's int / float distinction (Python's 2**54 is an int
// too); -0 stays a float, as Python's -0.0.
Value fromNumber(double d) {
  if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9223372036854775808.0 && !(d == 0 && std::signbit(d)))
    return static_cast<int64_t>(d);
  return d;
}

}  // namespace

Value fromJs(Napi::Value v, size_t index) {
  Napi::Env env = v.Env();
  if (v.IsUndefined() || v.IsNull()) return None{};
  if (v.IsNumber()) return fromNumber(v.As<Napi::Number>().DoubleValue());
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) typeError(env, index, "is a bigint outside the int64 range");
    return x;
  }
  if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    const uint32_t n = arr.Length();
    if (n > 0 && TensorHandle::isHandle(env, arr.Get(0u))) {
      TensorList ts;
      ts.reserve(n);
      for (uint32_t i = 0; i < n; ++i)
        ts.push_back(TensorHandle::unwrap(
            arr.Get(i), ("argument " + std::to_string(index) + "[" + std::to_string(i) + "]").c_str()));
      return ts;
    }
    IntList ints;
    ints.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      Value e = fromJs(arr.Get(i), index);
      if (auto* x = std::get_if<int64_t>(&e)) {
        ints.push_back(*x);
      } else {
        typeError(env, index,
                  "must be a list of integers or of tensors, but element " + std::to_string(i) + " is " + kindName(e));
      }
    }
    return ints;
  }
  if (TensorHandle::isHandle(env, v)) return TensorHandle::unwrap(v, ("argument " + std::to_string(index)).c_str());
  typeError(env, index, "has a type the native layer does not take");
}

std::vector<Value> fromJsArray(Napi::Array arr) {
  std::vector<Value> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(fromJs(arr.Get(i), i));
  return out;
}

Napi::Value toJs(Napi::Env env, const Value& v) {
  return std::visit(
      [&](const auto& x) -> Napi::Value {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, None>) {
          return env.Undefined();
        } else if constexpr (std::is_same_v<T, at::Tensor>) {
          return TensorHandle::wrap(env, x);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return Napi::Number::New(env, static_cast<double>(x));
        } else if constexpr (std::is_same_v<T, double>) {
          return Napi::Number::New(env, x);
        } else if constexpr (std::is_same_v<T, bool>) {
          return Napi::Boolean::New(env, x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return Napi::String::New(env, x);
        } else if constexpr (std::is_same_v<T, IntList>) {
          Napi::Array a = Napi::Array::New(env, x.size());
          for (size_t i = 0; i < x.size(); ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(x[i])));
          return a;
        } else {
          Napi::Array a = Napi::Array::New(env, x.size());
          for (size_t i = 0; i < x.size(); ++i) a.Set(i, TensorHandle::wrap(env, x[i]));
          return a;
        }
      },
      v);
}

}  // namespace semiseg::binding
