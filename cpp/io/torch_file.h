// Files PyTorch reads and writes: state dicts as torch.save(model.state_dict()) writes them, and
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
// Reads a torch.save file of a state dict (a dict or OrderedDict of tensors, saved from any device), or of
// a dict holding one (`key`, or the only entry that is a state dict: BCP's {'net': ..., 'opt': ...});
// anything else (a truncated file, not a torch file, the legacy format) is an error naming the path.
nets::NamedTensors readStateDict(const std::string& path, const std::string& key = "");

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
