// Typed handles of the `semiseg::` dispatcher ops, looked up once.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace semiseg::ops {

template <typename Sig>
const c10::TypedOperatorHandle<Sig>& opHandle(const char* name) {
  // One static per (Sig, call site) is not enough when two ops share a signature, so key by name.
  static thread_local std::unordered_map<std::string, c10::TypedOperatorHandle<Sig>> handles;
  auto it = handles.find(name);
  if (it == handles.end()) {
    it = handles.emplace(name, c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>()).first;
  }
  return it->second;
}

}  // namespace semiseg::ops
