// ProcessGroupNCCL through LibTorch's own code (compiled into libtorch_cuda), as gloo_backend.cpp does for
// Gloo. nccl.h comes from the nvidia-nccl wheel the CUDA torch wheel itself depends on (the same NCCL
// that libtorch_cuda loads), so its types agree with the library's.
#include "dist/nccl_backend.h"

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace semiseg::dist {

c10::intrusive_ptr<c10d::Backend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}

}  // namespace semiseg::dist
