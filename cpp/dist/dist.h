// Data-parallel training across processes: a process group over LibTorch's c10d (a TCPStore rendezvous and
// Gloo backends), the gradient all-reduce attached to an optimizer, and the group SyncBatchNorm uses.
// This header names no c10d type, so only cpp/dist/*.cpp pay for those headers. When the LibTorch in use
// lacks c10d (or the build found no gloo headers) every entry point throws unavailableReason().
#pragma once

#include "train/optimizer.h"

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace semiseg::dist {

// Whether this build has the distributed engine, and why not when it has not.
bool available();
std::string unavailableReason();
// Whether this (CUDA) build can all-reduce CUDA tensors over NCCL.
bool ncclAvailable();

struct GroupOptions {
  std::string host = "127.0.0.1";  // MASTER_ADDR: rank 0 serves the store there
  int port = 29500;                // MASTER_PORT
  int rank = 0;
  int worldSize = 1;
  // Rendezvous and collectives: a rank that does not answer within this fails the others.
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  std::string interface;  // Gloo's network interface (GLOO_SOCKET_IFNAME); empty: by host name
  // CUDA tensors over NCCL (CPU tensors still over Gloo); needs ncclAvailable().
  bool nccl = false;
};

// A collective launched and not yet waited for.
class Pending {
 public:
  virtual ~Pending() = default;
  virtual void wait() = 0;
};

// One rank's view of the group. Two channels (two Gloo backends over one store): gradient buckets go over
// their own, so their order, set by the backward pass, never interleaves with the other collectives.
// Every collective: tensors of any layout and dtype, in place, errors name the rank and the operation.
class Group {
 public:
  virtual ~Group() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void allreduceSum(const std::vector<at::Tensor>& tensors) = 0;
  virtual void broadcast(const std::vector<at::Tensor>& tensors, int root) = 0;
  virtual void barrier() = 0;
  // Gradient channel: `flat` must be dense and contiguous; summed in place once wait() returns.
  virtual std::unique_ptr<Pending> allreduceGradAsync(const at::Tensor& flat) = 0;
  // Closes the connections; every later collective fails. Idempotent.
  virtual void shutdown() = 0;
  virtual bool closed() const = 0;
};

// Connects to the group (rank 0 serves the store); returns when every rank has joined.
std::shared_ptr<Group> createGroup(const GroupOptions& options);

// SyncBatchNorm: while set, every BatchNorm layer in training mode normalises with the statistics of the
// whole group's batch (forward and backward), so its running statistics agree on every rank.
void setSyncBatchNormGroup(std::shared_ptr<Group> group);
std::shared_ptr<Group> syncBatchNormGroup();

// Attaches a gradient all-reduce to an optimizer: each parameter's gradient is copied into its bucket
// as the backward pass produces it, full buckets are all-reduced (in a fixed order) while the backward
// goes on, and the optimizer's step first waits for them and writes the group mean back. A parameter
// no rank produced a gradient for keeps none (the optimizer skips it, as in one process).
std::shared_ptr<train::StepHook> attachGradSync(std::shared_ptr<Group> group, train::Optimizer& optimizer,
                                                int64_t bucketBytes);

}  // namespace semiseg::dist
