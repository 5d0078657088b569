#pragma once

#include <napi.h>

namespace semiseg::binding {

void registerTensorApi(Napi::Env env, Napi::Object exports);
void registerNetworkApi(Napi::Env env, Napi::Object exports);     // network.cpp
void registerTrainApi(Napi::Env env, Napi::Object exports);       // train_api.cpp
void registerIoApi(Napi::Env env, Napi::Object exports);          // io_api.cpp
void registerInferApi(Napi::Env env, Napi::Object exports);       // infer_api.cpp
void registerPreprocessApi(Napi::Env env, Napi::Object exports);  // preprocess_api.cpp

}  // namespace semiseg::binding
