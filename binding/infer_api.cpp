// Inference entry points: sliding-window inference on a network, cancellable through a CancelToken that
// lib/ ties to an AbortSignal.
#include "async.h"
#include "errors.h"
#include "infer/precision.h"
#include "infer/slices.h"
#include "infer/sliding_window.h"
#include "network.h"
#include "tensor/options.h"
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

// The flag of an optional CancelToken argument.
std::shared_ptr<std::atomic<bool>> cancelFlag(Napi::Env env, const Napi::Value& v, const char* fn) {
  if (v.IsUndefined()) return nullptr;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addonData(env).cancelCtor.Value()))
    throw Napi::TypeError::New(env, std::string(fn) + "(): the cancel token must be a CancelToken");
  return CancelToken::Unwrap(v.As<Napi::Object>())->flag;
}

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
    opts.fold = !o.Has("fold") || o.Get("fold").ToBoolean();
    std::shared_ptr<std::atomic<bool>> flag = cancelFlag(env, info[3], "slidingWindow");
    auto net = nh.network(env);
    if (o.Get("precision").IsString())
      opts.autocast = infer::resolvePrecision(o.Get("precision").As<Napi::String>().Utf8Value(), net->device(),
                                              "slidingWindowInference");
    auto release = nh.enter(env, net->isTraining(), "slidingWindow");
    return runAsync<at::Tensor>(
        env, [net, image, opts, flag] { return infer::slidingWindow(*net, image, opts, flag.get()); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorHandle::wrap(env, t); }, release,
        NetworkHandle::storages(*net, {image}));
  });
}

// sliceLabels(network, volume, batch, precision, fold, token?) -> Promise<int64 labels (S, H, W)>
Napi::Value sliceLabels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    NetworkHandle& nh = NetworkHandle::unwrap(info[0], "network");
    at::Tensor volume = TensorHandle::unwrap(info[1], "volume");
    const int64_t batch = info[2].ToNumber().Int64Value();
    auto net = nh.network(env);
    const auto autocast = infer::resolvePrecision(info[3].ToString().Utf8Value(), net->device(), "sliceInference");
    const bool fold = info[4].ToBoolean();
    std::shared_ptr<std::atomic<bool>> flag = cancelFlag(env, info[5], "sliceInference");
    auto release = nh.enter(env, net->isTraining(), "sliceInference");
    return runAsync<at::Tensor>(
        env,
        [net, volume, batch, autocast, fold, flag] {
          return infer::sliceLabels(*net, volume, batch, autocast, fold, flag.get());
        },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorHandle::wrap(env, t); }, release,
        NetworkHandle::storages(*net, {volume}));
  });
}

// resolvePrecision(name, device) -> the precision forwards run in there ('float32' | 'bfloat16' | 'float16')
Napi::Value resolvePrecision(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const c10::Device device = parseDevice(info[1].ToString().Utf8Value());
    const std::string fn = info[2].IsString() ? info[2].ToString().Utf8Value() : std::string("resolvePrecision");
    return Napi::String::New(
        env, infer::precisionName(infer::resolvePrecision(info[0].ToString().Utf8Value(), device, fn.c_str())));
  });
}

// cpuFeatures() -> the CPU features that matter for precision and speed, and whether bfloat16 is native
Napi::Value cpuFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const auto& f = infer::cpuFeatures();
    Napi::Object o = Napi::Object::New(env);
    const auto names = f.names();
    Napi::Array list = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) list.Set(static_cast<uint32_t>(i), names[i]);
    o.Set("features", list);
    o.Set("nativeBf16", Napi::Boolean::New(env, f.nativeBf16()));
    return o;
  });
}

}  // namespace

void registerInferApi(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = CancelToken::define(env);
  addonData(env).cancelCtor = Napi::Persistent(ctor);
  exports.Set("CancelToken", ctor);
  exports.Set("slidingWindow", Napi::Function::New<slidingWindow>(env, "slidingWindow"));
  exports.Set("sliceLabels", Napi::Function::New<sliceLabels>(env, "sliceLabels"));
  exports.Set("resolvePrecision", Napi::Function::New<resolvePrecision>(env, "resolvePrecision"));
  exports.Set("cpuFeatures", Napi::Function::New<cpuFeatures>(env, "cpuFeatures"));
}

}  // namespace semiseg::binding
