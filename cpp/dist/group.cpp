// Group over c10d: a TCPStore rendezvous (rank 0 serves it) and two Gloo backends under prefixes of it.
#include "dist/dist.h"

#include <ATen/ops/cat.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

#include <mutex>
#include <stdexcept>
#include <utility>

#ifdef SEMISEG_WITH_DIST
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "dist/gloo_backend.h"
#endif
#ifdef SEMISEG_WITH_NCCL
#include "dist/nccl_backend.h"
#endif

namespace semiseg::dist {

#ifndef SEMISEG_DIST_REASON
#define SEMISEG_DIST_REASON "this build of semiseg has no distributed engine"
#endif

bool available() {
#ifdef SEMISEG_WITH_DIST
  return true;
#else
  return false;
#endif
}

std::string unavailableReason() { return available() ? "" : SEMISEG_DIST_REASON; }

bool ncclAvailable() {
#ifdef SEMISEG_WITH_NCCL
  return true;
#else
  return false;
#endif
}

namespace {

std::mutex syncBnMutex;
std::shared_ptr<Group> syncBn;

#ifdef SEMISEG_WITH_DIST

// Tensors grouped by (dtype, device) into flat buffers: one collective per group, any layout in and out.
template <typename Fn>
void flatApply(const std::vector<at::Tensor>& tensors, Fn&& fn) {
  c10::NoGradGuard noGrad;  // parameters are written in place
  std::vector<bool> done(tensors.size(), false);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (done[i]) continue;
    std::vector<size_t> members;
    std::vector<at::Tensor> flats;
    for (size_t j = i; j < tensors.size(); ++j)
      if (!done[j] && tensors[j].scalar_type() == tensors[i].scalar_type() &&
          tensors[j].device() == tensors[i].device()) {
        done[j] = true;
        members.push_back(j);
        flats.push_back(tensors[j].reshape(-1));
      }
    at::Tensor flat = at::cat(flats);
    fn(flat);
    int64_t offset = 0;
    for (size_t j : members) {
      const at::Tensor& t = tensors[j];
      t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

std::string firstLine(const std::string& s) {
  const auto end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

// A launched collective; a failure of its wait carries `what` (which operation, which rank) first.
class C10dPending final : public Pending {
 public:
  C10dPending(c10::intrusive_ptr<c10d::Work> work, std::string what) : work_(std::move(work)), what_(std::move(what)) {}
  void wait() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      throw std::runtime_error(what_ + firstLine(e.what()));
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string what_;
};

class GlooGroup final : public Group {
 public:
  explicit GlooGroup(const GroupOptions& o) : rank_(o.rank), size_(o.worldSize) {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.worldSize);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(o.host, so);
      main_ = makeGlooBackend(c10::make_intrusive<c10d::PrefixStore>("semiseg/main", store_), o.rank, o.worldSize,
                              o.timeout, o.host, o.interface);
      grad_ = makeGlooBackend(c10::make_intrusive<c10d::PrefixStore>("semiseg/grad", store_), o.rank, o.worldSize,
                              o.timeout, o.host, o.interface);
#ifdef SEMISEG_WITH_NCCL
      if (o.nccl) {
        ncclMain_ = makeNcclBackend(c10::make_intrusive<c10d::PrefixStore>("semiseg/nccl-main", store_), o.rank,
                                    o.worldSize, o.timeout);
        ncclGrad_ = makeNcclBackend(c10::make_intrusive<c10d::PrefixStore>("semiseg/nccl-grad", store_), o.rank,
                                    o.worldSize, o.timeout);
      }
#else
      if (o.nccl)
        throw std::runtime_error("this build of semiseg has no NCCL (a CPU build, or no nccl.h at build time)");
#endif
    } catch (const std::exception& e) {
      throw std::runtime_error("distributed: rank " + std::to_string(o.rank) + " of " + std::to_string(o.worldSize) +
                               " could not join the group at " + o.host + ":" + std::to_string(o.port) + " within " +
                               std::to_string(o.timeout.count() / 1000) + " s: " + firstLine(e.what()));
    }
  }
  ~GlooGroup() override { shutdown(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduceSum(const std::vector<at::Tensor>& tensors) override {
    if (tensors.empty()) return;
    flatApply(tensors, [&](at::Tensor& flat) {
      auto b = backend(main_, ncclMain_, flat, "allreduce");
      std::vector<at::Tensor> v{flat};
      run("allreduce", [&] { return b->allreduce(v); });
    });
  }
  void broadcast(const std::vector<at::Tensor>& tensors, int root) override {
    TORCH_CHECK(root >= 0 && root < size_, "broadcast(): root ", root, " is not a rank of this group of ", size_);
    if (tensors.empty()) return;
    flatApply(tensors, [&](at::Tensor& flat) {
      auto b = backend(main_, ncclMain_, flat, "broadcast");
      std::vector<at::Tensor> v{flat};
      c10d::BroadcastOptions bo;
      bo.rootRank = root;
      run("broadcast", [&] { return b->broadcast(v, bo); });
    });
  }
  void barrier() override {
    auto b = backend(main_, "barrier");
    run("barrier", [&] { return b->barrier(); });
  }
  std::unique_ptr<Pending> allreduceGradAsync(const at::Tensor& flat) override {
    TORCH_CHECK(flat.is_contiguous(), "allreduceGradAsync(): the bucket must be contiguous");
    auto b = backend(grad_, ncclGrad_, flat, "gradient all-reduce");
    std::vector<at::Tensor> v{flat};
    return launch("gradient all-reduce", [&] { return b->allreduce(v); });
  }
  void shutdown() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    ncclMain_.reset();
    ncclGrad_.reset();
    main_.reset();
    grad_.reset();
    store_.reset();
  }
  bool closed() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

 private:
  std::string failure(const std::string& what) const {
    return "distributed: " + what + " failed on rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
           " (another rank exited, crashed or did not answer within the timeout): ";
  }
  // The backend for `t`: NCCL for CUDA tensors when the group has it, else Gloo (which takes both). Each
  // backend sees its collectives in program order, the same on every rank.
  c10::intrusive_ptr<c10d::Backend> backend(const c10::intrusive_ptr<c10d::Backend>& gloo,
                                            const c10::intrusive_ptr<c10d::Backend>& nccl, const at::Tensor& t,
                                            const char* what) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_)
      throw std::runtime_error(std::string("distributed: ") + what + " on rank " + std::to_string(rank_) +
                               ": the group was shut down");
    return nccl && t.is_cuda() ? nccl : gloo;
  }
  c10::intrusive_ptr<c10d::Backend> backend(const c10::intrusive_ptr<c10d::Backend>& gloo, const char* what) const {
    return backend(gloo, {}, at::Tensor(), what);
  }
  // Starts a collective (failures to start and to finish both name the operation and the rank).
  template <typename Start>
  std::unique_ptr<Pending> launch(const char* what, Start&& start) {
    try {
      return std::make_unique<C10dPending>(start(), failure(what));
    } catch (const std::exception& e) {
      throw std::runtime_error(failure(what) + firstLine(e.what()));
    }
  }
  template <typename Start>
  void run(const char* what, Start&& start) {
    launch(what, std::forward<Start>(start))->wait();
  }

  int rank_, size_;
  mutable std::mutex mutex_;
  bool closed_ = false;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> main_, grad_, ncclMain_, ncclGrad_;
};

#endif

}  // namespace

std::shared_ptr<Group> createGroup(const GroupOptions& o) {
  TORCH_CHECK(o.worldSize >= 1, "distributed: the world size must be >= 1, got ", o.worldSize);
  TORCH_CHECK(o.rank >= 0 && o.rank < o.worldSize, "distributed: rank ", o.rank, " is not in [0, ", o.worldSize, ")");
  TORCH_CHECK(o.port > 0 && o.port < 65536, "distributed: the port must be in [1, 65535], got ", o.port);
  TORCH_CHECK(o.timeout.count() > 0, "distributed: the timeout must be > 0");
#ifdef SEMISEG_WITH_DIST
  return std::make_shared<GlooGroup>(o);
#else
  throw std::runtime_error(std::string("distributed training is not available: ") + SEMISEG_DIST_REASON);
#endif
}

void setSyncBatchNormGroup(std::shared_ptr<Group> group) {
  std::lock_guard<std::mutex> lock(syncBnMutex);
  syncBn = std::move(group);
}

std::shared_ptr<Group> syncBatchNormGroup() {
  std::lock_guard<std::mutex> lock(syncBnMutex);
  return syncBn;
}

}  // namespace semiseg::dist
