// JS values <-> semiseg::Value (cpp/tensor/value.h). Conversion happens on the JS thread only.
#pragma once

#include <napi.h>

#include "tensor/value.h"

#include <vector>

namespace semiseg::binding {

// undefined/null -> None; integer number or bigint -> int64; other number -> double; boolean; string;
// tensor handle -> Tensor; array of integers -> IntList; array of handles -> TensorList.
Value fromJs(Napi::Value v, size_t index);
std::vector<Value> fromJsArray(Napi::Array arr);
Napi::Value toJs(Napi::Env env, const Value& v);

}  // namespace semiseg::binding
