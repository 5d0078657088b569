// runAsync(): runs `work` on the native compute threads (compute_queue.h) and settles a Promise on the JS
// thread with finish(result). Grad mode is thread-local in LibTorch, so the caller's mode is captured now
// and re-applied on the compute thread. `done` runs on the JS thread before the Promise settles.
//
// Each job says which tensors it reads or writes (`Touches`: their storages); an optimizer refuses to
// change parameters, gradients or its state that a pending job of its thread touches, while jobs
// on other tensors (inference of another network, a second training, decoding) run on. A job that does not
// say (std::nullopt) counts as touching everything.
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

#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace semiseg::binding {

// The storages (StorageImpl*) of the tensors a job touches; std::nullopt: unknown (everything).
using Touches = std::optional<std::vector<const void*>>;
// The storages of the defined tensors, each once. Not their gradients: a job that writes gradients
// (a backward, a step) lists the parameters, and reading .grad() here could race with a compute thread
// setting or freeing it.
std::vector<const void*> storagesOf(const std::vector<at::Tensor>& tensors);
// A job that touches no existing tensor (it reads a file, writes clones, makes new tensors).
inline Touches touchesNothing() { return Touches(std::in_place); }

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

  // JS thread: keeps the event loop alive while jobs are pending, and records what each touches.
  void jobStarted(Napi::Env env, const Touches& touches);
  void jobSettled(Napi::Env env, const Touches& touches);  // JS thread
  void deliver(JobBase* job);               // compute thread: hands a finished job to the JS thread, or drops it
  int pending() const { return pending_; }  // JS thread: jobs of this environment not yet settled
  // JS thread: how many pending jobs may touch one of `storages` (every job that did not say counts).
  int touching(const std::vector<const void*>& storages) const;
  // JS thread: throws "<fn>(): <what> in use by N pending async native call(s); await them first" when
  // pending jobs touch one of `storages` (the one wording of every write refused for that reason).
  void refuseIfTouched(Napi::Env env, const std::vector<const void*>& storages, const std::string& fn,
                       const std::string& what) const {
    refuseIfPending(env, touching(storages), fn, what);
  }
  static void refuseIfPending(Napi::Env env, int n, const std::string& fn, const std::string& what) {
    if (n > 0)
      throw Napi::Error::New(env, fn + "(): " + what + " in use by " + std::to_string(n) +
                                      " pending async native call(s); await them first");
  }

 private:
  std::mutex mutex_;
  bool alive_ = true;
  int pending_ = 0;                            // JS thread only
  int unknown_ = 0;                            // JS thread only: pending jobs that did not say what they touch
  std::unordered_map<const void*, int> used_;  // JS thread only: storage -> pending jobs touching it
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
  Touches touches;
  bool grad = true;
  std::optional<R> result;
  NativeError error;

  AsyncJob(Napi::Env env, std::function<R()> w, std::function<Napi::Value(Napi::Env, R&)> f, std::function<void()> d,
           Touches t)
      : work(std::move(w)),
        finish(std::move(f)),
        done(std::move(d)),
        deferred(Napi::Promise::Deferred::New(env)),
        channel(envChannel(env)),
        touches(std::move(t)),
        grad(gradEnabled()) {}

  void settle(Napi::Env env) override {
    channel->jobSettled(env, touches);
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

// `touches`: the storages the job reads or writes (storagesOf), std::nullopt when not known.
template <typename R>
Napi::Promise runAsync(Napi::Env env, std::function<R()> work, std::function<Napi::Value(Napi::Env, R&)> finish,
                       std::function<void()> done = {}, Touches touches = std::nullopt) {
  // Whatever fails before the job is queued releases what the caller took (busy counts) and the loop ref.
  AsyncJob<R>* job = nullptr;
  try {
    job = new AsyncJob<R>(env, std::move(work), std::move(finish), done, std::move(touches));
  } catch (...) {
    if (done) done();
    throw;
  }
  Napi::Promise promise = job->deferred.Promise();
  job->channel->jobStarted(env, job->touches);
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
    job->channel->jobSettled(env, job->touches);
    if (job->done) job->done();
    delete job;
    throw;
  }
  return promise;
}

}  // namespace semiseg::binding
