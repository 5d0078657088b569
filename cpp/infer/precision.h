// Precision of inference and training forwards: what the CPU offers (cpuid), what CUDA offers, and the
// resolution of a requested precision ('float32' | 'bfloat16' | 'float16' | 'auto') on a device to the
// dtype autocast runs in (nullopt: plain float32). 'auto' is bfloat16 where it runs natively (a CPU with
// AVX-512 BF16 or AMX-BF16, a CUDA device of compute capability >= 8.0) and float32 elsewhere.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <optional>
#include <string>
#include <vector>

namespace semiseg::infer {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vnni = false;
  bool avx512bf16 = false, avx512fp16 = false;
  bool amxTile = false, amxBf16 = false, amxFp16 = false;
  // Names of the features present, in the order above (what buildInfo() lists).
  std::vector<std::string> names() const;
  // bfloat16 matrix instructions (AVX-512 BF16 or AMX-BF16) usable by this process.
  bool nativeBf16() const { return avx512bf16 || amxBf16; }
};

// Detected once (cpuid, and xgetbv for the OS-enabled register state).
const CpuFeatures& cpuFeatures();

// Whether CUDA device `index` has native bfloat16 (compute capability >= 8.0); false without CUDA.
bool cudaSupportsBf16(int index);

// The autocast dtype for `requested` on `device`; `fn` names the caller in errors. Throws (c10::Error)
// for an unknown name, float16 on a CPU device, bfloat16 on a CUDA device without support.
std::optional<c10::ScalarType> resolvePrecision(const std::string& requested, const c10::Device& device,
                                                const char* fn);

// "float32" | "bfloat16" | "float16"
std::string precisionName(std::optional<c10::ScalarType> dtype);

}  // namespace semiseg::infer
