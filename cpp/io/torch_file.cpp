#include "io/torch_file.h"

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include "io/torch_pickle.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

namespace semiseg::io {

namespace {

constexpr const char* kFormat = "semiseg-checkpoint";
constexpr int64_t kVersion = 1;

// What a value is, for errors: "a tensor", "a dict", "a numpy.core.multiarray.scalar", ...
std::string describe(const c10::IValue& v) {
  if (isOpaque(v)) return "a " + opaqueName(v);
  if (v.isTensor()) return "a tensor";
  if (v.isGenericDict()) return "a dict";
  if (v.isList()) return "a list";
  if (v.isTuple()) return "a tuple";
  if (v.isString()) return "a string";
  if (v.isInt()) return "an integer";
  if (v.isDouble()) return "a number";
  if (v.isBool()) return "a boolean";
  if (v.isNone()) return "None";
  return std::string("a ") + v.tagKind();
}

bool allTensors(const c10::IValue& v) {
  if (!v.isGenericDict()) return false;
  for (const auto& e : v.toGenericDict())
    if (!e.key().isString() || !e.value().isTensor()) return false;
  return true;
}

c10::Dict<std::string, at::Tensor> toDict(const nets::NamedTensors& tensors) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [k, v] : tensors) d.insert(k, v.detach().cpu().contiguous());
  return d;
}

nets::NamedTensors fromDict(const c10::IValue& v, const std::string& path, const std::string& what, const char* fn) {
  TORCH_CHECK(v.isGenericDict(), fn, "(): '", path, "': ", what, " is not a dict");
  nets::NamedTensors out;
  for (const auto& e : v.toGenericDict()) {
    TORCH_CHECK(e.key().isString(), fn, "(): '", path, "': ", what, " has a key that is not a string");
    TORCH_CHECK(e.value().isTensor(), fn, "(): '", path, "': ", what, " holds '", e.key().toStringRef(), "', ",
                describe(e.value()), ", not a tensor");
    out.emplace_back(e.key().toStringRef(), e.value().toTensor());
  }
  return out;
}

// torch::pickle_save, minus the type tags it adds to dicts (torch.jit._pickle.restore_type_tag), which
// torch.load's default weights_only unpickler refuses: the result loads with a plain torch.load(path).
std::vector<char> plainPickle(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* buf, size_t n) { pickle.insert(pickle.end(), buf, buf + n); }, nullptr,
                              nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> container;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) {
      const char* b = static_cast<const char*>(bytes);
      container.insert(container.end(), b, b + n);
      return n;
    });
    torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
    writer.writeEndOfFile();
  }
  return container;
}

// Reads from a byte vector, clamping every read to its end. (LibTorch's own VectorReader, used by
// torch::pickle_load, copies past the end of a truncated archive and crashes the process.)
class BoundedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(std::vector<char> data) : data_(std::move(data)) {}
  size_t size() const override { return data_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= data_.size()) return 0;
    n = std::min<size_t>(n, data_.size() - pos);
    std::memcpy(buf, data_.data() + pos, n);
    return n;
  }

 private:
  std::vector<char> data_;
};

c10::IValue unpickle(const std::string& path, const char* fn) {
  std::vector<char> bytes = readAll(path, fn);
  const bool zip = bytes.size() >= 4 && bytes[0] == 'P' && bytes[1] == 'K' && bytes[2] == 3 && bytes[3] == 4;
  // torch.save before PyTorch 1.6 (or with _use_new_zipfile_serialization=False) wrote a bare pickle stream
  const bool legacy = bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x80 && bytes[1] <= 5;
  TORCH_CHECK(zip || !legacy, fn, "(): '", path,
              "' is in the legacy torch.save format (PyTorch before 1.6, or _use_new_zipfile_serialization=False), "
              "which semiseg does not read: load and save it again with a PyTorch >= 1.6");
  TORCH_CHECK(zip, fn, "(): '", path,
              "' is not a readable torch file: it is not the zip format that torch.save writes");
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReader>(std::move(bytes)));
    return readTorchPickle(reader, path, fn);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.rfind(std::string(fn) + "(): '", 0) == 0) throw;  // ours, naming the file already
    TORCH_CHECK(false, fn, "(): '", path, "' is not a readable torch file (truncated, or written by something else): ",
                what.substr(0, what.find('\n')));
  }
}

}  // namespace

void atomicWrite(const std::string& path, const std::vector<char>& bytes) {
  std::random_device rd;
  const std::string tmp = path + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, "cannot write '", path, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      TORCH_CHECK(false, "cannot write '", path, "': ", std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  bool ok = ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {  // some file systems report write errors only here
    ok = false;
    err = errno;
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    TORCH_CHECK(false, "cannot write '", path, "': ", std::strerror(err));
  }
  // make the rename itself durable
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::vector<char> readAll(const std::string& path, const char* fn) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), fn, "(): cannot open '", path, "': ", std::strerror(errno));
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeStateDict(const std::string& path, const nets::NamedTensors& dict) {
  atomicWrite(path, plainPickle(c10::IValue(toDict(dict))));
}

nets::NamedTensors readStateDict(const std::string& path, const std::string& key) {
  const char* fn = "readTorchStateDict";
  c10::IValue v = unpickle(path, fn);
  TORCH_CHECK(v.isGenericDict(), fn, "(): '", path, "' holds ", describe(v), ", not a dict of tensors");
  const auto d = v.toGenericDict();
  if (!key.empty()) {
    TORCH_CHECK(d.contains(key), fn, "(): '", path, "' has no entry '", key, "'");
    TORCH_CHECK(d.at(key).isGenericDict(), fn, "(): '", path, "': entry '", key, "' is ", describe(d.at(key)),
                ", not a state dict");
    return fromDict(d.at(key), path, "entry '" + key + "'", fn);
  }
  if (d.empty() || allTensors(v)) return fromDict(v, path, "the state dict", fn);
  TORCH_CHECK(!(d.contains("format") && d.at("format").isString() && d.at("format").toStringRef() == kFormat), fn,
              "(): '", path, "' is a semiseg checkpoint: loadCheckpoint or networkFromCheckpoint read it (or pass ",
              "{ key: 'model' } for its weights)");
  // a checkpoint around the weights: {'net': state_dict, 'opt': ...} (BCP), {'state_dict': ...}, ...
  std::vector<std::string> candidates;
  for (const auto& e : d)
    if (e.key().isString() && allTensors(e.value()) && !e.value().toGenericDict().empty())
      candidates.push_back(e.key().toStringRef());
  if (candidates.size() == 1) return fromDict(d.at(candidates.front()), path, "entry '" + candidates.front() + "'", fn);
  // none: the error names the first entry that is not a tensor
  if (candidates.empty()) return fromDict(v, path, "the state dict", fn);
  std::string names;
  for (const auto& c : candidates) names += (names.empty() ? "'" : ", '") + c + "'";
  TORCH_CHECK(false, fn, "(): '", path, "' holds several state dicts (", names,
              "): pass the one to read as option 'key'");
}

void writeCheckpoint(const std::string& path, const Checkpoint& ckpt) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("format", std::string(kFormat));
  d.insert("version", kVersion);
  d.insert("model", toDict(ckpt.model));
  d.insert("optimizer", toDict(ckpt.optimizer));
  d.insert("meta", ckpt.meta);
  d.insert("rng", ckpt.rng.defined() ? c10::IValue(ckpt.rng.cpu()) : c10::IValue());
  d.insert("aux", toDict(ckpt.aux));
  atomicWrite(path, plainPickle(c10::IValue(d)));
}

Checkpoint readCheckpoint(const std::string& path) {
  c10::IValue v = unpickle(path, "loadCheckpoint");
  bool ok = v.isGenericDict();
  c10::impl::GenericDict d =
      ok ? v.toGenericDict() : c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get());
  ok = ok && d.contains("format") && d.at("format").isString() && d.at("format").toStringRef() == kFormat;
  TORCH_CHECK(ok, "loadCheckpoint(): '", path,
              "' is a torch file but not a semiseg checkpoint (for PyTorch weights use readTorchStateDict)");
  for (const char* k : {"version", "model", "optimizer", "meta"})
    TORCH_CHECK(d.contains(k), "loadCheckpoint(): '", path, "' is a damaged semiseg checkpoint: it has no '", k, "'");
  TORCH_CHECK(d.at("version").isInt() && d.at("meta").isString(), "loadCheckpoint(): '", path,
              "' is a damaged semiseg checkpoint: its 'version' is not a number or its 'meta' not a string");
  const int64_t version = d.at("version").toInt();
  TORCH_CHECK(version <= kVersion, "loadCheckpoint(): '", path, "' has checkpoint version ", version,
              "; this semiseg reads up to ", kVersion);
  Checkpoint c;
  c.model = fromDict(d.at("model"), path, "the checkpoint's model", "loadCheckpoint");
  c.optimizer = fromDict(d.at("optimizer"), path, "the checkpoint's optimizer state", "loadCheckpoint");
  c.meta = d.at("meta").toStringRef();
  if (d.contains("rng") && d.at("rng").isTensor()) c.rng = d.at("rng").toTensor();
  if (d.contains("aux")) c.aux = fromDict(d.at("aux"), path, "the checkpoint's further networks", "loadCheckpoint");
  return c;
}

}  // namespace semiseg::io
