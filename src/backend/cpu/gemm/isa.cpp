// Kernel-set detection and selection: cpuid feature bits (GCC's
// __builtin_cpu_supports, which also checks with xgetbv that the OS saves the
// AVX and AVX-512 register state), once per process.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "backend/cpu/gemm/gemm.h"
#include "backend/cpu/gemm/gemm_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define ST_GEMM_X86 1
#endif

namespace st::cpu {
namespace {

using gemm_detail::kernels_of;

bool cpu_has(Isa isa) {
#ifdef ST_GEMM_X86
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Avx512f:
      return __builtin_cpu_supports("avx512f");
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Baseline:
      return true;
  }
  return false;
#else
  return isa == Isa::Baseline;
#endif
}

constexpr int kUnset = -1;
std::atomic<int> g_isa{kUnset};
std::mutex g_isa_mutex;

std::string supported_list() {
  std::string s;
  for (Isa i : supported_isas()) s += (s.empty() ? "" : ", ") + std::string(isa_name(i));
  return s;
}

Isa resolve(std::string_view name, std::string_view source) {
  const std::optional<Isa> isa = parse_isa(name);
  if (!isa)
    throw std::invalid_argument(std::string(source) + "=" + std::string(name) +
                                ": unknown CPU kernel set (one of avx512f, avx2, baseline)");
  if (!isa_supported(*isa))
    throw std::invalid_argument(std::string(source) + "=" + std::string(name) +
                                ": this CPU does not support it (supported: " + supported_list() +
                                ")");
  return *isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  return kernels_of(isa).name;
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa i : {Isa::Baseline, Isa::Avx2, Isa::Avx512f})
    if (name == isa_name(i)) return i;
  return std::nullopt;
}

bool isa_supported(Isa isa) {
  return kernels_of(isa).wide.macro != nullptr && cpu_has(isa);
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa i : {Isa::Baseline, Isa::Avx2, Isa::Avx512f})
    if (isa_supported(i)) out.push_back(i);
  return out;
}

Isa best_isa() {
  return supported_isas().back();
}

void select_isa(std::string_view name, std::string_view source) {
  const Isa isa = resolve(name, source);
  g_isa = static_cast<int>(isa);
}

Isa active_isa() {
  int v = g_isa.load();
  if (v != kUnset) return static_cast<Isa>(v);
  std::lock_guard<std::mutex> lock(g_isa_mutex);
  v = g_isa.load();
  if (v != kUnset) return static_cast<Isa>(v);
  const char* env = std::getenv(kIsaEnvVar);
  const Isa isa = env && *env ? resolve(env, kIsaEnvVar) : best_isa();
  g_isa = static_cast<int>(isa);
  return isa;
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("CPU kernel set ") + isa_name(isa) +
                                " is not supported here (supported: " + supported_list() + ")");
  g_isa = static_cast<int>(isa);
}

const char* cpu_kernel_set_name() {
  return isa_name(active_isa());
}

std::string cpu_model_name() {
#ifdef ST_GEMM_X86
  unsigned int regs[12] = {};
  unsigned int max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    for (unsigned int i = 0; i < 3; ++i)
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                  &regs[4 * i + 3]);
    char brand[49] = {};
    std::memcpy(brand, regs, 48);
    std::string s(brand);
    const auto first = s.find_first_not_of(' ');
    const auto last = s.find_last_not_of(' ');
    if (first != std::string::npos) return s.substr(first, last - first + 1);
  }
#endif
  return "unknown CPU";
}

std::string cpu_kernel_description() {
  return std::string(cpu_kernel_set_name()) + " (" + cpu_model_name() + ")";
}

namespace gemm_detail {

const KernelSet& kernels_of(Isa isa) {
  switch (isa) {
    case Isa::Avx512f:
      return kAvx512fKernels;
    case Isa::Avx2:
      return kAvx2Kernels;
    case Isa::Baseline:
      break;
  }
  return kBaselineKernels;
}

}  // namespace gemm_detail
}  // namespace st::cpu
