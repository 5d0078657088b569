#include "async.h"

#include "tensor_handle.h"

#include <algorithm>

namespace semiseg::binding {

void JobBase::call(Napi::Env env, Napi::Function, void*, JobBase* job) {
  // A thread-safe function's callback must not throw: while a worker thread stops, settling a Promise
  // fails (JS cannot run there any more) and node-addon-api reports that as a C++ exception.
  try {
    if (env != nullptr && job != nullptr) {
      Napi::HandleScope scope(env);
      job->settle(env);
    }
  } catch (...) {
  }
  delete job;
}

std::shared_ptr<EnvChannel> EnvChannel::create(Napi::Env env) {
  auto channel = std::make_shared<EnvChannel>();
  channel->tsfn_ = Tsfn::New(env, "semiseg:native", 0, 1);
  channel->tsfn_.Unref(env);
  // Registered after the thread-safe function, so it runs before Node's teardown frees it.
  env.AddCleanupHook([weak = std::weak_ptr<EnvChannel>(channel)] {
    if (auto c = weak.lock()) {
      std::lock_guard<std::mutex> lock(c->mutex_);
      c->alive_ = false;
    }
  });
  return channel;
}

std::vector<const void*> storagesOf(const std::vector<at::Tensor>& tensors) {
  std::vector<const void*> out;
  out.reserve(tensors.size());
  for (const at::Tensor& t : tensors)
    if (t.defined() && t.has_storage()) out.push_back(t.storage().unsafeGetStorageImpl());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void EnvChannel::jobStarted(Napi::Env env, const Touches& touches) {
  if (pending_++ == 0) tsfn_.Ref(env);
  if (!touches)
    ++unknown_;
  else
    for (const void* s : *touches) ++used_[s];
}

void EnvChannel::jobSettled(Napi::Env env, const Touches& touches) {
  if (--pending_ == 0) tsfn_.Unref(env);
  if (!touches)
    --unknown_;
  else
    for (const void* s : *touches)
      if (auto it = used_.find(s); it != used_.end() && --it->second == 0) used_.erase(it);
}

int EnvChannel::touching(const std::vector<const void*>& storages) const {
  int n = unknown_;
  for (const void* s : storages)
    if (auto it = used_.find(s); it != used_.end()) n = std::max(n, unknown_ + it->second);
  return n;
}

void EnvChannel::deliver(JobBase* job) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!alive_ || tsfn_.NonBlockingCall(job) != napi_ok) delete job;  // the environment is gone
}

std::shared_ptr<EnvChannel> envChannel(Napi::Env env) { return addonData(env).channel; }

}  // namespace semiseg::binding
