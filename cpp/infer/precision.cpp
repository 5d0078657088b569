#include "infer/precision.h"

#include <c10/util/Exception.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace semiseg::infer {

#ifdef SEMISEG_WITH_CUDA
bool cudaDeviceBf16(int index);  // cuda/precision_cuda.cu
#endif

namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
  const bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;   // opmask, ZMM_Hi256, Hi16_ZMM
  const bool tiles = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ymm && (b & (1u << 5));
  f.fma = f.fma && ymm;
  f.f16c = f.f16c && ymm;
  f.avx512f = zmm && (b & (1u << 16));
  f.avx512bw = f.avx512f && (b & (1u << 30));
  f.avx512vnni = f.avx512f && (c & (1u << 11));
  f.avx512fp16 = f.avx512f && (d & (1u << 23));
  // AMX state is enabled per process on request (arch_prctl); LibTorch asks for it at first use, so the
  // tile bits of XCR0 are what the OS supports.
  f.amxBf16 = tiles && (d & (1u << 22));
  f.amxTile = tiles && (d & (1u << 24));
  const unsigned eax1 = [] {
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    return a1;
  }();
  f.avx512bf16 = f.avx512f && (eax1 & (1u << 5));
  f.amxFp16 = tiles && (eax1 & (1u << 21));
#endif
  return f;
}

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> all[] = {{avx2, "avx2"},
                                              {fma, "fma"},
                                              {f16c, "f16c"},
                                              {avx512f, "avx512f"},
                                              {avx512bw, "avx512bw"},
                                              {avx512vnni, "avx512_vnni"},
                                              {avx512bf16, "avx512_bf16"},
                                              {avx512fp16, "avx512_fp16"},
                                              {amxTile, "amx_tile"},
                                              {amxBf16, "amx_bf16"},
                                              {amxFp16, "amx_fp16"}};
  for (const auto& [on, name] : all)
    if (on) out.emplace_back(name);
  return out;
}

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures features = detect();
  return features;
}

bool cudaSupportsBf16(int index) {
#ifdef SEMISEG_WITH_CUDA
  return cudaDeviceBf16(index);
#else
  (void)index;
  return false;
#endif
}

std::optional<c10::ScalarType> resolvePrecision(const std::string& requested, const c10::Device& device,
                                                const char* fn) {
  const bool cuda = device.is_cuda();
  const int index = cuda && device.has_index() ? device.index() : 0;
  if (requested == "float32") return std::nullopt;
  if (requested == "auto") {
    const bool bf16 = cuda ? cudaSupportsBf16(index) : device.is_cpu() && cpuFeatures().nativeBf16();
    return bf16 ? std::optional<c10::ScalarType>(c10::ScalarType::BFloat16) : std::nullopt;
  }
  if (requested == "bfloat16") {
    TORCH_CHECK(!cuda || cudaSupportsBf16(index), fn, "(): precision 'bfloat16' needs a CUDA device of compute ",
                "capability >= 8.0 (Ampere or newer); ", device, " has none: use 'float16' or 'float32'");
    TORCH_CHECK(cuda || device.is_cpu(), fn, "(): precision 'bfloat16' runs on 'cpu' or 'cuda', got ", device);
    return c10::ScalarType::BFloat16;
  }
  if (requested == "float16") {
    TORCH_CHECK(cuda, fn, "(): precision 'float16' runs on CUDA devices only (the network is on ", device,
                "): use 'bfloat16' or 'float32' on the CPU");
    return c10::ScalarType::Half;
  }
  TORCH_CHECK(false, fn, "(): argument 'precision' must be 'float32', 'bfloat16', 'float16' or 'auto', got '",
              requested, "'");
}

std::string precisionName(std::optional<c10::ScalarType> dtype) {
  if (!dtype) return "float32";
  return *dtype == c10::ScalarType::BFloat16 ? "bfloat16" : "float16";
}

}  // namespace semiseg::infer
