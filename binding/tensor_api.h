#pragma once

#include <napi.h>

namespace semiseg::binding {

void registerTensorApi(Napi::Env env, Napi::Object exports);

}  // namespace semiseg::binding
