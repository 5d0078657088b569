// Every binding entry runs its body through guard(): LibTorch and C++ errors become JS errors
// carrying LibTorch's message without its C++ backtrace, so nothing thrown natively can abort Node.
#pragma once

#include <napi.h>

#include <c10/util/Exception.h>

#include <exception>
#include <new>
#include <string>

namespace semiseg::binding {

// The message of a caught native error and the JS error class it maps to.
struct NativeError {
  enum class Kind { Error, TypeError, RangeError };
  Kind kind = Kind::Error;
  std::string message;
};

inline NativeError describeCurrentException() {
  try {
    throw;
  } catch (const c10::IndexError& e) {
    return {NativeError::Kind::RangeError, e.what_without_backtrace()};
  } catch (const c10::TypeError& e) {
    return {NativeError::Kind::TypeError, e.what_without_backtrace()};
  } catch (const c10::Error& e) {
    return {NativeError::Kind::Error, e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {NativeError::Kind::RangeError, "out of memory: the requested allocation is too large"};
  } catch (const std::exception& e) {
    return {NativeError::Kind::Error, e.what()};
  } catch (...) {
    return {NativeError::Kind::Error, "unknown native error"};
  }
}

inline Napi::Value toJsError(Napi::Env env, const NativeError& e) {
  switch (e.kind) {
    case NativeError::Kind::TypeError: return Napi::TypeError::New(env, e.message).Value();
    case NativeError::Kind::RangeError: return Napi::RangeError::New(env, e.message).Value();
    default: return Napi::Error::New(env, e.message).Value();
  }
}

template <typename Fn>
auto guard(Napi::Env env, Fn&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;  // already a JS error
  } catch (...) {
    throw Napi::Error(env, toJsError(env, describeCurrentException()));
  }
}

}  // namespace semiseg::binding
