// Module entry: per-environment state (main thread and each worker thread get their own) and exports.
#include <napi.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "async.h"
#include "dist_api.h"
#include "tensor/cpu_cache.h"
#include "tensor/runtime.h"
#include "tensor_api.h"
#include "tensor_handle.h"

#ifndef SEMISEG_TORCH_VERSION
#define SEMISEG_TORCH_VERSION "unknown"
#endif
#ifndef SEMISEG_TORCH_ROOT
#define SEMISEG_TORCH_ROOT ""
#endif

namespace semiseg::binding {

void registerVerSemiApi(Napi::Env env, Napi::Object exports);  // versemi_api.cpp

Napi::Value buildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", SEMISEG_TORCH_VERSION);
  o.Set("torchRoot", SEMISEG_TORCH_ROOT);
  o.Set("cuda", Napi::Boolean::New(env, builtWithCuda()));
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return o;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  serialCallingThread();  // this JS thread's synchronous ops run with one intra-op thread (tensor/runtime.h)
  // the large-block cache (tensor/cpu_cache.h), on unless SEMISEG_CPU_CACHE=0; at the first load only, so a
  // worker thread loading the addon later does not undo cpuCache.setEnabled()
  static std::once_flag cacheOnce;
  std::call_once(cacheOnce, [] {
    const char* v = std::getenv("SEMISEG_CPU_CACHE");
    setCpuCacheEnabled(!(v && std::strcmp(v, "0") == 0));
  });
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  data->channel = EnvChannel::create(env);
  Napi::Function ctor = TensorHandle::define(env);
  data->tensorCtor = Napi::Persistent(ctor);
  exports.Set("TensorHandle", ctor);
  exports.Set("buildInfo", Napi::Function::New<buildInfo>(env, "buildInfo"));
  registerTensorApi(env, exports);
  registerNetworkApi(env, exports);
  registerTrainApi(env, exports);
  registerIoApi(env, exports);
  registerInferApi(env, exports);
  registerVerSemiApi(env, exports);
  registerPreprocessApi(env, exports);
  registerDistApi(env, exports);
  return exports;
}

}  // namespace semiseg::binding

static Napi::Object InitSemiseg(Napi::Env env, Napi::Object exports) { return semiseg::binding::init(env, exports); }

NODE_API_MODULE(semiseg, InitSemiseg)
