// NetworkHandle: the JS object that owns one segmentation network (cpp/nets). Async calls hold the
// network alive and mark it busy; mutating it (mode, device, weights, dispose) while busy is an error,
// and only eval-mode forwards may overlap.
#pragma once

#include <napi.h>

#include "nets/network.h"

#include <memory>
#include <vector>

namespace semiseg::binding {

class NetworkHandle : public Napi::ObjectWrap<NetworkHandle> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<nets::Network> net);
  // The live network of a JS value that must be a NetworkHandle; `what` names it in errors.
  static NetworkHandle& unwrap(Napi::Value value, const char* what);

  explicit NetworkHandle(const Napi::CallbackInfo& info);

  std::shared_ptr<nets::Network> network(Napi::Env env) const;
  // Marks an async call in flight (training: a train-mode forward or a step); returns the release.
  std::function<void()> enter(Napi::Env env, bool training, const char* what);
  void checkIdle(Napi::Env env, const char* what) const;
  // Throws unless a call of this kind may start now (see the class comment).
  void checkCanRun(Napi::Env env, bool training, const char* what) const;
  // What an async call on this network touches (async.h): its parameters and buffers, plus `extra`.
  static std::vector<const void*> storages(const nets::Network& net, std::vector<at::Tensor> extra = {});
  // checkIdle, and no pending call of this thread touches the network's tensors (a backward through it,
  // a read of a weight, a step of its optimizer): for calls that change them.
  void checkUntouched(Napi::Env env, const char* what) const;

 private:
  Napi::Value kind(const Napi::CallbackInfo& info);
  Napi::Value optionsJson(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value forwardSync(const Napi::CallbackInfo& info);
  Napi::Value forwardFeatures(const Napi::CallbackInfo& info);
  Napi::Value setTraining(const Napi::CallbackInfo& info);
  Napi::Value isTraining(const Napi::CallbackInfo& info);
  Napi::Value namedParameters(const Napi::CallbackInfo& info);
  Napi::Value namedBuffers(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value parameterCount(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value setChannelsLast(const Napi::CallbackInfo& info);
  Napi::Value channelsLast(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value clone(const Napi::CallbackInfo& info);
  Napi::Value loadState(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value isDisposed(const Napi::CallbackInfo& info);

  Napi::Value runForward(const Napi::CallbackInfo& info, bool features);

  std::shared_ptr<nets::Network> net_;
  std::shared_ptr<std::pair<int, int>> busy_ = std::make_shared<std::pair<int, int>>(0, 0);  // (all, training)
};

void registerNetworkApi(Napi::Env env, Napi::Object exports);

}  // namespace semiseg::binding
