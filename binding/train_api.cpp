// Optimizers (OptimizerHandle), the native supervised train step, and RNG state for checkpoints.
#include "async.h"
#include "compute_queue.h"
#include "dist/dist.h"
#include "dist_api.h"
#include "errors.h"
#include "named.h"
#include "network.h"
#include "tensor/runtime.h"
#include "tensor_handle.h"
#include "train/grad_scaler.h"
#include "train/optimizer.h"
#include "train/step.h"

namespace semiseg::binding {

namespace {

class OptimizerHandle : public Napi::ObjectWrap<OptimizerHandle> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "OptimizerHandle",
                       {
                           InstanceMethod<&OptimizerHandle::zeroGrad>("zeroGrad"),
                           InstanceMethod<&OptimizerHandle::step>("step"),
                           InstanceMethod<&OptimizerHandle::stepAsync>("stepAsync"),
                           InstanceMethod<&OptimizerHandle::unscaleGrads>("unscaleGrads"),
                           InstanceMethod<&OptimizerHandle::attachGradSync>("attachGradSync"),
                           InstanceMethod<&OptimizerHandle::detachGradSync>("detachGradSync"),
                           InstanceMethod<&OptimizerHandle::lr>("lr"),
                           InstanceMethod<&OptimizerHandle::setLr>("setLr"),
                           InstanceMethod<&OptimizerHandle::groupCount>("groupCount"),
                           InstanceMethod<&OptimizerHandle::state>("state"),
                           InstanceMethod<&OptimizerHandle::loadState>("loadState"),
                       });
  }
  explicit OptimizerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OptimizerHandle>(info) {}

  static OptimizerHandle& unwrap(Napi::Value v, const char* what) {
    Napi::Env env = v.Env();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addonData(env).optimizerCtor.Value()))
      throw Napi::TypeError::New(env, std::string(what) + " must be an optimizer handle");
    OptimizerHandle* h = Unwrap(v.As<Napi::Object>());
    h->get(env);
    return *h;
  }

  // The optimizer, or an error for a handle constructed from JS without one.
  train::Optimizer& get(Napi::Env env) const {
    if (!opt) throw Napi::Error::New(env, "optimizer: this handle holds no optimizer (use createOptimizer)");
    return *opt;
  }

  std::shared_ptr<train::Optimizer> opt;
  std::shared_ptr<int> busy = std::make_shared<int>(0);  // async steps in flight

 private:
  void checkIdle(Napi::Env env) const {
    if (*busy > 0) throw Napi::Error::New(env, "optimizer: busy with an async train step; await it first");
  }

 public:
  // The storages of the parameters and of the optimizer state (momentum, Adam moments), which step()
  // changes in place and stateDict() hands out.
  std::vector<at::Tensor> stepTensors(Napi::Env env) const {
    std::vector<at::Tensor> ts = get(env).parameters();
    for (auto& [name, t] : get(env).state()) ts.push_back(t);
    return ts;
  }
  // step() and zeroGrad() (and trainStep) write parameters, gradients and state that a pending async job of
  // this thread may be reading (a forward of the same network): they wait for none, so they refuse instead.
  // Pending jobs on other tensors (another network's inference, another training) do not count.
  void checkNoPendingJobs(Napi::Env env, const char* what) const {
    checkIdle(env);
    const auto channel = envChannel(env);
    int n = channel->touching(storagesOf(stepTensors(env)));
    // gradients only once no pending job touches the parameters (a backward or step could be setting them)
    if (n == 0) {
      std::vector<at::Tensor> grads;
      for (const at::Tensor& p : get(env).parameters()) grads.push_back(p.grad());
      n = channel->touching(storagesOf(grads));
    }
    EnvChannel::refuseIfPending(env, n, std::string("optimizer.") + what, "its parameters are");
  }

 private:
  Napi::Value zeroGrad(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkNoPendingJobs(info.Env(), "zeroGrad");
      get(info.Env()).zeroGrad();
      return info.Env().Undefined();
    });
  }
  Napi::Value step(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkNoPendingJobs(info.Env(), "step");
      get(info.Env()).step();
      return info.Env().Undefined();
    });
  }
  // stepAsync() -> Promise: the step on the compute threads (with a gradient all-reduce attached, the
  // wait for the other ranks happens there, not on the JS thread).
  Napi::Value stepAsync(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      checkNoPendingJobs(info.Env(), "stepAsync");
      ++*busy;
      auto o = opt;
      return runAsync<bool>(
          info.Env(),
          [o] {
            o->step();
            return true;
          },
          [](Napi::Env env, bool&) { return env.Undefined(); }, [b = busy] { --*b; },
          storagesOf(stepTensors(info.Env())));
    });
  }
  // unscaleGrads(scale) -> whether every gradient is finite (train/grad_scaler.h)
  Napi::Value unscaleGrads(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      checkNoPendingJobs(info.Env(), "unscaleGrads");
      const double scale = info[0].ToNumber().DoubleValue();
      return Napi::Boolean::New(info.Env(), train::unscaleGradients(get(info.Env()).parameters(), scale));
    });
  }
  // attachGradSync(group, bucketBytes)
  Napi::Value attachGradSync(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkIdle(info.Env());
      auto group = unwrapGroup(info[0], "group");
      dist::attachGradSync(group, get(info.Env()), info[1].ToNumber().Int64Value());
      return info.Env().Undefined();
    });
  }
  Napi::Value detachGradSync(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkNoPendingJobs(info.Env(), "detachGradSync");  // a backward in flight may be running its hooks
      get(info.Env()).setStepHook(nullptr);
      return info.Env().Undefined();
    });
  }
  Napi::Value lr(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      return Napi::Number::New(info.Env(), get(info.Env()).lr(static_cast<size_t>(info[0].ToNumber().Int64Value())));
    });
  }
  // setLr(lr, group?)
  Napi::Value setLr(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkIdle(info.Env());
      const double lr = info[0].ToNumber().DoubleValue();
      if (info[1].IsNumber())
        get(info.Env()).setGroupLr(static_cast<size_t>(info[1].ToNumber().Int64Value()), lr);
      else
        get(info.Env()).setLr(lr);
      return info.Env().Undefined();
    });
  }
  Napi::Value groupCount(const Napi::CallbackInfo& info) {
    return guard(info.Env(),
                 [&] { return Napi::Number::New(info.Env(), static_cast<double>(get(info.Env()).groupCount())); });
  }
  Napi::Value state(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkIdle(info.Env());
      return namedToJs(info.Env(), get(info.Env()).state());
    });
  }
  Napi::Value loadState(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      checkIdle(info.Env());
      get(info.Env()).loadState(namedFromJs(info[0], info[1], "optimizer state"));
      return info.Env().Undefined();
    });
  }
};

double numberProp(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// createOptimizer(kind 'sgd' | 'adam', groups: [{ params: handle[], options: {...} }])
Napi::Value createOptimizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const std::string kind = info[0].ToString().Utf8Value();
    if (kind != "sgd" && kind != "adam") throw Napi::TypeError::New(env, "optimizer kind must be 'sgd' or 'adam'");
    Napi::Array groups = info[1].As<Napi::Array>();
    std::vector<train::ParamGroup> gs;
    for (uint32_t g = 0; g < groups.Length(); ++g) {
      Napi::Object grp = groups.Get(g).As<Napi::Object>();
      Napi::Array params = grp.Get("params").As<Napi::Array>();
      Napi::Object o = grp.Get("options").As<Napi::Object>();
      train::ParamGroup pg;
      for (uint32_t i = 0; i < params.Length(); ++i)
        pg.params.push_back(TensorHandle::unwrap(params.Get(i), "parameter"));
      pg.options.lr = numberProp(o, "lr", 0.01);
      pg.options.momentum = numberProp(o, "momentum", 0);
      pg.options.dampening = numberProp(o, "dampening", 0);
      pg.options.weightDecay = numberProp(o, "weightDecay", 0);
      pg.options.nesterov = o.Get("nesterov").ToBoolean();
      pg.options.beta1 = numberProp(o, "beta1", 0.9);
      pg.options.beta2 = numberProp(o, "beta2", 0.999);
      pg.options.eps = numberProp(o, "eps", 1e-8);
      gs.push_back(std::move(pg));
    }
    auto opt = std::make_shared<train::Optimizer>(
        kind == "sgd" ? train::Optimizer::Kind::SGD : train::Optimizer::Kind::Adam, std::move(gs));
    Napi::Object obj = addonData(env).optimizerCtor.New({});
    OptimizerHandle::Unwrap(obj)->opt = std::move(opt);
    return obj;
  });
}

// trainStep(network, optimizer, input, target, { kind, squared, perSample, smooth, includeBackground }) ->
// Promise<loss>
Napi::Value trainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    NetworkHandle& nh = NetworkHandle::unwrap(info[0], "network");
    OptimizerHandle& oh = OptimizerHandle::unwrap(info[1], "optimizer");
    if (*oh.busy > 0)
      throw Napi::Error::New(env, "trainStep(): the optimizer is busy with another step; await it first");
    oh.checkNoPendingJobs(env, "trainStep");
    at::Tensor x = TensorHandle::unwrap(info[2], "input");
    at::Tensor y = TensorHandle::unwrap(info[3], "target");
    Napi::Object o = info[4].As<Napi::Object>();
    train::LossSpec spec;
    spec.kind = o.Get("kind").ToString().Utf8Value();
    spec.dice.squared = o.Get("squared").ToBoolean();
    spec.dice.perSample = o.Get("perSample").ToBoolean();
    spec.dice.smooth = numberProp(o, "smooth", 1e-5);
    spec.dice.includeBackground = o.Get("includeBackground").ToBoolean();
    auto net = nh.network(env);
    net->checkInput(x, "trainStep");
    auto release = nh.enter(env, true, "trainStep");
    ++*oh.busy;
    auto opt = oh.opt;
    return runAsync<double>(
        env, [net, opt, x, y, spec] { return train::supervisedStep(*net, *opt, x, y, spec); },
        [](Napi::Env env, double& loss) { return Napi::Number::New(env, loss); },
        [release, busy = oh.busy] {
          release();
          --*busy;
        },
        [&] {
          std::vector<at::Tensor> touched = oh.stepTensors(env);
          touched.push_back(x);
          touched.push_back(y);
          return NetworkHandle::storages(*net, std::move(touched));
        }());
  });
}

Napi::Value rngState(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return TensorHandle::wrap(info.Env(), cpuRngState()); });
}

Napi::Value setRngState(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    setCpuRngState(TensorHandle::unwrap(info[0], "state"));
    return info.Env().Undefined();
  });
}

}  // namespace

void registerTrainApi(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = OptimizerHandle::define(env);
  addonData(env).optimizerCtor = Napi::Persistent(ctor);
  exports.Set("OptimizerHandle", ctor);
  exports.Set("createOptimizer", Napi::Function::New<createOptimizer>(env, "createOptimizer"));
  exports.Set("trainStep", Napi::Function::New<trainStep>(env, "trainStep"));
  exports.Set("rngState", Napi::Function::New<rngState>(env, "rngState"));
  exports.Set("setRngState", Napi::Function::New<setRngState>(env, "setRngState"));
}

}  // namespace semiseg::binding
