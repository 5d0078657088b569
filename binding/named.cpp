#include "named.h"

#include "tensor_handle.h"

namespace semiseg::binding {

Napi::Value namedToJs(Napi::Env env, const nets::NamedTensors& tensors) {
  Napi::Array names = Napi::Array::New(env, tensors.size());
  Napi::Array handles = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    names.Set(i, Napi::String::New(env, tensors[i].first));
    handles.Set(i, TensorHandle::wrap(env, tensors[i].second));
  }
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, names);
  pair.Set(1u, handles);
  return pair;
}

std::vector<std::string> stringsFromJs(Napi::Value v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of strings");
    out.push_back(s.As<Napi::String>().Utf8Value());
  }
  return out;
}

Napi::Array stringsToJs(Napi::Env env, const std::vector<std::string>& strings) {
  Napi::Array a = Napi::Array::New(env, strings.size());
  for (size_t i = 0; i < strings.size(); ++i) a.Set(i, Napi::String::New(env, strings[i]));
  return a;
}

nets::NamedTensors namedFromJs(Napi::Value names, Napi::Value handles, const char* what) {
  auto keys = stringsFromJs(names, what);
  if (!handles.IsArray() || handles.As<Napi::Array>().Length() != keys.size())
    throw Napi::TypeError::New(names.Env(), std::string(what) + ": names and tensors must be arrays of equal length");
  Napi::Array hs = handles.As<Napi::Array>();
  nets::NamedTensors out;
  out.reserve(keys.size());
  for (uint32_t i = 0; i < keys.size(); ++i) {
    std::string label = std::string(what) + " '" + keys[i] + "'";
    out.emplace_back(keys[i], TensorHandle::unwrap(hs.Get(i), label.c_str()));
  }
  return out;
}

}  // namespace semiseg::binding
