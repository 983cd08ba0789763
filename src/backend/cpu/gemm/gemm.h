// The engine's own single-precision GEMM: packed, cache-blocked, with one
// register-blocked micro-kernel per x86 ISA level, chosen from the CPU's
// features at start-up (never from a BLAS library's table of CPU models).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace st::cpu {

// Kernel sets, lowest first. Baseline is portable C++ (SSE2 on x86-64).
enum class Isa { Baseline = 0, Avx2 = 1, Avx512f = 2 };

// The environment variable that forces a lower kernel set.
inline constexpr const char* kIsaEnvVar = "SPARSETRAIN_ISA";

const char* isa_name(Isa isa);  // "baseline", "avx2", "avx512f"
std::optional<Isa> parse_isa(std::string_view name);

// Whether this build has the kernel set and this CPU and OS can run it
// (cpuid feature bits; xgetbv for the OS-enabled register state).
bool isa_supported(Isa isa);
Isa best_isa();
// The supported sets, lowest first.
std::vector<Isa> supported_isas();

// Selects the kernel set for the process. `source` names where the request
// came from (the flag or the variable) for the error: throws
// std::invalid_argument for an unknown name or a set this CPU lacks.
void select_isa(std::string_view name, std::string_view source);
// Resolves the set once: the SPARSETRAIN_ISA variable when set, else the best
// supported one. Throws std::invalid_argument naming the variable when it is bad.
Isa active_isa();
// Forces a set (tests); it must be supported.
void set_active_isa(Isa isa);

// Name of the kernel set in use, e.g. "avx512f".
const char* cpu_kernel_set_name();
// The CPU's brand string from cpuid ("unknown CPU" where there is none).
std::string cpu_model_name();
// "avx512f (AMD EPYC ...)": what run logs and bench print.
std::string cpu_kernel_description();

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C on the active
// kernel set. beta == 0 overwrites C without reading it. Runs on up to
// threads() OpenMP threads when called outside a parallel region and the
// product is large, else on the calling thread. Each element of C is summed
// in the same order whatever the thread count: results depend on the kernel
// set and the shape only.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
// The same on a given (supported) kernel set and at most `threads` threads (0: threads()).
void sgemm_on(Isa isa, int threads, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
              float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
              float* c, int64_t ldc);

// Many products C = op(A) B with one small A (at most kPackedMaxRows rows and
// kPackedMaxDepth deep): A is packed once into the active kernel set's
// register panels, and each product reads B in place (row-major, n a multiple
// of packed_b_columns()). The multiplies of a thin layer's Winograd tiles.
inline constexpr int64_t kPackedMaxRows = 64, kPackedMaxDepth = 256;
int64_t packed_b_columns();
// Floats that pack_small_a writes for an m x k A.
int64_t packed_a_size(int64_t m, int64_t k);
void pack_small_a(bool trans_a, int64_t m, int64_t k, const float* a, int64_t lda, float* packed);
// C[m, n] = A B, A as packed by pack_small_a with the same m and k on the same kernel set.
void sgemm_packed_a(int64_t m, int64_t n, int64_t k, const float* packed, const float* b,
                    int64_t ldb, float* c, int64_t ldc);

// Vector lanes of the active kernel set's row dot products (4, 8 or 16).
int dot_lanes();
// acc[(i * n + j) * L + l] += the sum over p = l (mod L) of a[i * lda + p] *
// b[j * ldb + p], with L = dot_lanes() and k a multiple of L: the m x n dot
// products of A's and B's rows, each kept as L partial sums that the caller
// adds in lane order (sum_lanes). For long reductions over contiguous rows
// (a thin layer's weight gradient), where a GEMM would pack both operands.
// Runs on the calling thread; bitwise reproducible per kernel set.
void sdot_accumulate(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                     int64_t ldb, float* acc);
// out[e] = the L lanes of acc[e * L ...] added in lane order, for `count` elements.
void sum_lanes(const float* acc, int64_t count, float* out);

// Forces the kernel set for a scope (tests).
class ScopedIsa {
 public:
  explicit ScopedIsa(Isa isa) : previous_(active_isa()) { set_active_isa(isa); }
  ~ScopedIsa() { set_active_isa(previous_); }
  ScopedIsa(const ScopedIsa&) = delete;
  ScopedIsa& operator=(const ScopedIsa&) = delete;

 private:
  Isa previous_;
};

}  // namespace st::cpu
