// Files PyTorch reads and writes: state dicts as torch.save(dict(model.state_dict())) pickles, and
// semiseg checkpoints in the same format (torch.load opens them too). Writes are atomic: a temporary
// file in the same folder, flushed to disk, then renamed over the target.
#pragma once

#include "nets/network.h"

#include <string>
#include <vector>

namespace semiseg::io {

void atomicWrite(const std::string& path, const std::vector<char>& bytes);
std::vector<char> readAll(const std::string& path, const char* fn);

// A {name: tensor} dict; tensors are saved from the CPU.
void writeStateDict(const std::string& path, const nets::NamedTensors& dict);
// Reads a pickled dict of tensors; anything else (an OrderedDict state_dict, a truncated file, not a
// torch file) is an error naming the path and what to do.
nets::NamedTensors readStateDict(const std::string& path);

struct Checkpoint {
  nets::NamedTensors model;
  nets::NamedTensors optimizer;
  std::string meta;        // JSON from the host: iteration, schedule, options
  at::Tensor rng;          // CPU generator state (uint8)
  nets::NamedTensors aux;  // further networks of a method (teacher, second network), "<name>/<key>"
};

void writeCheckpoint(const std::string& path, const Checkpoint& ckpt);
Checkpoint readCheckpoint(const std::string& path);

}  // namespace semiseg::io
