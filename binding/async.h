// runAsync(): runs `work` on the libuv thread pool and settles a Promise on the JS thread.
// Grad mode is thread-local in LibTorch, so the caller's mode is captured and re-applied in the worker.
#pragma once

#include <napi.h>

#include "errors.h"
#include "tensor/runtime.h"
#include "tensor/value.h"

#include <c10/core/GradMode.h>

#include <functional>

namespace semiseg::binding {

using Work = std::function<Value()>;
using Finish = std::function<Napi::Value(Napi::Env, const Value&)>;

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, Work work, Finish finish)
      : Napi::AsyncWorker(env, "semiseg:native"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        finish_(std::move(finish)),
        grad_(gradEnabled()) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      c10::AutoGradMode mode(grad_);
      result_ = work_();
    } catch (...) {
      error_ = describeCurrentException();
      failed_ = true;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(toJsError(env, error_));
      return;
    }
    try {
      deferred_.Resolve(finish_(env, result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(toJsError(env, describeCurrentException()));
    }
    result_ = Value{};  // drop tensors on the JS thread, before the worker is deleted
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  bool grad_;
  Value result_;
  NativeError error_;
  bool failed_ = false;
};

inline Napi::Promise runAsync(Napi::Env env, Work work, Finish finish) {
  auto* w = new PromiseWorker(env, std::move(work), std::move(finish));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace semiseg::binding
