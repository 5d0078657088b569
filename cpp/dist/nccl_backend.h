// The door to ProcessGroupNCCL (CUDA builds with NCCL's headers): cpp/dist/nccl_backend.cpp is the only
// file that includes ProcessGroupNCCL.hpp; the group holds the result as a plain c10d::Backend.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace semiseg::dist {

c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout);

}  // namespace semiseg::dist
