// Preprocessing entry points (cpp/preprocess): one asynchronous call per case or inference input.
//   preprocess(image, label | undefined, { crop, channels: [{ scheme, lo, hi, mean, std, mask }], size, imageMode,
//              labelMode, classes }) -> Promise<{ image, label?, cropStart, cropShape }>
//   resample(x, size, mode) -> Promise<tensor>;  resampleLabels(labels, size, mode, classes) -> Promise<tensor>
#include "async.h"
#include "errors.h"
#include "preprocess/preprocess.h"
#include "tensor_api.h"
#include "tensor_handle.h"

namespace semiseg::binding {

namespace {

std::vector<int64_t> intList(Napi::Value v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string("preprocess(): '") + what + "' must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).ToNumber().Int64Value());
  return out;
}

Napi::Array toJs(Napi::Env env, const std::vector<int64_t>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(v[i])));
  return a;
}

Napi::Value preprocessCase(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    at::Tensor image = TensorHandle::unwrap(info[0], "image");
    std::optional<at::Tensor> label;
    if (!info[1].IsUndefined() && !info[1].IsNull()) label = TensorHandle::unwrap(info[1], "label");
    Napi::Object o = info[2].As<Napi::Object>();
    preprocess::Options opts;
    opts.crop = o.Get("crop").ToBoolean();
    Napi::Array chans = o.Get("channels").As<Napi::Array>();
    for (uint32_t i = 0; i < chans.Length(); ++i) {
      Napi::Object c = chans.Get(i).As<Napi::Object>();
      preprocess::Normalization n;
      n.scheme = c.Get("scheme").ToString().Utf8Value();
      n.lo = c.Get("lo").ToNumber().DoubleValue();
      n.hi = c.Get("hi").ToNumber().DoubleValue();
      n.mean = c.Get("mean").ToNumber().DoubleValue();
      n.std = c.Get("std").ToNumber().DoubleValue();
      n.mask = c.Has("mask") && c.Get("mask").ToBoolean();
      opts.channels.push_back(n);
    }
    if (o.Has("size") && !o.Get("size").IsUndefined()) opts.size = intList(o.Get("size"), "size");
    auto doubles = [&](const char* key) {
      std::vector<double> out;
      if (!o.Has(key) || o.Get(key).IsUndefined()) return out;
      Napi::Array a = o.Get(key).As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).ToNumber().DoubleValue());
      return out;
    };
    opts.spacing = doubles("spacing");
    opts.targetSpacing = doubles("targetSpacing");
    if (o.Has("keepAxis")) opts.keepAxis = o.Get("keepAxis").ToNumber().Int64Value();
    opts.imageMode = o.Get("imageMode").ToString().Utf8Value();
    opts.labelMode = o.Get("labelMode").ToString().Utf8Value();
    opts.classes = o.Get("classes").ToNumber().Int64Value();
    return runAsync<preprocess::Result>(
        env, [image, label, opts] { return preprocess::run(image, label, opts); },
        [](Napi::Env env, preprocess::Result& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("image", TensorHandle::wrap(env, r.image));
          if (r.label) out.Set("label", TensorHandle::wrap(env, *r.label));
          out.Set("cropStart", toJs(env, r.cropStart));
          out.Set("cropShape", toJs(env, r.cropShape));
          return out;
        },
        {}, storagesOf(label ? std::vector<at::Tensor>{image, *label} : std::vector<at::Tensor>{image}));
  });
}

Napi::Value resampleImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    at::Tensor x = TensorHandle::unwrap(info[0], "input");
    std::vector<int64_t> size = intList(info[1], "size");
    std::string mode = info[2].ToString().Utf8Value();
    return runAsync<at::Tensor>(
        env, [x, size, mode] { return preprocess::resample(x, size, mode); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorHandle::wrap(env, t); }, {}, storagesOf({x}));
  });
}

Napi::Value resampleLabelMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    at::Tensor x = TensorHandle::unwrap(info[0], "labels");
    std::vector<int64_t> size = intList(info[1], "size");
    std::string mode = info[2].ToString().Utf8Value();
    int64_t classes = info[3].ToNumber().Int64Value();
    return runAsync<at::Tensor>(
        env, [x, size, mode, classes] { return preprocess::resampleLabels(x, size, mode, classes); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorHandle::wrap(env, t); }, {}, storagesOf({x}));
  });
}

}  // namespace

void registerPreprocessApi(Napi::Env env, Napi::Object exports) {
  exports.Set("preprocess", Napi::Function::New<preprocessCase>(env, "preprocess"));
  exports.Set("resample", Napi::Function::New<resampleImage>(env, "resample"));
  exports.Set("resampleLabels", Napi::Function::New<resampleLabelMap>(env, "resampleLabels"));
}

}  // namespace semiseg::binding
