// runAsync(): runs `work` on the libuv thread pool and settles a Promise on the JS thread with
// finish(result). Grad mode is thread-local in LibTorch, so the caller's mode is captured and
// re-applied in the worker. Results are released on the JS thread.
#pragma once

#include <napi.h>

#include "errors.h"
#include "tensor/runtime.h"
#include "tensor/value.h"

#include <c10/core/GradMode.h>

#include <functional>
#include <optional>

namespace semiseg::binding {

template <typename R>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<R()>;
  using Finish = std::function<Napi::Value(Napi::Env, R&)>;

  PromiseWorker(Napi::Env env, Work work, Finish finish, std::function<void()> done)
      : Napi::AsyncWorker(env, "semiseg:native"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        finish_(std::move(finish)),
        done_(std::move(done)),
        grad_(gradEnabled()) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      c10::AutoGradMode mode(grad_);
      result_.emplace(work_());
    } catch (...) {
      error_ = describeCurrentException();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (done_) done_();
    if (!result_) {
      deferred_.Reject(toJsError(env, error_));
      return;
    }
    try {
      deferred_.Resolve(finish_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(toJsError(env, describeCurrentException()));
    }
    result_.reset();
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  std::function<void()> done_;  // runs on the JS thread before settling (busy counters)
  bool grad_;
  std::optional<R> result_;
  NativeError error_;
};

template <typename R>
Napi::Promise runAsync(Napi::Env env, std::function<R()> work, std::function<Napi::Value(Napi::Env, R&)> finish,
                       std::function<void()> done = {}) {
  auto* w = new PromiseWorker<R>(env, std::move(work), std::move(finish), std::move(done));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace semiseg::binding
