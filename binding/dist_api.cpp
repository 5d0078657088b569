// Distributed training: distInfo(), distConnect(options) -> Promise<GroupHandle>, the handle's collectives
// (Promises, run on the compute threads), and setSyncBatchNorm(group | null).
#include "dist_api.h"

#include "async.h"
#include "errors.h"
#include "tensor_handle.h"

#include <chrono>
#include <string>
#include <vector>

namespace semiseg::binding {

namespace {

class GroupHandle : public Napi::ObjectWrap<GroupHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(
        env, "GroupHandle",
        {InstanceMethod<&GroupHandle::rank>("rank"), InstanceMethod<&GroupHandle::size>("size"),
         InstanceMethod<&GroupHandle::allreduce>("allreduce"), InstanceMethod<&GroupHandle::broadcast>("broadcast"),
         InstanceMethod<&GroupHandle::barrier>("barrier"), InstanceMethod<&GroupHandle::shutdown>("shutdown"),
         InstanceMethod<&GroupHandle::closed>("closed")});
  }
  explicit GroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GroupHandle>(info) {}

  std::shared_ptr<dist::Group> group;

  const std::shared_ptr<dist::Group>& live(Napi::Env env) const {
    if (!group || group->closed()) throw Napi::Error::New(env, "distributed: this process group was shut down");
    return group;
  }

 private:
  static std::vector<at::Tensor> tensors(Napi::Value v, const char* fn) {
    if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(fn) + "(): tensors must be an array");
    Napi::Array a = v.As<Napi::Array>();
    std::vector<at::Tensor> out;
    for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(TensorHandle::unwrap(a.Get(i), "tensor"));
    return out;
  }
  static Napi::Value undefined(Napi::Env env, bool&) { return env.Undefined(); }

  Napi::Value rank(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return Napi::Number::New(info.Env(), live(info.Env())->rank()); });
  }
  Napi::Value size(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return Napi::Number::New(info.Env(), live(info.Env())->size()); });
  }
  Napi::Value allreduce(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto g = live(info.Env());
      auto ts = tensors(info[0], "allreduce");
      return runAsync<bool>(
          info.Env(),
          [g, ts] {
            g->allreduceSum(ts);
            return true;
          },
          undefined, {}, storagesOf(ts));
    });
  }
  Napi::Value broadcast(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto g = live(info.Env());
      auto ts = tensors(info[0], "broadcast");
      const int root = info[1].ToNumber().Int32Value();
      return runAsync<bool>(
          info.Env(),
          [g, ts, root] {
            g->broadcast(ts, root);
            return true;
          },
          undefined, {}, storagesOf(ts));
    });
  }
  Napi::Value barrier(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      auto g = live(info.Env());
      return runAsync<bool>(
          info.Env(),
          [g] {
            g->barrier();
            return true;
          },
          undefined, {}, touchesNothing());
    });
  }
  Napi::Value shutdown(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      if (group) {
        if (dist::syncBatchNormGroup() == group) dist::setSyncBatchNormGroup(nullptr);
        group->shutdown();
      }
      return info.Env().Undefined();
    });
  }
  Napi::Value closed(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return Napi::Boolean::New(info.Env(), !group || group->closed()); });
  }
};

Napi::Value distInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, dist::available()));
  o.Set("reason", dist::unavailableReason());
  o.Set("nccl", Napi::Boolean::New(env, dist::ncclAvailable()));
  return o;
}

// distConnect({ host, port, rank, worldSize, timeoutMs, interface, nccl }) -> Promise<GroupHandle>
Napi::Value distConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    Napi::Object o = info[0].As<Napi::Object>();
    dist::GroupOptions go;
    go.host = o.Get("host").ToString().Utf8Value();
    go.port = o.Get("port").ToNumber().Int32Value();
    go.rank = o.Get("rank").ToNumber().Int32Value();
    go.worldSize = o.Get("worldSize").ToNumber().Int32Value();
    go.timeout = std::chrono::milliseconds(o.Get("timeoutMs").ToNumber().Int64Value());
    go.interface = o.Get("interface").IsString() ? o.Get("interface").ToString().Utf8Value() : "";
    go.nccl = o.Get("nccl").ToBoolean();
    return runAsync<std::shared_ptr<dist::Group>>(
        env, [go] { return dist::createGroup(go); },
        [](Napi::Env env, std::shared_ptr<dist::Group>& g) -> Napi::Value {
          Napi::Object obj = addonData(env).groupCtor.New({});
          GroupHandle::Unwrap(obj)->group = g;
          return obj;
        },
        {}, touchesNothing());
  });
}

Napi::Value setSyncBatchNorm(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    dist::setSyncBatchNormGroup(info[0].IsNull() || info[0].IsUndefined() ? nullptr : unwrapGroup(info[0], "group"));
    return info.Env().Undefined();
  });
}

}  // namespace

std::shared_ptr<dist::Group> unwrapGroup(Napi::Value v, const char* what) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addonData(env).groupCtor.Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a process group handle");
  return GroupHandle::Unwrap(v.As<Napi::Object>())->live(env);
}

void registerDistApi(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = GroupHandle::define(env);
  addonData(env).groupCtor = Napi::Persistent(ctor);
  exports.Set("GroupHandle", ctor);
  exports.Set("distInfo", Napi::Function::New<distInfo>(env, "distInfo"));
  exports.Set("distConnect", Napi::Function::New<distConnect>(env, "distConnect"));
  exports.Set("setSyncBatchNorm", Napi::Function::New<setSyncBatchNorm>(env, "setSyncBatchNorm"));
}

}  // namespace semiseg::binding
