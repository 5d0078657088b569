// A caching allocator for large CPU blocks, installed as LibTorch's CPU allocator.
//
// Why: a 3-D network's activations are hundreds of MiB each, far above glibc's mmap threshold, so every
// new activation is a fresh mapping whose pages the kernel faults in and zeroes on first touch, and every
// freed one is unmapped again. A training step or a sliding-window pass allocates the same sizes in the
// same order each time: keeping freed blocks and handing them out again removes that work (benchmarks/
// NOTES.md: the LA step and the V-Net inference spent a fifth to a quarter of their time in the kernel).
//
// Policy: blocks of at least 1 MiB, rounded up to whole MiB (from 8 MiB: to whole 2 MiB huge pages,
// 2 MiB-aligned and advised for transparent huge pages), are cached when freed; a request takes a cached
// block of its rounded size if there is one. The footprint (blocks in use + cached) never grows
// past the largest in-use total seen so far plus `slack`: a miss first releases least recently freed
// blocks until the new block fits, so the cache costs no more memory than the process's own peak.
// `emptyCpuCache()` returns every cached block to the system; `SEMISEG_CPU_CACHE=0` in the environment
// at load turns the cache off (LibTorch's default allocator then serves everything).
#pragma once

#include <cstdint>

namespace semiseg {

struct CpuCacheStats {
  bool enabled = false;
  int64_t cachedBytes = 0;  // freed blocks held for reuse
  int64_t inUseBytes = 0;   // large blocks handed out and not yet freed
  int64_t peakInUseBytes = 0;
  int64_t hits = 0;      // large requests served from the cache
  int64_t misses = 0;    // large requests that needed a new block
  int64_t releases = 0;  // cached blocks returned to the system (to make room, or by emptyCpuCache)
};

// On: installs the allocator (the first time) and caches freed blocks; off: releases the cached blocks,
// hands new requests to LibTorch's own allocator and frees its blocks still in use when they are freed.
void setCpuCacheEnabled(bool enabled);
CpuCacheStats cpuCacheStats();
void emptyCpuCache();

}  // namespace semiseg
