#include "tensor/cpu_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <list>
#include <mutex>
#include <unordered_map>

namespace semiseg {

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kMinCached = kMiB;  // smaller blocks: glibc's heap already reuses them

constexpr size_t kHugePage = 2 * kMiB;
constexpr size_t kHugeFrom = 8 * kMiB;  // from here whole huge pages: at most 1/4 rounding, < 3 % from 64 MiB

// whole MiB below kHugeFrom, whole 2 MiB huge pages from it
size_t roundUp(size_t n) {
  const size_t unit = n >= kHugeFrom ? kHugePage : kMiB;
  return (n + unit - 1) / unit * unit;
}

void freeBlock(void* p);

class CpuCache final : public c10::Allocator {
 public:
  explicit CpuCache(c10::Allocator* fallback) : fallback_(fallback) {}

  c10::DataPtr allocate(size_t n) override {
    if (n < kMinCached || !enabled_.load()) return fallback_->allocate(n);
    const size_t size = roundUp(n);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(m_);
      auto it = bySize_.find(size);
      if (it != bySize_.end()) {
        p = it->second->ptr;
        lru_.erase(it->second);
        bySize_.erase(it);
        cached_ -= size;
        ++hits_;
        track(p, size);
      } else {
        ++misses_;
        // keep the footprint within the largest in-use total seen (plus slack): release the least
        // recently freed blocks first
        const size_t peak = std::max(peakInUse_, inUse_ + size);
        while (!lru_.empty() && inUse_ + size + cached_ > peak + slack(peak)) releaseOldest();
      }
    }
    if (!p) {
      p = fresh(size);
      std::lock_guard<std::mutex> lock(m_);
      track(p, size);
    }
    return {p, p, &freeBlock, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &freeBlock; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void release(void* p) {
    {
      std::lock_guard<std::mutex> lock(m_);
      auto it = live_.find(p);
      if (it != live_.end()) {
        const size_t size = it->second;
        live_.erase(it);
        inUse_ -= size;
        if (!enabled_) {
          std::free(p);
          return;
        }
        lru_.push_back({size, p});
        bySize_.emplace(size, std::prev(lru_.end()));
        cached_ += size;
        return;
      }
    }
    // a small block of the fallback allocator, through raw_deleter()
    fallback_->raw_deleter()(p);
  }

  void setEnabled(bool on) {
    std::lock_guard<std::mutex> lock(m_);
    enabled_ = on;
    if (!on) releaseAll();
  }

  void empty() {
    std::lock_guard<std::mutex> lock(m_);
    releaseAll();
  }

  CpuCacheStats stats() {
    std::lock_guard<std::mutex> lock(m_);
    CpuCacheStats s;
    s.enabled = enabled_;
    s.cachedBytes = static_cast<int64_t>(cached_);
    s.inUseBytes = static_cast<int64_t>(inUse_);
    s.peakInUseBytes = static_cast<int64_t>(peakInUse_);
    s.hits = hits_;
    s.misses = misses_;
    s.releases = releases_;
    return s;
  }

 private:
  struct Block {
    size_t size;
    void* ptr;
  };

  void track(void* p, size_t size) {  // m_ held: a block handed out
    inUse_ += size;
    peakInUse_ = std::max(peakInUse_, inUse_);
    live_.emplace(p, size);
  }

  static size_t slack(size_t peak) { return std::max<size_t>(64 * kMiB, peak / 8); }

  // A new block: from kHugeFrom 2 MiB-aligned and marked for transparent huge pages (fewer page faults on
  // first touch, fewer TLB misses in the convolutions), else 64-byte aligned.
  static void* tryFresh(size_t size) {
    const bool huge = size >= kHugeFrom;
    void* p = nullptr;
    if (posix_memalign(&p, huge ? kHugePage : 64, size) != 0) return nullptr;
#ifdef MADV_HUGEPAGE
    if (huge) madvise(p, size, MADV_HUGEPAGE);  // advice only: THP off or 'never' leaves small pages
#endif
    return p;
  }

  void* fresh(size_t size) {
    void* p = tryFresh(size);
    if (!p) {
      empty();  // out of memory: give the cache back and try once more
      p = tryFresh(size);
    }
    TORCH_CHECK(p, "CPU allocator: not enough memory: you tried to allocate ", size, " bytes (",
                static_cast<double>(size) / static_cast<double>(kMiB), " MiB)");
    return p;
  }

  void releaseOldest() {  // m_ held
    const Block b = lru_.front();
    auto [first, last] = bySize_.equal_range(b.size);
    for (auto it = first; it != last; ++it) {
      if (it->second == lru_.begin()) {
        bySize_.erase(it);
        break;
      }
    }
    lru_.pop_front();
    cached_ -= b.size;
    ++releases_;
    std::free(b.ptr);
  }

  void releaseAll() {  // m_ held
    while (!lru_.empty()) releaseOldest();
  }

  c10::Allocator* fallback_;
  std::mutex m_;
  std::atomic<bool> enabled_{true};  // off: LibTorch's own allocator serves every request
  std::list<Block> lru_;             // cached blocks, least recently freed first
  std::unordered_multimap<size_t, std::list<Block>::iterator> bySize_;
  std::unordered_map<void*, size_t> live_;  // large blocks in use
  size_t cached_ = 0, inUse_ = 0, peakInUse_ = 0;
  int64_t hits_ = 0, misses_ = 0, releases_ = 0;
};

CpuCache* gCache = nullptr;  // never destroyed: tensors may be freed during static destruction

void freeBlock(void* p) { gCache->release(p); }

}  // namespace

void setCpuCacheEnabled(bool enabled) {
  static std::once_flag once;
  if (enabled) {
    std::call_once(once, [] {
      gCache = new CpuCache(c10::GetCPUAllocator());
      c10::SetCPUAllocator(gCache, /*priority=*/1);
    });
  }
  if (gCache) gCache->setEnabled(enabled);
}

CpuCacheStats cpuCacheStats() { return gCache ? gCache->stats() : CpuCacheStats{}; }

void emptyCpuCache() {
  if (gCache) gCache->empty();
}

}  // namespace semiseg
