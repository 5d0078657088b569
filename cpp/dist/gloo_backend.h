// The one door to ProcessGroupGloo (cpp/dist/gloo_backend.cpp is the only file that includes gloo's
// headers); everything else holds the result as a plain c10d::Backend.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace semiseg::dist {

// interface: a network interface name; empty: by `host` (loopback when it is a loopback address).
c10::intrusive_ptr<c10d::Backend> makeGlooBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout, const std::string& host,
                                                  const std::string& interface);

}  // namespace semiseg::dist
