// File I/O off the JS thread: torch state-dict pickles and semiseg checkpoints (cpp/io/torch_file).
#include "async.h"
#include "errors.h"
#include "io/torch_file.h"
#include "named.h"
#include "tensor_handle.h"

namespace semiseg::binding {

namespace {

std::string pathArg(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "path must be a string");
  return info[0].As<Napi::String>().Utf8Value();
}

// writeStateDict(path, names, handles) -> Promise<void>
Napi::Value writeStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    std::string path = pathArg(info);
    auto dict = namedFromJs(info[1], info[2], "state dict");
    // copied now, on the JS thread: the weights may change while the file is written
    for (auto& [k, t] : dict) t = t.detach().clone();
    return runAsync<bool>(
        env, [path, dict] { return io::writeStateDict(path, dict), true; },
        [](Napi::Env env, bool&) { return env.Undefined(); }, {}, touchesNothing());
  });
}

// readStateDict(path, key?) -> Promise<[names, handles]>
Napi::Value readStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    std::string path = pathArg(info);
    std::string key = info.Length() > 1 && info[1].IsString() ? info[1].ToString().Utf8Value() : std::string();
    return runAsync<nets::NamedTensors>(
        env, [path, key] { return io::readStateDict(path, key); },
        [](Napi::Env env, nets::NamedTensors& d) { return namedToJs(env, d); }, {}, touchesNothing());
  });
}

// writeCheckpoint(path, modelNames, modelHandles, optNames, optHandles, meta, rngHandle?, auxNames?, auxHandles?)
//   -> Promise<void>
Napi::Value writeCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    io::Checkpoint c;
    std::string path = pathArg(info);
    c.model = namedFromJs(info[1], info[2], "model state");
    c.optimizer = namedFromJs(info[3], info[4], "optimizer state");
    c.meta = info[5].ToString().Utf8Value();
    if (!info[6].IsUndefined() && !info[6].IsNull()) c.rng = TensorHandle::unwrap(info[6], "rng state");
    if (info.Length() > 8 && !info[7].IsUndefined()) c.aux = namedFromJs(info[7], info[8], "further networks");
    // detach from the JS-owned tensors now: training may go on while the file is written
    for (auto& [k, t] : c.model) t = t.detach().clone();
    for (auto& [k, t] : c.optimizer) t = t.detach().clone();
    for (auto& [k, t] : c.aux) t = t.detach().clone();
    return runAsync<bool>(
        env, [path, c] { return io::writeCheckpoint(path, c), true; },
        [](Napi::Env env, bool&) { return env.Undefined(); }, {}, touchesNothing());
  });
}

// readCheckpoint(path) -> Promise<{ model: [names, handles], optimizer: [...], meta, rng }>
Napi::Value readCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    std::string path = pathArg(info);
    return runAsync<io::Checkpoint>(
        env, [path] { return io::readCheckpoint(path); },
        [](Napi::Env env, io::Checkpoint& c) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("model", namedToJs(env, c.model));
          o.Set("optimizer", namedToJs(env, c.optimizer));
          o.Set("aux", namedToJs(env, c.aux));
          o.Set("meta", Napi::String::New(env, c.meta));
          o.Set("rng", c.rng.defined() ? Napi::Value(TensorHandle::wrap(env, c.rng)) : env.Null());
          return o;
        },
        {}, touchesNothing());
  });
}

}  // namespace

void registerIoApi(Napi::Env env, Napi::Object exports) {
  exports.Set("writeStateDict", Napi::Function::New<writeStateDict>(env, "writeStateDict"));
  exports.Set("readStateDict", Napi::Function::New<readStateDict>(env, "readStateDict"));
  exports.Set("writeCheckpoint", Napi::Function::New<writeCheckpoint>(env, "writeCheckpoint"));
  exports.Set("readCheckpoint", Napi::Function::New<readCheckpoint>(env, "readCheckpoint"));
}

}  // namespace semiseg::binding
