// VerSemi's model (spec 4) as one network: the V-Net backbone (InstanceNorm, no block_nine, no final skip),
// the controller (BatchNorm3d(256) -> ReLU -> global average pool of the bottleneck, concatenated with a
// one-hot task code of T + 1 entries, Conv3d 1x1 -> 162 dynamic parameters per sample) and the dynamic head
// (BatchNorm3d(16) -> ReLU -> Conv3d 1x1 16 -> 8 on the last decoder feature, then three per-sample 1x1
// layers 8 -> 8 -> 8 -> 2 run as grouped convolutions over the batch). forward() segments every sample
// under the network's current task (setTask), so the native sliding window serves it like any network.
// State-dict keys: the backbone's (block_one.conv.0.weight, ..., out_conv.*) then head.controller.bn.*,
// head.controller.conv.*, head.pre.bn.*, head.pre.conv.*: what the TypeScript trainer's checkpoints hold
// (the backbone as the model, the head as named tensors), without num_batches_tracked.
#pragma once

#include "nets/network.h"

namespace semiseg::nets {

struct VerSemiOptions {
  VNet3DOptions backbone;  // normally normalization "instancenorm", lastBlock false
  int64_t tasks = 1;       // real tasks T; the synthetic CutMix task is T
};

// The task a task-prompted network segments (VerSemi). Reached from a Network by dynamic_cast.
class TaskPrompted {
 public:
  virtual ~TaskPrompted() = default;
  virtual int64_t tasks() const = 0;  // T: task ids 0..T (T = the synthetic task)
  virtual int64_t task() const = 0;
  virtual void setTask(int64_t task) = 0;  // checks 0 <= task <= T
};

std::unique_ptr<Network> makeVerSemi(const VerSemiOptions& options);

}  // namespace semiseg::nets
