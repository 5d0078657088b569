#include "network.h"

#include "async.h"
#include "errors.h"
#include "named.h"
#include "tensor/options.h"
#include "tensor_handle.h"
#include "values.h"

namespace semiseg::binding {

Napi::Function NetworkHandle::define(Napi::Env env) {
  return DefineClass(env, "NetworkHandle",
                     {
                         InstanceMethod<&NetworkHandle::kind>("kind"),
                         InstanceMethod<&NetworkHandle::optionsJson>("optionsJson"),
                         InstanceMethod<&NetworkHandle::forward>("forward"),
                         InstanceMethod<&NetworkHandle::forwardSync>("forwardSync"),
                         InstanceMethod<&NetworkHandle::forwardFeatures>("forwardFeatures"),
                         InstanceMethod<&NetworkHandle::setTraining>("setTraining"),
                         InstanceMethod<&NetworkHandle::isTraining>("isTraining"),
                         InstanceMethod<&NetworkHandle::namedParameters>("namedParameters"),
                         InstanceMethod<&NetworkHandle::namedBuffers>("namedBuffers"),
                         InstanceMethod<&NetworkHandle::stateDict>("stateDict"),
                         InstanceMethod<&NetworkHandle::parameterCount>("parameterCount"),
                         InstanceMethod<&NetworkHandle::to>("to"),
                         InstanceMethod<&NetworkHandle::setChannelsLast>("setChannelsLast"),
                         InstanceMethod<&NetworkHandle::channelsLast>("channelsLast"),
                         InstanceMethod<&NetworkHandle::device>("device"),
                         InstanceMethod<&NetworkHandle::dtype>("dtype"),
                         InstanceMethod<&NetworkHandle::clone>("clone"),
                         InstanceMethod<&NetworkHandle::loadState>("loadState"),
                         InstanceMethod<&NetworkHandle::dispose>("dispose"),
                         InstanceMethod<&NetworkHandle::isDisposed>("isDisposed"),
                     });
}

NetworkHandle::NetworkHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NetworkHandle>(info) {}

Napi::Object NetworkHandle::wrap(Napi::Env env, std::shared_ptr<nets::Network> net) {
  Napi::Object obj = addonData(env).networkCtor.New({});
  Unwrap(obj)->net_ = std::move(net);
  return obj;
}

NetworkHandle& NetworkHandle::unwrap(Napi::Value value, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonData(env).networkCtor.Value()))
    throw Napi::TypeError::New(env, std::string(what) + " must be a network handle");
  NetworkHandle* h = Unwrap(value.As<Napi::Object>());
  h->network(env);
  return *h;
}

std::shared_ptr<nets::Network> NetworkHandle::network(Napi::Env env) const {
  if (!net_) throw Napi::Error::New(env, "the network has been disposed");
  return net_;
}

void NetworkHandle::checkCanRun(Napi::Env env, bool training, const char* what) const {
  const auto [all, train] = *busy_;
  if (train > 0 || (training && all > 0))
    throw Napi::Error::New(env, network(env)->kind() + "." + what + "(): the network is busy with " +
                                    std::to_string(all) + " async call(s) that " + (train > 0 ? "train it" : "use it") +
                                    "; await them first (only eval-mode forwards may overlap)");
}

std::function<void()> NetworkHandle::enter(Napi::Env env, bool training, const char* what) {
  checkCanRun(env, training, what);
  ++busy_->first;
  if (training) ++busy_->second;
  return [busy = busy_, training] {
    --busy->first;
    if (training) --busy->second;
  };
}

std::vector<const void*> NetworkHandle::storages(const nets::Network& net, std::vector<at::Tensor> extra) {
  for (auto& [name, t] : net.stateDict()) extra.push_back(t);
  return storagesOf(extra);
}

void NetworkHandle::checkUntouched(Napi::Env env, const char* what) const {
  checkIdle(env, what);
  envChannel(env)->refuseIfTouched(env, storages(*network(env)), network(env)->kind() + "." + what, "its weights are");
}

void NetworkHandle::checkIdle(Napi::Env env, const char* what) const {
  if (busy_->first > 0)
    throw Napi::Error::New(env, network(env)->kind() + "." + what + "(): the network is busy with " +
                                    std::to_string(busy_->first) + " async call(s); await them first");
}

namespace {
std::optional<c10::ScalarType> autocastArg(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), "autocast must be a dtype name");
  return parseDtype(v.As<Napi::String>().Utf8Value(), "autocast");
}
}  // namespace

Napi::Value NetworkHandle::runForward(const Napi::CallbackInfo& info, bool features) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto net = network(env);
    at::Tensor x = TensorHandle::unwrap(info[0], "input");
    auto autocast = autocastArg(info[1]);
    net->checkInput(x, features ? "forwardFeatures" : "forward");
    auto release = enter(env, net->isTraining(), features ? "forwardFeatures" : "forward");
    return runAsync<TensorList>(
        env,
        [net, x, autocast, features]() -> TensorList {
          nets::AutocastScope scope(x.device().type(), autocast);
          return features ? net->forwardFeatures(x) : TensorList{net->forward(x)};
        },
        [features](Napi::Env env, TensorList& out) -> Napi::Value {
          return features ? toJs(env, semiseg::Value(out)) : TensorHandle::wrap(env, out.front());
        },
        release, storages(*net, {x}));
  });
}

Napi::Value NetworkHandle::forward(const Napi::CallbackInfo& info) { return runForward(info, false); }
Napi::Value NetworkHandle::forwardFeatures(const Napi::CallbackInfo& info) { return runForward(info, true); }

Napi::Value NetworkHandle::forwardSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    auto net = network(env);
    checkCanRun(env, net->isTraining(), "forwardSync");
    at::Tensor x = TensorHandle::unwrap(info[0], "input");
    nets::AutocastScope scope(x.device().type(), autocastArg(info[1]));
    return TensorHandle::wrap(env, net->forward(x));
  });
}

Napi::Value NetworkHandle::kind(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), network(info.Env())->kind()); });
}
Napi::Value NetworkHandle::optionsJson(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&]() -> Napi::Value { return Napi::String::New(info.Env(), network(info.Env())->optionsJson()); });
}
Napi::Value NetworkHandle::setTraining(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    checkIdle(info.Env(), info[0].ToBoolean() ? "train" : "eval");
    network(info.Env())->setTraining(info[0].ToBoolean());
    return info.Env().Undefined();
  });
}
Napi::Value NetworkHandle::isTraining(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), network(info.Env())->isTraining()); });
}
Napi::Value NetworkHandle::namedParameters(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&]() -> Napi::Value { return namedToJs(info.Env(), network(info.Env())->namedParameters()); });
}
Napi::Value NetworkHandle::namedBuffers(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return namedToJs(info.Env(), network(info.Env())->namedBuffers()); });
}
Napi::Value NetworkHandle::stateDict(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return namedToJs(info.Env(), network(info.Env())->stateDict()); });
}
Napi::Value NetworkHandle::parameterCount(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(network(info.Env())->parameterCount()));
  });
}
Napi::Value NetworkHandle::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&] {
    checkUntouched(env, "to");
    auto device = parseDevice(info[0].As<Napi::String>().Utf8Value());
    std::optional<c10::ScalarType> dtype;
    if (info[1].IsString()) dtype = parseDtype(info[1].As<Napi::String>().Utf8Value());
    if (dtype) TORCH_CHECK(at::isFloatingType(*dtype), "to(): a network's dtype must be floating-point, got ", *dtype);
    network(env)->to(device, dtype);
    return env.Undefined();
  });
}
Napi::Value NetworkHandle::setChannelsLast(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    checkUntouched(info.Env(), "setChannelsLast");
    network(info.Env())->setChannelsLast(info[0].ToBoolean());
    return info.Env().Undefined();
  });
}
Napi::Value NetworkHandle::channelsLast(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&]() -> Napi::Value { return Napi::Boolean::New(info.Env(), network(info.Env())->channelsLast()); });
}
Napi::Value NetworkHandle::device(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), deviceName(network(info.Env())->device()));
  });
}
Napi::Value NetworkHandle::dtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(network(info.Env())->dtype())); });
}
Napi::Value NetworkHandle::clone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    checkIdle(env, "clone");
    return wrap(env, std::shared_ptr<nets::Network>(network(env)->clone()));
  });
}
// loadState(names, handles, strict) -> { missing, unexpected }
Napi::Value NetworkHandle::loadState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    checkUntouched(env, "loadStateDict");
    auto dict = namedFromJs(info[0], info[1], "state dict");
    auto report = nets::loadState(*network(env), dict, info[2].ToBoolean());
    Napi::Object out = Napi::Object::New(env);
    out.Set("missing", stringsToJs(env, report.missing));
    out.Set("unexpected", stringsToJs(env, report.unexpected));
    return out;
  });
}
Napi::Value NetworkHandle::dispose(const Napi::CallbackInfo& info) {
  if (net_) checkIdle(info.Env(), "dispose");
  net_.reset();
  return info.Env().Undefined();
}
Napi::Value NetworkHandle::isDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !net_); }

namespace {

int64_t intProp(Napi::Object o, const char* key) { return o.Get(key).ToNumber().Int64Value(); }

template <typename T>
std::vector<T> listProp(Napi::Object o, const char* key) {
  std::vector<T> out;
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(static_cast<T>(a.Get(i).ToNumber().DoubleValue()));
  return out;
}

// createUNet2D({inChannels, outChannels, features, dropout})
Napi::Value createUNet2D(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    Napi::Object o = info[0].As<Napi::Object>();
    nets::UNet2DOptions opts;
    opts.inChannels = intProp(o, "inChannels");
    opts.outChannels = intProp(o, "outChannels");
    opts.features = listProp<int64_t>(o, "features");
    opts.dropout = listProp<double>(o, "dropout");
    return NetworkHandle::wrap(env, nets::makeUNet2D(opts));
  });
}

// createVNet3D({inChannels, outChannels, nFilters, normalization, hasDropout, lastBlock?})
Napi::Value createVNet3D(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    Napi::Object o = info[0].As<Napi::Object>();
    nets::VNet3DOptions opts;
    opts.inChannels = intProp(o, "inChannels");
    opts.outChannels = intProp(o, "outChannels");
    opts.nFilters = intProp(o, "nFilters");
    opts.normalization = o.Get("normalization").ToString().Utf8Value();
    opts.hasDropout = o.Get("hasDropout").ToBoolean();
    if (o.Has("lastBlock")) opts.lastBlock = o.Get("lastBlock").ToBoolean();
    return NetworkHandle::wrap(env, nets::makeVNet3D(opts));
  });
}

// emaUpdate(teacher, student, alpha, includeBuffers)
Napi::Value emaUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&] {
    NetworkHandle& teacher = NetworkHandle::unwrap(info[0], "teacher");
    NetworkHandle& student = NetworkHandle::unwrap(info[1], "student");
    teacher.checkUntouched(env, "emaUpdate");
    student.checkIdle(env, "emaUpdate");
    nets::emaUpdate(*teacher.network(env), *student.network(env), info[2].ToNumber().DoubleValue(),
                    info[3].ToBoolean());
    return env.Undefined();
  });
}

}  // namespace

void registerNetworkApi(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NetworkHandle::define(env);
  addonData(env).networkCtor = Napi::Persistent(ctor);
  exports.Set("NetworkHandle", ctor);
  exports.Set("createUNet2D", Napi::Function::New<createUNet2D>(env, "createUNet2D"));
  exports.Set("createVNet3D", Napi::Function::New<createVNet3D>(env, "createVNet3D"));
  exports.Set("emaUpdate", Napi::Function::New<emaUpdate>(env, "emaUpdate"));
}

}  // namespace semiseg::binding
