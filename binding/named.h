// Named tensor lists (state dicts, optimizer state) cross as two parallel arrays: [names, handles].
#pragma once

#include <napi.h>

#include "nets/network.h"

namespace semiseg::binding {

Napi::Value namedToJs(Napi::Env env, const nets::NamedTensors& tensors);
nets::NamedTensors namedFromJs(Napi::Value names, Napi::Value handles, const char* what);
std::vector<std::string> stringsFromJs(Napi::Value v, const char* what);
Napi::Array stringsToJs(Napi::Env env, const std::vector<std::string>& strings);

}  // namespace semiseg::binding
