// Inference entry points: sliding-window inference on a network, cancellable through a CancelToken that
// lib/ ties to an AbortSignal.
#include "async.h"
#include "errors.h"
#include "infer/sliding_window.h"
#include "network.h"
#include "tensor_handle.h"

#include <atomic>
#include <memory>

namespace semiseg::binding {

namespace {

class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CancelToken", {InstanceMethod<&CancelToken::cancel>("cancel")});
  }
  explicit CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}
  std::shared_ptr<std::atomic<bool>> flag = std::make_shared<std::atomic<bool>>(false);

 private:
  Napi::Value cancel(const Napi::CallbackInfo& info) {
    flag->store(true);
    return info.Env().Undefined();
  }
};

// slidingWindow(network, image, { patch, strides, batch, gaussian }, token?) -> Promise<probabilities>
Napi::Value slidingWindow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    NetworkHandle& nh = NetworkHandle::unwrap(info[0], "network");
    at::Tensor image = TensorHandle::unwrap(info[1], "image");
    Napi::Object o = info[2].As<Napi::Object>();
    infer::SlidingWindowOptions opts;
    auto ints = [&](const char* key) {
      std::vector<int64_t> out;
      Napi::Array a = o.Get(key).As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).ToNumber().Int64Value());
      return out;
    };
    opts.patch = ints("patch");
    opts.strides = ints("strides");
    opts.batch = o.Get("batch").ToNumber().Int64Value();
    opts.gaussian = o.Get("gaussian").ToBoolean();
    std::shared_ptr<std::atomic<bool>> flag;
    if (!info[3].IsUndefined()) {
      if (!info[3].IsObject() || !info[3].As<Napi::Object>().InstanceOf(addonData(env).cancelCtor.Value()))
        throw Napi::TypeError::New(env, "slidingWindow(): the cancel token must be a CancelToken");
      flag = CancelToken::Unwrap(info[3].As<Napi::Object>())->flag;
    }
    auto net = nh.network(env);
    auto release = nh.enter(env, net->isTraining(), "slidingWindow");
    return runAsync<at::Tensor>(
        env, [net, image, opts, flag] { return infer::slidingWindow(*net, image, opts, flag.get()); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorHandle::wrap(env, t); }, release);
  });
}

}  // namespace

void registerInferApi(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = CancelToken::define(env);
  addonData(env).cancelCtor = Napi::Persistent(ctor);
  exports.Set("CancelToken", ctor);
  exports.Set("slidingWindow", Napi::Function::New<slidingWindow>(env, "slidingWindow"));
}

}  // namespace semiseg::binding
