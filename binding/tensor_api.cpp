// The tensor entry points of the addon: the op table (sync and async), data in and out, runtime controls.
// Data crosses by copy in both directions: TypedArray -> new tensor, tensor -> fresh TypedArray.
#include "tensor_api.h"

#include "async.h"
#include "compute_queue.h"
#include "errors.h"
#include "tensor/cpu_cache.h"
#include "tensor/data.h"
#include "tensor/ops.h"
#include "tensor/options.h"
#include "tensor/runtime.h"
#include "tensor_handle.h"
#include "values.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace semiseg::binding {

namespace {

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Args opArgs(const Napi::CallbackInfo& info) {
  std::string name = stringArg(info, 0, "op name");
  if (!info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "op arguments must be an array");
  return Args(std::move(name), fromJsArray(info[1].As<Napi::Array>()));
}

// op(name, args): runs one op of the table on the JS thread. The ops that change their input in place
// refuse while a pending async call of this thread touches it (it would read torn values).
Napi::Value op(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    Args args = opArgs(info);
    const std::string& name = args.op();
    if ((name == "copyFrom" || name == "setRequiresGrad" || name == "zeroGrad") && args.isTensor(0)) {
      envChannel(info.Env())->refuseIfTouched(info.Env(), storagesOf({args.tensor(0, "input")}), name, "the tensor is");
    }
    return toJs(info.Env(), callOp(args));
  });
}

// opAsync(name, args): the same on the thread pool; resolves with the result.
Napi::Value opAsync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    auto args = std::make_shared<Args>(opArgs(info));
    TensorList touched = args->allTensors();
    // a backward writes the gradients of every leaf it reaches (the parameters of the networks it ran)
    if (args->op() == "backward" && args->isTensor(0)) {
      TensorList leaves = autogradLeaves(args->tensor(0, "input"));
      touched.insert(touched.end(), leaves.begin(), leaves.end());
    }
    return runAsync<Value>(
        info.Env(), [args] { return callOp(*args); }, [](Napi::Env env, Value& v) { return toJs(env, v); }, {},
        storagesOf(touched));
  });
}

// A fresh TypedArray holding an exportable tensor's values (one copy). The memory is allocated here and
// handed to V8 (an external buffer): when V8 allocates it and cannot, it stops the process, while a
// failed malloc is an exception like any other.
Napi::Value typedArrayOf(Napi::Env env, const at::Tensor& t) {
  const size_t n = static_cast<size_t>(t.numel());
  if (n > (size_t{1} << 32) - 1)
    throw Napi::RangeError::New(env,
                                "the tensor has " + std::to_string(n) +
                                    " elements, more than a JavaScript TypedArray holds (2^32 - 1): read it in parts");
  void* data = std::malloc(std::max<size_t>(t.nbytes(), 1));
  if (!data)
    throw Napi::RangeError::New(env, "out of memory: cannot allocate " + std::to_string(t.nbytes()) +
                                         " bytes to read the tensor into JavaScript");
  if (t.nbytes() > 0) std::memcpy(data, t.const_data_ptr(), t.nbytes());
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, data, t.nbytes(), [](Napi::Env, void* p) { std::free(p); });
  switch (t.scalar_type()) {
    case c10::ScalarType::Float: return Napi::Float32Array::New(env, n, buf, 0);
    case c10::ScalarType::Double: return Napi::Float64Array::New(env, n, buf, 0);
    case c10::ScalarType::Int: return Napi::Int32Array::New(env, n, buf, 0);
    case c10::ScalarType::Long: return Napi::TypedArrayOf<int64_t>::New(env, n, buf, 0, napi_bigint64_array);
    case c10::ScalarType::Byte:
    case c10::ScalarType::Bool: return Napi::Uint8Array::New(env, n, buf, 0);
    default: throw Napi::TypeError::New(env, "cannot export dtype " + dtypeName(t.scalar_type()));
  }
}

// toData(handle): the values as a fresh TypedArray (float16/bfloat16 widened to Float32Array,
// int64 as BigInt64Array, bool and uint8 as Uint8Array).
Napi::Value toData(const Napi::CallbackInfo& info) {
  return guard(info.Env(),
               [&] { return typedArrayOf(info.Env(), exportable(TensorHandle::unwrap(info[0], "tensor"))); });
}

Napi::Value toDataAsync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    at::Tensor t = TensorHandle::unwrap(info[0], "tensor");
    return runAsync<at::Tensor>(
        info.Env(), [t] { return exportable(t); }, [](Napi::Env env, at::Tensor& v) { return typedArrayOf(env, v); },
        {}, storagesOf({t}));
  });
}

// fromData(typedArray, shape, srcDtype, dtype, device, requiresGrad): copies the array into a new tensor.
Napi::Value fromData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "data must be a TypedArray");
    Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
    Value shape = fromJs(info[1], 1);
    if (!std::holds_alternative<IntList>(shape)) throw Napi::TypeError::New(env, "shape must be a list of integers");
    c10::ScalarType src = parseDtype(stringArg(info, 2, "source dtype"), "source dtype");
    const uint8_t* base = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    if (c10::elementSize(src) != arr.ByteLength() / std::max<size_t>(arr.ElementLength(), 1) && arr.ElementLength() > 0)
      throw Napi::TypeError::New(env, "data's element size does not match its source dtype");
    at::Tensor t =
        fromBytes(base, arr.ByteLength(), std::get<IntList>(shape), src, parseDtype(stringArg(info, 3, "dtype")),
                  parseDevice(stringArg(info, 4, "device")), info[5].ToBoolean().Value());
    return TensorHandle::wrap(env, std::move(t));
  });
}

// fromRawBytes(uint8Array, shape, dtype): the bytes as native-endian elements of dtype (a copy).
Napi::Value fromRawBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "bytes must be a Uint8Array");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    Value shape = fromJs(info[1], 1);
    if (!std::holds_alternative<IntList>(shape)) throw Napi::TypeError::New(env, "shape must be a list of integers");
    c10::ScalarType dtype = parseDtype(stringArg(info, 2, "dtype"));
    at::Tensor t = fromBytes(bytes.Data(), bytes.ByteLength(), std::get<IntList>(shape), dtype, dtype,
                             c10::Device(c10::kCPU), false);
    return TensorHandle::wrap(env, std::move(t));
  });
}

// toRawBytes(handle): a fresh Uint8Array of the values in the tensor's own dtype (no widening).
Napi::Value toRawBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const at::Tensor& src = TensorHandle::unwrap(info[0], "tensor");
    at::Tensor t = src.detach().to(c10::Device(c10::kCPU)).contiguous();
    Napi::Uint8Array out = Napi::Uint8Array::New(env, t.nbytes());
    if (t.nbytes() > 0) std::memcpy(out.Data(), t.const_data_ptr(), t.nbytes());
    return out;
  });
}

Napi::Value liveTensors(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(addonData(info.Env()).live->load()));
}

// V8's count of external bytes (what AdjustExternalMemory has reported, from every source).
Napi::Value externalMemory(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(),
                           static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(info.Env(), 0)));
}

Napi::Value manualSeedJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    Value v = fromJs(info[0], 0);
    auto* seed = std::get_if<int64_t>(&v);
    if (!seed || *seed < 0) throw Napi::RangeError::New(info.Env(), "seed must be an integer >= 0");
    manualSeed(static_cast<uint64_t>(*seed));
    return info.Env().Undefined();
  });
}

Napi::Value setNumThreadsJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    setNumThreads(info[0].ToNumber().Int64Value());
    return info.Env().Undefined();
  });
}

Napi::Value getNumThreadsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(numThreads()));
}

Napi::Value isGradEnabledJs(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), gradEnabled()); }

Napi::Value setGradEnabledJs(const Napi::CallbackInfo& info) {
  setGradEnabled(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value cudaIsAvailableJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return Napi::Boolean::New(info.Env(), cudaAvailable()); });
}

Napi::Value cudaSynchronizeJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    cudaSynchronize(info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0);
    return info.Env().Undefined();
  });
}

Napi::Value cudaDeviceCountJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return Napi::Number::New(info.Env(), static_cast<double>(cudaDeviceCount())); });
}

// setMaxConcurrentJobs(n): how many native jobs may run at once (compute threads).
Napi::Value setMaxConcurrentJobsJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    setMaxConcurrentJobs(static_cast<int>(info[0].ToNumber().Int32Value()));
    return info.Env().Undefined();
  });
}

Napi::Value prepareExitJs(const Napi::CallbackInfo& info) {
  drainForExit();
  return info.Env().Undefined();
}

Napi::Value maxConcurrentJobsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), maxConcurrentJobs());
}

// pendingJobs(): async calls of this environment (thread) not yet settled.
Napi::Value pendingJobsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), envChannel(info.Env())->pending());
}

// cpuCache(): the CPU block cache's counters (tensor/cpu_cache.h)
Napi::Value cpuCacheStatsJs(const Napi::CallbackInfo& info) {
  const CpuCacheStats s = cpuCacheStats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("enabled", s.enabled);
  o.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  o.Set("inUseBytes", static_cast<double>(s.inUseBytes));
  o.Set("peakInUseBytes", static_cast<double>(s.peakInUseBytes));
  o.Set("hits", static_cast<double>(s.hits));
  o.Set("misses", static_cast<double>(s.misses));
  o.Set("releases", static_cast<double>(s.releases));
  return o;
}

Napi::Value emptyCpuCacheJs(const Napi::CallbackInfo& info) {
  emptyCpuCache();
  return info.Env().Undefined();
}

Napi::Value setCpuCacheEnabledJs(const Napi::CallbackInfo& info) {
  setCpuCacheEnabled(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value opNamesJs(const Napi::CallbackInfo& info) {
  auto names = opNames();
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(i, Napi::String::New(info.Env(), names[i]));
  return out;
}

}  // namespace

void registerTensorApi(Napi::Env env, Napi::Object exports) {
  exports.Set("op", Napi::Function::New<op>(env, "op"));
  exports.Set("opAsync", Napi::Function::New<opAsync>(env, "opAsync"));
  exports.Set("fromData", Napi::Function::New<fromData>(env, "fromData"));
  exports.Set("toData", Napi::Function::New<toData>(env, "toData"));
  exports.Set("toDataAsync", Napi::Function::New<toDataAsync>(env, "toDataAsync"));
  exports.Set("fromRawBytes", Napi::Function::New<fromRawBytes>(env, "fromRawBytes"));
  exports.Set("toRawBytes", Napi::Function::New<toRawBytes>(env, "toRawBytes"));
  exports.Set("liveTensors", Napi::Function::New<liveTensors>(env, "liveTensors"));
  exports.Set("externalMemory", Napi::Function::New<externalMemory>(env, "externalMemory"));
  exports.Set("manualSeed", Napi::Function::New<manualSeedJs>(env, "manualSeed"));
  exports.Set("setNumThreads", Napi::Function::New<setNumThreadsJs>(env, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New<getNumThreadsJs>(env, "getNumThreads"));
  exports.Set("isGradEnabled", Napi::Function::New<isGradEnabledJs>(env, "isGradEnabled"));
  exports.Set("setGradEnabled", Napi::Function::New<setGradEnabledJs>(env, "setGradEnabled"));
  exports.Set("cudaIsAvailable", Napi::Function::New<cudaIsAvailableJs>(env, "cudaIsAvailable"));
  exports.Set("cudaDeviceCount", Napi::Function::New<cudaDeviceCountJs>(env, "cudaDeviceCount"));
  exports.Set("cudaSynchronize", Napi::Function::New<cudaSynchronizeJs>(env, "cudaSynchronize"));
  exports.Set("setMaxConcurrentJobs", Napi::Function::New<setMaxConcurrentJobsJs>(env, "setMaxConcurrentJobs"));
  exports.Set("maxConcurrentJobs", Napi::Function::New<maxConcurrentJobsJs>(env, "maxConcurrentJobs"));
  exports.Set("prepareExit", Napi::Function::New<prepareExitJs>(env, "prepareExit"));
  exports.Set("pendingJobs", Napi::Function::New<pendingJobsJs>(env, "pendingJobs"));
  exports.Set("opNames", Napi::Function::New<opNamesJs>(env, "opNames"));
  exports.Set("cpuCacheStats", Napi::Function::New<cpuCacheStatsJs>(env, "cpuCacheStats"));
  exports.Set("emptyCpuCache", Napi::Function::New<emptyCpuCacheJs>(env, "emptyCpuCache"));
  exports.Set("setCpuCacheEnabled", Napi::Function::New<setCpuCacheEnabledJs>(env, "setCpuCacheEnabled"));
}

}  // namespace semiseg::binding
