// ProcessGroupGloo, created through LibTorch's own code only. ABI safety with the gloo compiled into
// libtorch_cpu: ProcessGroupGloo.hpp needs gloo's headers to parse (the wheel lacks them; CMake takes
// them from libgloo-dev), but this file only calls functions defined in libtorch_cpu (the constructor,
// Options, the device factories) and holds gloo objects behind shared_ptr, never by value, so no gloo
// type's layout or inline code is compiled in from those headers. scripts/check-gloo-abi.sh proves it on
// every build: this object defines no gloo symbol and every gloo symbol it references is exported by
// the libtorch_cpu it links against.
#include "dist/gloo_backend.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

namespace semiseg::dist {

namespace {

bool isLoopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

c10::intrusive_ptr<c10d::Backend> makeGlooBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout, const std::string& host,
                                                  const std::string& interface) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!interface.empty())
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  else if (isLoopback(host))
    options->devices.push_back(
        c10d::ProcessGroupGloo::createDeviceForHostname(host == "localhost" ? "127.0.0.1" : host));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

}  // namespace semiseg::dist
