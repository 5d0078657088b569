// runAsync(): runs `work` on the native compute threads (compute_queue.h) and settles a Promise on the JS
// thread with finish(result). Grad mode is thread-local in LibTorch, so the caller's mode is captured now
// and re-applied on the compute thread. `done` runs on the JS thread before the Promise settles.
//
// Results come back through one thread-safe function per environment (EnvChannel). When an environment
// is torn down (a terminated worker thread), Node frees its thread-safe functions; a cleanup hook marks
// the channel dead first, under the mutex the compute threads hold while calling it, so a finished job
// of a dead environment is dropped instead of calling freed memory.
#pragma once

#include <napi.h>

#include "compute_queue.h"
#include "errors.h"
#include "tensor/runtime.h"

#include <c10/core/GradMode.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace semiseg::binding {

struct JobBase {
  virtual ~JobBase() = default;
  virtual void settle(Napi::Env env) = 0;  // on the JS thread
  static void call(Napi::Env env, Napi::Function, void*, JobBase* job);
};

class EnvChannel {
 public:
  using Tsfn = Napi::TypedThreadSafeFunction<void, JobBase, &JobBase::call>;
  // Creates the channel of `env`; must run at addon init, before any job.
  static std::shared_ptr<EnvChannel> create(Napi::Env env);

  void jobStarted(Napi::Env env);           // JS thread: keeps the event loop alive while jobs are pending
  void jobSettled(Napi::Env env);           // JS thread
  void deliver(JobBase* job);               // compute thread: hands a finished job to the JS thread, or drops it
  int pending() const { return pending_; }  // JS thread: jobs of this environment not yet settled

 private:
  std::mutex mutex_;
  bool alive_ = true;
  int pending_ = 0;  // JS thread only
  Tsfn tsfn_;
};

std::shared_ptr<EnvChannel> envChannel(Napi::Env env);

template <typename R>
struct AsyncJob final : JobBase {
  std::function<R()> work;
  std::function<Napi::Value(Napi::Env, R&)> finish;
  std::function<void()> done;
  Napi::Promise::Deferred deferred;
  std::shared_ptr<EnvChannel> channel;
  bool grad = true;
  std::optional<R> result;
  NativeError error;

  AsyncJob(Napi::Env env, std::function<R()> w, std::function<Napi::Value(Napi::Env, R&)> f, std::function<void()> d)
      : work(std::move(w)),
        finish(std::move(f)),
        done(std::move(d)),
        deferred(Napi::Promise::Deferred::New(env)),
        channel(envChannel(env)),
        grad(gradEnabled()) {}

  void settle(Napi::Env env) override {
    channel->jobSettled(env);
    if (done) done();
    if (!result) {
      deferred.Reject(toJsError(env, error));
      return;
    }
    try {
      deferred.Resolve(finish(env, *result));
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
    } catch (...) {
      deferred.Reject(toJsError(env, describeCurrentException()));
    }
  }
};

template <typename R>
Napi::Promise runAsync(Napi::Env env, std::function<R()> work, std::function<Napi::Value(Napi::Env, R&)> finish,
                       std::function<void()> done = {}) {
  // Whatever fails before the job is queued releases what the caller took (busy counts) and the loop ref.
  AsyncJob<R>* job = nullptr;
  try {
    job = new AsyncJob<R>(env, std::move(work), std::move(finish), done);
  } catch (...) {
    if (done) done();
    throw;
  }
  Napi::Promise promise = job->deferred.Promise();
  job->channel->jobStarted(env);
  try {
    postJob([job] {
      try {
        c10::AutoGradMode mode(job->grad);
        job->result.emplace(job->work());
      } catch (...) {
        job->error = describeCurrentException();
      }
      auto channel = job->channel;
      channel->deliver(job);
    });
  } catch (...) {
    job->channel->jobSettled(env);
    if (job->done) job->done();
    delete job;
    throw;
  }
  return promise;
}

}  // namespace semiseg::binding
