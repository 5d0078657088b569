// The distributed API's handle (GroupHandle), for the optimizer's gradient all-reduce in train_api.cpp.
#pragma once

#include <napi.h>

#include "dist/dist.h"

#include <memory>

namespace semiseg::binding {

// The group of a JS value that must be a live group handle; `what` names it in the error.
std::shared_ptr<dist::Group> unwrapGroup(Napi::Value value, const char* what);
void registerDistApi(Napi::Env env, Napi::Object exports);

}  // namespace semiseg::binding
