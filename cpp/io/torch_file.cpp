#include "io/torch_file.h"

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>

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

c10::Dict<std::string, at::Tensor> toDict(const nets::NamedTensors& tensors) {
  c10::Dict<std::string, at::Tensor> d;
  for (const auto& [k, v] : tensors) d.insert(k, v.detach().cpu().contiguous());
  return d;
}

nets::NamedTensors fromDict(const c10::IValue& v, const std::string& path, const char* what) {
  TORCH_CHECK(v.isGenericDict(), "'", path, "': ", what, " is not a dict");
  nets::NamedTensors out;
  for (const auto& e : v.toGenericDict()) {
    TORCH_CHECK(e.key().isString(), "'", path, "': ", what, " has a key that is not a string");
    TORCH_CHECK(e.value().isTensor(), "'", path, "': ", what, " holds '", e.key().toStringRef(),
                "', which is not a tensor");
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
  TORCH_CHECK(zip, fn, "(): '", path,
              "' is not a readable torch file: it is not the zip format that torch.save writes");
  // torch.save(model.state_dict()) pickles a collections.OrderedDict at the top, which LibTorch's unpickler
  // cannot build: such a stream starts with PROTO 2 then GLOBAL 'collections OrderedDict'. (Tensors inside
  // any torch.save file mention OrderedDict too, but never right after the protocol opcode.)
  const std::string marker = std::string("\x80\x02") + "ccollections\nOrderedDict\n";
  const bool orderedDict = std::search(bytes.begin(), bytes.end(), marker.begin(), marker.end()) != bytes.end();
  TORCH_CHECK(!orderedDict, fn, "(): '", path,
              "' holds a collections.OrderedDict (torch.save(model.state_dict())), which LibTorch cannot read; "
              "save a plain dict instead: torch.save(dict(model.state_dict()), path)");
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReader>(std::move(bytes)));
    return torch::jit::readArchiveAndTensors("data", "", "", std::nullopt, std::nullopt, std::nullopt, reader);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, fn, "(): '", path, "' is not a readable torch file (truncated, or written by something else): ",
                e.what_without_backtrace());
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

nets::NamedTensors readStateDict(const std::string& path) {
  c10::IValue v = unpickle(path, "readTorchStateDict");
  TORCH_CHECK(v.isGenericDict(), "readTorchStateDict(): '", path, "' holds a ", v.tagKind(),
              ", not a dict of tensors (save it in PyTorch with torch.save(dict(model.state_dict()), path))");
  return fromDict(v, path, "the state dict");
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
  const int64_t version = d.at("version").toInt();
  TORCH_CHECK(version <= kVersion, "loadCheckpoint(): '", path, "' has checkpoint version ", version,
              "; this semiseg reads up to ", kVersion);
  Checkpoint c;
  c.model = fromDict(d.at("model"), path, "the checkpoint's model");
  c.optimizer = fromDict(d.at("optimizer"), path, "the checkpoint's optimizer state");
  c.meta = d.at("meta").toStringRef();
  if (d.at("rng").isTensor()) c.rng = d.at("rng").toTensor();
  if (d.contains("aux")) c.aux = fromDict(d.at("aux"), path, "the checkpoint's further networks");
  return c;
}

}  // namespace semiseg::io
