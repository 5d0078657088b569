// VerSemi's network (cpp/nets/versemi.h): creation, and the task its forward segments.
#include <napi.h>

#include "errors.h"
#include "nets/versemi.h"
#include "network.h"

namespace semiseg::binding {

namespace {

nets::TaskPrompted& taskPrompted(Napi::Env env, NetworkHandle& handle, const char* fn) {
  auto* net = dynamic_cast<nets::TaskPrompted*>(handle.network(env).get());
  if (!net) throw Napi::TypeError::New(env, std::string(fn) + "(): a " + handle.network(env)->kind() + " has no task");
  return *net;
}

// createVerSemi({inChannels, nFilters, normalization, hasDropout, lastBlock, tasks})
Napi::Value createVerSemi(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    Napi::Object o = info[0].As<Napi::Object>();
    nets::VerSemiOptions opts;
    opts.backbone.inChannels = o.Get("inChannels").ToNumber().Int64Value();
    opts.backbone.outChannels = 2;
    opts.backbone.nFilters = o.Get("nFilters").ToNumber().Int64Value();
    opts.backbone.normalization = o.Get("normalization").ToString().Utf8Value();
    opts.backbone.hasDropout = o.Get("hasDropout").ToBoolean();
    opts.backbone.lastBlock = o.Get("lastBlock").ToBoolean();
    opts.tasks = o.Get("tasks").ToNumber().Int64Value();
    return NetworkHandle::wrap(env, nets::makeVerSemi(opts));
  });
}

// networkSetTask(handle, task): refused while async calls use the network
Napi::Value networkSetTask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    NetworkHandle& h = NetworkHandle::unwrap(info[0], "network");
    auto& net = taskPrompted(env, h, "setTask");
    h.checkIdle(env, "setTask");
    net.setTask(info[1].ToNumber().Int64Value());
    return env.Undefined();
  });
}

// networkTask(handle) -> { task, tasks }
Napi::Value networkTask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    NetworkHandle& h = NetworkHandle::unwrap(info[0], "network");
    auto& net = taskPrompted(env, h, "task");
    Napi::Object out = Napi::Object::New(env);
    out.Set("task", Napi::Number::New(env, static_cast<double>(net.task())));
    out.Set("tasks", Napi::Number::New(env, static_cast<double>(net.tasks())));
    return out;
  });
}

}  // namespace

void registerVerSemiApi(Napi::Env env, Napi::Object exports) {
  exports.Set("createVerSemi", Napi::Function::New<createVerSemi>(env, "createVerSemi"));
  exports.Set("networkSetTask", Napi::Function::New<networkSetTask>(env, "networkSetTask"));
  exports.Set("networkTask", Napi::Function::New<networkTask>(env, "networkTask"));
}

}  // namespace semiseg::binding
