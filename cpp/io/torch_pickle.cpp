#include "io/torch_pickle.h"

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace semiseg::io {

namespace {

// Markers inside tuples: a global (a class or function named in the pickle) and an object left unbuilt.
constexpr const char* kGlobal = "\x01semiseg:global";
constexpr const char* kOpaque = "\x01semiseg:opaque";
// Bounds no weight file comes near (a state dict nests 2-5 deep and makes a few objects per tensor).
constexpr int kMaxDepth = 100;
constexpr size_t kMaxObjects = 1000000;  // lists, dicts and tuples (a dict costs ~0.5 KB)
constexpr size_t kMaxValues = 20000000;  // every value pushed (at most 16 bytes each on the stack)
constexpr size_t kMaxPickleBytes = size_t{64} << 20;

c10::IValue tuple(std::vector<c10::IValue> items) { return c10::ivalue::Tuple::create(std::move(items)); }

// (A file could hold a tuple that looks like a marker; it then stands for that global or placeholder, which
// builds nothing beyond the whitelist, so only the shape must be checked before the parts are read.)
bool isMarker(const c10::IValue& v, const char* marker) {
  if (!v.isTuple()) return false;
  const auto& e = v.toTupleRef().elements();
  const size_t n = std::strcmp(marker, kGlobal) == 0 ? 3 : 2;
  if (e.size() != n || !e[0].isString() || e[0].toStringRef() != marker) return false;
  for (const auto& x : e)
    if (!x.isString()) return false;
  return true;
}

c10::IValue opaque(const std::string& name) { return tuple({std::string(kOpaque), name}); }

// The dtype of torch.<Type>Storage (the storage type a tensor's persistent id names).
std::optional<c10::ScalarType> storageDtype(const std::string& module, const std::string& name) {
  if (module != "torch") return std::nullopt;
  static const std::unordered_map<std::string, c10::ScalarType> table = {{"FloatStorage", c10::kFloat},
                                                                         {"DoubleStorage", c10::kDouble},
                                                                         {"HalfStorage", c10::kHalf},
                                                                         {"BFloat16Storage", c10::kBFloat16},
                                                                         {"LongStorage", c10::kLong},
                                                                         {"IntStorage", c10::kInt},
                                                                         {"ShortStorage", c10::kShort},
                                                                         {"CharStorage", c10::kChar},
                                                                         {"ByteStorage", c10::kByte},
                                                                         {"BoolStorage", c10::kBool},
                                                                         {"UntypedStorage", c10::kByte},
                                                                         {"ComplexFloatStorage", c10::kComplexFloat},
                                                                         {"ComplexDoubleStorage", c10::kComplexDouble}};
  auto it = table.find(name);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

class PickleReader {
 public:
  PickleReader(const char* data, size_t size, caffe2::serialize::PyTorchStreamReader& zip, const std::string& path,
               const char* fn)
      : data_(data), size_(size), zip_(zip), path_(path), fn_(fn) {}

  c10::IValue run() {
    while (true) {
      const size_t at = pos_;
      const uint8_t op = u8();
      if (op == '.') break;
      step(op, at);
    }
    check(stack_.size() == 1 && marks_.empty(), "the pickle does not end with one object");
    return stack_.back();
  }

 private:
  template <typename... Args>
  void check(bool ok, const Args&... why) const {
    TORCH_CHECK(ok, fn_, "(): '", path_, "' is not a readable torch file: ", why...);
  }

  void need(size_t n) const { check(n <= size_ - pos_, "the pickle ends early (byte ", pos_, ")"); }
  uint8_t u8() {
    need(1);
    return static_cast<uint8_t>(data_[pos_++]);
  }
  template <typename T>
  T le() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string bytes(uint64_t n) {
    need(n);
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  std::string line() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    check(nl != nullptr, "a GLOBAL without its newline");
    const size_t n = static_cast<const char*>(nl) - (data_ + pos_);
    std::string s(data_ + pos_, n);
    pos_ += n + 1;
    return s;
  }

  c10::IValue pop() {
    check(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "an opcode needs more values than there are");
    c10::IValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  std::vector<c10::IValue> popToMark() {
    check(!marks_.empty(), "an opcode needs a MARK");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<c10::IValue> items(std::make_move_iterator(stack_.begin() + start),
                                   std::make_move_iterator(stack_.end()));
    stack_.resize(start);
    return items;
  }
  c10::IValue& top() {
    check(!stack_.empty(), "an opcode needs a value");
    return stack_.back();
  }
  void memoPut(uint64_t id) {
    check(!stack_.empty(), "memo of nothing");
    memo_[id] = stack_.back();  // a map: any index costs one entry
  }
  void memoGet(uint64_t id) {
    auto it = memo_.find(id);
    check(it != memo_.end(), "memo index ", id, " was never set");
    seal(it->second);  // a value fetched again is complete: changing it now would build cycles
    stack_.push_back(it->second);
  }

  // Containers. torch.save fills a list or dict before it puts it into another container or fetches it
  // from the memo; from then on it is sealed: changing it is refused, which rules out reference cycles
  // (a leak) and lets its nesting depth be known, which is bounded (a deep value is destroyed
  // recursively and would overflow the stack). Every container is kept alive while parsing, so their
  // addresses identify them.
  static bool isContainer(const c10::IValue& v) { return v.isList() || v.isGenericDict() || v.isTuple(); }
  void created(const c10::IValue& v, int depth = 1) {
    check(++objects_ <= kMaxObjects, "more than ", kMaxObjects, " objects (not a weight file)");
    check(depth <= kMaxDepth, "values nested more than ", kMaxDepth, " deep (not a weight file)");
    depth_[v.internalToPointer()] = depth;
    keep_.push_back(v);
  }
  // `v` goes into a container or is fetched again: sealed; its depth.
  int seal(const c10::IValue& v) {
    if (!isContainer(v)) return 0;
    const void* p = v.internalToPointer();
    sealed_.insert(p);
    auto it = depth_.find(p);
    return it == depth_.end() ? 1 : it->second;
  }
  c10::IValue newTuple(std::vector<c10::IValue> items) {
    int depth = 0;
    for (const auto& v : items) depth = std::max(depth, seal(v));
    c10::IValue t = tuple(std::move(items));
    created(t, depth + 1);
    return t;
  }
  c10::IValue newDict() {
    c10::IValue d = c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
    created(d);
    return d;
  }
  // Before items go into the open container `target`: refuses a sealed one, updates its depth.
  void filling(const c10::IValue& target, const std::vector<c10::IValue>& items) {
    const void* p = target.internalToPointer();
    check(!sealed_.count(p), "a list or dict is changed after it was used (not a file torch.save writes)");
    int& depth = depth_[p];
    for (const auto& v : items) depth = std::max(depth, seal(v) + 1);
    check(depth <= kMaxDepth, "values nested more than ", kMaxDepth, " deep (not a weight file)");
  }

  void setItems(c10::IValue& target, std::vector<c10::IValue>& items) {
    check(items.size() % 2 == 0, "SETITEMS with an odd number of values");
    if (isMarker(target, kOpaque)) return;  // an object we do not build keeps what is set on it to itself
    check(target.isGenericDict(), "SETITEM on a ", target.tagKind(), ", not a dict");
    filling(target, items);
    auto d = target.toGenericDict();
    for (size_t i = 0; i < items.size(); i += 2) d.insert_or_assign(std::move(items[i]), std::move(items[i + 1]));
  }
  void append(c10::IValue& target, std::vector<c10::IValue>& items) {
    if (isMarker(target, kOpaque)) return;
    check(target.isList(), "APPEND on a ", target.tagKind(), ", not a list");
    filling(target, items);
    auto l = target.toList();
    for (auto& v : items) l.push_back(std::move(v));
  }

  // The persistent id of a tensor's storage: ('storage', torch.<Type>Storage, key, location, numel).
  c10::IValue storage(const c10::IValue& pid) {
    check(pid.isTuple(), "a persistent id that is not a tuple");
    const auto& e = pid.toTupleRef().elements();
    check(e.size() >= 5 && e[0].isString() && e[0].toStringRef() == "storage" && isMarker(e[1], kGlobal) &&
              e[2].isString() && e[4].isInt(),
          "a persistent id that is not a storage");
    const auto& g = e[1].toTupleRef().elements();
    const auto dtype = storageDtype(g[1].toStringRef(), g[2].toStringRef());
    check(dtype.has_value(), "an unknown storage type ", g[1].toStringRef(), ".", g[2].toStringRef());
    const std::string& key = e[2].toStringRef();
    if (auto it = storages_.find(key); it != storages_.end()) return it->second;
    const int64_t numel = e[4].toInt();
    check(numel >= 0, "storage '", key, "' has a negative size");
    const size_t item = c10::elementSize(*dtype);
    check(static_cast<uint64_t>(numel) <= (uint64_t{1} << 48) / item, "storage '", key, "' is too large");
    const size_t nbytes = static_cast<size_t>(numel) * item;
    at::Tensor t;
    if (nbytes > 0) {
      const std::string record = "data/" + key;
      check(zip_.hasRecord(record), "the record of storage '", key, "' is missing");
      const size_t declared = zip_.getRecordSize(record);
      check(declared >= nbytes, "storage '", key, "' declares ", nbytes, " bytes but its record holds ", declared);
      // torch.save writes a storage's bytes exactly; a record far larger than its storage is not read (a
      // small compressed file could expand to gigabytes for one value)
      check(declared <= 2 * nbytes + (size_t{1} << 20), "the record of storage '", key, "' holds ", declared,
            " bytes for a storage of ", nbytes);
      auto [ptr, size] = zip_.getRecord(record);
      check(size >= nbytes, "storage '", key, "' declares ", nbytes, " bytes but its record holds ", size);
      t = at::empty({numel}, at::TensorOptions().dtype(*dtype));  // allocated only once the record backs it
      std::memcpy(t.data_ptr(), ptr.get(), nbytes);
    } else {
      t = at::empty({0}, at::TensorOptions().dtype(*dtype));
    }
    t.storage().unsafeGetStorageImpl()->set_resizable(false);  // a view that reaches further throws
    storageTensors_.insert(t.unsafeGetTensorImpl());
    c10::IValue v(t);
    storages_.emplace(key, v);
    return v;
  }

  static std::vector<int64_t> ints(const c10::IValue& v) {
    std::vector<int64_t> out;
    if (!v.isTuple()) return out;
    for (const auto& x : v.toTupleRef().elements()) out.push_back(x.isInt() ? x.toInt() : -1);
    return out;
  }

  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
  c10::IValue rebuildTensor(const std::vector<c10::IValue>& a) {
    // only a storage itself (a view of a view could reach past the storage its bounds were checked against)
    check(a.size() >= 4 && a[0].isTensor() && a[1].isInt() &&
              storageTensors_.count(a[0].toTensor().unsafeGetTensorImpl()),
          "a tensor without its storage");
    const at::Tensor& s = a[0].toTensor();
    const int64_t offset = a[1].toInt();
    const auto size = ints(a[2]), stride = ints(a[3]);
    check(size.size() == stride.size() && a[2].isTuple() && a[3].isTuple(),
          "a tensor with sizes and strides of different ranks");
    // in 128-bit arithmetic: sizes and strides from the file must not overflow into a small extent
    check(offset >= 0, "a tensor with a negative storage offset");
    const unsigned __int128 limit = static_cast<unsigned __int128>(1) << 62;
    unsigned __int128 last = static_cast<unsigned __int128>(offset), count = 1;
    bool empty = false;
    for (size_t k = 0; k < size.size(); ++k) {
      check(size[k] >= 0 && stride[k] >= 0, "a tensor with a negative size or stride");
      empty = empty || size[k] == 0;
      if (size[k] > 0) last += static_cast<unsigned __int128>(size[k] - 1) * static_cast<unsigned __int128>(stride[k]);
      count = std::min(limit, count * static_cast<unsigned __int128>(size[k]));
      check(last < limit, "a tensor with sizes or strides too large");
    }
    check(count < limit, "a tensor with more elements than can be addressed");
    check(empty || last < static_cast<unsigned __int128>(s.numel()),
          "a tensor reaches past the end of its storage (element ", static_cast<int64_t>(last), " of ", s.numel(), ")");
    return at::empty({0}, s.options()).set_(s.storage(), offset, size, stride);
  }

  c10::IValue reduce(const c10::IValue& fn, const c10::IValue& args) {
    if (!isMarker(fn, kGlobal)) return opaque("pickled object");
    const auto& g = fn.toTupleRef().elements();
    const std::string& module = g[1].toStringRef();
    const std::string& name = g[2].toStringRef();
    check(args.isTuple(), "REDUCE without an argument tuple");
    const auto& a = args.toTupleRef().elements();
    if (module == "collections" && name == "OrderedDict") {
      c10::IValue d = newDict();
      std::vector<c10::IValue> items;
      if (!a.empty() && a[0].isList())
        for (const auto& pair : a[0].toListRef())
          if (pair.isTuple() && pair.toTupleRef().elements().size() == 2) {
            items.push_back(pair.toTupleRef().elements()[0]);
            items.push_back(pair.toTupleRef().elements()[1]);
          }
      setItems(d, items);
      return d;
    }
    if (module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor"))
      return rebuildTensor(std::vector<c10::IValue>(a.begin(), a.end()));
    if (module == "torch._utils" && (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")) {
      check(!a.empty() && a[0].isTensor(), "a parameter without its tensor");
      return a[0];
    }
    if ((module == "torch" && (name == "Size" || name == "device")) ||
        (module == "torch.jit._pickle" && name == "restore_type_tag"))
      return a.empty() ? c10::IValue() : a[0];
    return opaque(module + "." + name);
  }

  void step(uint8_t op, size_t at) {
    const size_t before = stack_.size();
    execute(op, at);
    if (stack_.size() > before) check(++values_ <= kMaxValues, "more than ", kMaxValues, " values (not a weight file)");
  }

  void execute(uint8_t op, size_t at) {
    switch (op) {
      case 0x80: u8(); break;            // PROTO
      case 0x95: le<uint64_t>(); break;  // FRAME
      case '(': marks_.push_back(stack_.size()); break;
      case '}': stack_.push_back(newDict()); break;
      case ']': {
        c10::IValue l = c10::impl::GenericList(c10::AnyType::get());
        created(l);
        stack_.push_back(std::move(l));
        break;
      }
      case ')': stack_.push_back(newTuple({})); break;
      case 'N': stack_.emplace_back(); break;
      case 0x88: stack_.emplace_back(true); break;
      case 0x89: stack_.emplace_back(false); break;
      case 'K': stack_.emplace_back(static_cast<int64_t>(u8())); break;
      case 'M': stack_.emplace_back(static_cast<int64_t>(le<uint16_t>())); break;
      case 'J': stack_.emplace_back(static_cast<int64_t>(le<int32_t>())); break;
      case 0x8a: {  // LONG1: little-endian two's complement of n bytes
        const uint8_t n = u8();
        check(n <= 8, "an integer of more than 64 bits");
        need(n);
        uint64_t v = 0;
        for (uint8_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
        if (n > 0 && n < 8 && (data_[pos_ + n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);
        pos_ += n;
        stack_.emplace_back(static_cast<int64_t>(v));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(data_[pos_ + i]);
        pos_ += 8;
        double d;
        std::memcpy(&d, &bits, 8);
        stack_.emplace_back(d);
        break;
      }
      case 'X': stack_.emplace_back(bytes(le<uint32_t>())); break;   // BINUNICODE
      case 0x8c: stack_.emplace_back(bytes(u8())); break;            // SHORT_BINUNICODE
      case 0x8d: stack_.emplace_back(bytes(le<uint64_t>())); break;  // BINUNICODE8
      case 'U': stack_.emplace_back(bytes(u8())); break;             // SHORT_BINSTRING
      case 'T': stack_.emplace_back(bytes(le<uint32_t>())); break;   // BINSTRING
      case 'C': stack_.emplace_back(bytes(u8())); break;             // SHORT_BINBYTES
      case 'B': stack_.emplace_back(bytes(le<uint32_t>())); break;   // BINBYTES
      case 0x8e: stack_.emplace_back(bytes(le<uint64_t>())); break;  // BINBYTES8
      case 'q': memoPut(u8()); break;
      case 'r': memoPut(le<uint32_t>()); break;
      case 0x94: memoPut(memoNext_++); break;  // MEMOIZE
      case 'h': memoGet(u8()); break;
      case 'j': memoGet(le<uint32_t>()); break;
      case '0': pop(); break;
      case '1': popToMark(); break;
      case '2': stack_.push_back(top()); break;
      case 't': stack_.push_back(newTuple(popToMark())); break;
      case 0x85: {
        auto a = pop();
        stack_.push_back(newTuple({std::move(a)}));
        break;
      }
      case 0x86: {
        auto b = pop(), a = pop();
        stack_.push_back(newTuple({std::move(a), std::move(b)}));
        break;
      }
      case 0x87: {
        auto c = pop(), b = pop(), a = pop();
        stack_.push_back(newTuple({std::move(a), std::move(b), std::move(c)}));
        break;
      }
      case 'l': {
        auto items = popToMark();
        c10::IValue l = c10::impl::GenericList(c10::AnyType::get());
        created(l);
        append(l, items);
        stack_.push_back(std::move(l));
        break;
      }
      case 'd': {
        auto items = popToMark();
        c10::IValue d = newDict();
        setItems(d, items);
        stack_.push_back(std::move(d));
        break;
      }
      case 's': {
        auto v = pop(), k = pop();
        std::vector<c10::IValue> items{std::move(k), std::move(v)};
        setItems(top(), items);
        break;
      }
      case 'u': {
        auto items = popToMark();
        setItems(top(), items);
        break;
      }
      case 'a': {
        std::vector<c10::IValue> items{pop()};
        append(top(), items);
        break;
      }
      case 'e': {
        auto items = popToMark();
        append(top(), items);
        break;
      }
      case 'c': {  // GLOBAL module\nname\n
        std::string module = line();
        std::string name = line();
        stack_.push_back(tuple({std::string(kGlobal), module, name}));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop(), module = pop();
        check(name.isString() && module.isString(), "STACK_GLOBAL without two strings");
        stack_.push_back(tuple({std::string(kGlobal), module.toStringRef(), name.toStringRef()}));
        break;
      }
      case 'R': {
        auto args = pop(), fn = pop();
        stack_.push_back(reduce(fn, args));
        break;
      }
      case 0x81: {  // NEWOBJ cls args: an instance we do not build
        pop();
        auto cls = pop();
        stack_.push_back(isMarker(cls, kGlobal) ? opaque(cls.toTupleRef().elements()[1].toStringRef() + "." +
                                                         cls.toTupleRef().elements()[2].toStringRef())
                                                : opaque("pickled object"));
        break;
      }
      case 'b':  // BUILD: the state of an object (an OrderedDict's attributes, a parameter's): dropped
        pop();
        top();
        break;
      case 'Q': stack_.push_back(storage(pop())); break;  // BINPERSID
      default: check(false, "unsupported pickle opcode 0x", std::hex, static_cast<int>(op), std::dec, " at byte ", at);
    }
  }

  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  caffe2::serialize::PyTorchStreamReader& zip_;
  const std::string& path_;
  const char* fn_;
  std::vector<c10::IValue> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, c10::IValue> memo_;
  uint64_t memoNext_ = 0;
  std::unordered_map<std::string, c10::IValue> storages_;
  std::unordered_set<const void*> storageTensors_;
  std::unordered_map<const void*, int> depth_;
  std::unordered_set<const void*> sealed_;
  std::vector<c10::IValue> keep_;
  size_t objects_ = 0;
  size_t values_ = 0;
};

}  // namespace

c10::IValue readTorchPickle(caffe2::serialize::PyTorchStreamReader& reader, const std::string& path, const char* fn) {
  TORCH_CHECK(reader.hasRecord("data.pkl"), fn, "(): '", path,
              "' is not a readable torch file: a zip without the data.pkl that torch.save writes");
  TORCH_CHECK(reader.getRecordSize("data.pkl") <= kMaxPickleBytes, fn, "(): '", path,
              "' is not a readable torch file: its data.pkl is larger than ", kMaxPickleBytes >> 20,
              " MiB (not a weight file)");
  auto [ptr, size] = reader.getRecord("data.pkl");
  PickleReader r(static_cast<const char*>(ptr.get()), size, reader, path, fn);
  return r.run();
}

bool isOpaque(const c10::IValue& v) { return isMarker(v, kOpaque) || isMarker(v, kGlobal); }

std::string opaqueName(const c10::IValue& v) {
  if (!isOpaque(v)) return "";
  const auto& e = v.toTupleRef().elements();
  return isMarker(v, kGlobal) ? e[1].toStringRef() + "." + e[2].toStringRef() : e[1].toStringRef();
}

}  // namespace semiseg::io
