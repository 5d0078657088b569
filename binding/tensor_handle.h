// TensorHandle: the JS object that owns one at::Tensor (the opaque handle lib/tensor.ts wraps).
// Native bytes are reported to V8 while the handle holds its tensor; dispose() releases at once,
// the GC finaliser is only a safety net.
#pragma once

#include <napi.h>

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace semiseg::binding {

class EnvChannel;  // async.h

struct AddonData {
  std::shared_ptr<EnvChannel> channel;  // how compute threads hand results back to this environment
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference networkCtor;
  Napi::FunctionReference optimizerCtor;
  Napi::FunctionReference cancelCtor;
  Napi::FunctionReference groupCtor;
  // Shared with every handle so a finaliser that runs during teardown never outlives it.
  std::shared_ptr<std::atomic<int64_t>> live = std::make_shared<std::atomic<int64_t>>(0);
};

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, at::Tensor tensor);
  // The tensor of a JS value that must be a live handle; `what` names it in the error.
  static const at::Tensor& unwrap(Napi::Value value, const char* what);
  static bool isHandle(Napi::Env env, Napi::Value value);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

  const at::Tensor& tensor() const { return tensor_; }

 private:
  void hold(Napi::Env env, at::Tensor tensor);
  void release(Napi::Env env);
  void checkLive(Napi::Env env) const;

  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value isDisposed(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value requiresGrad(const Napi::CallbackInfo& info);
  Napi::Value nbytes(const Napi::CallbackInfo& info);

  at::Tensor tensor_;
  int64_t accounted_ = 0;
  std::shared_ptr<std::atomic<int64_t>> live_;
};

AddonData& addonData(Napi::Env env);

}  // namespace semiseg::binding
