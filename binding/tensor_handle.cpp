#include "tensor_handle.h"

#include "errors.h"
#include "tensor/options.h"

namespace semiseg::binding {

AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Function TensorHandle::define(Napi::Env env) {
  return DefineClass(env, "TensorHandle",
                     {
                         InstanceMethod<&TensorHandle::dispose>("dispose"),
                         InstanceMethod<&TensorHandle::isDisposed>("isDisposed"),
                         InstanceMethod<&TensorHandle::shape>("shape"),
                         InstanceMethod<&TensorHandle::dtype>("dtype"),
                         InstanceMethod<&TensorHandle::device>("device"),
                         InstanceMethod<&TensorHandle::requiresGrad>("requiresGrad"),
                         InstanceMethod<&TensorHandle::nbytes>("nbytes"),
                     });
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

Napi::Object TensorHandle::wrap(Napi::Env env, at::Tensor tensor) {
  Napi::Object obj = addonData(env).tensorCtor.New({});
  Unwrap(obj)->hold(env, std::move(tensor));
  return obj;
}

bool TensorHandle::isHandle(Napi::Env env, Napi::Value value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(addonData(env).tensorCtor.Value());
}

const at::Tensor& TensorHandle::unwrap(Napi::Value value, const char* what) {
  Napi::Env env = value.Env();
  if (!isHandle(env, value)) throw Napi::TypeError::New(env, std::string(what) + " must be a tensor handle");
  TensorHandle* h = Unwrap(value.As<Napi::Object>());
  if (!h->tensor_.defined()) throw Napi::Error::New(env, std::string(what) + " is a disposed tensor");
  return h->tensor_;
}

void TensorHandle::hold(Napi::Env env, at::Tensor tensor) {
  tensor_ = std::move(tensor);
  live_ = addonData(env).live;
  live_->fetch_add(1);
  accounted_ = static_cast<int64_t>(tensor_.nbytes());
  Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
}

void TensorHandle::release(Napi::Env env) {
  if (!tensor_.defined()) return;
  tensor_ = at::Tensor();
  live_->fetch_sub(1);
  // Called from finalisers too, where a C++ exception must not escape: use the C API, ignore its status.
  int64_t total = 0;
  if (accounted_ != 0) napi_adjust_external_memory(env, -accounted_, &total);
  accounted_ = 0;
}

void TensorHandle::Finalize(Napi::Env env) { release(env); }

void TensorHandle::checkLive(Napi::Env env) const {
  if (!tensor_.defined()) throw Napi::Error::New(env, "the tensor has been disposed");
}

Napi::Value TensorHandle::dispose(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

Napi::Value TensorHandle::isDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.defined());
}

Napi::Value TensorHandle::shape(const Napi::CallbackInfo& info) {
  checkLive(info.Env());
  auto sizes = tensor_.sizes();
  Napi::Array out = Napi::Array::New(info.Env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
  return out;
}

Napi::Value TensorHandle::dtype(const Napi::CallbackInfo& info) {
  checkLive(info.Env());
  return Napi::String::New(info.Env(), dtypeName(tensor_.scalar_type()));
}

Napi::Value TensorHandle::device(const Napi::CallbackInfo& info) {
  checkLive(info.Env());
  return Napi::String::New(info.Env(), deviceName(tensor_.device()));
}

Napi::Value TensorHandle::requiresGrad(const Napi::CallbackInfo& info) {
  checkLive(info.Env());
  return Napi::Boolean::New(info.Env(), tensor_.requires_grad());
}

Napi::Value TensorHandle::nbytes(const Napi::CallbackInfo& info) {
  checkLive(info.Env());
  return Napi::Number::New(info.Env(), static_cast<double>(tensor_.nbytes()));
}

}  // namespace semiseg::binding
