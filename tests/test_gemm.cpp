// The engine's SGEMM on every kernel set this CPU supports, against a
// double-precision triple loop: shapes that are not multiples of the register
// or cache blocks, all four transposes, padded leading dimensions, the
// alpha/beta pairs the callers use, bitwise reproducibility across thread
// counts, and the selection of kernel sets by name.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/gemm/gemm.h"

using namespace st::cpu;

namespace {

struct Problem {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
};

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = u(gen);
  return v;
}

// Runs one product on `isa` and checks every element of C, the padding
// between rows included, against the F64 loop.
void check_product(Isa isa, const Problem& p, int threads = 1) {
  INFO(isa_name(isa) << ": m " << p.m << " n " << p.n << " k " << p.k << " ta " << p.ta << " tb "
                     << p.tb << " alpha " << p.alpha << " beta " << p.beta << ", " << threads
                     << " threads");
  // Stored shapes and leading dimensions padded by a few elements.
  const int64_t a_rows = p.ta ? p.k : p.m, a_cols = p.ta ? p.m : p.k;
  const int64_t b_rows = p.tb ? p.n : p.k, b_cols = p.tb ? p.k : p.n;
  const int64_t lda = a_cols + 3, ldb = b_cols + 5, ldc = p.n + 2;
  const std::vector<float> a = random_floats(static_cast<std::size_t>(a_rows * lda), 1);
  const std::vector<float> b = random_floats(static_cast<std::size_t>(b_rows * ldb), 2);
  std::vector<float> c = random_floats(static_cast<std::size_t>(p.m * ldc), 3);
  // With beta 0, C's old values must not be read: NaN there must not leak through.
  if (p.beta == 0.0f)
    for (float& e : c) e = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> c0 = c;
  sgemm_on(isa, threads, p.ta, p.tb, p.m, p.n, p.k, p.alpha, a.data(), lda, b.data(), ldb, p.beta,
           c.data(), ldc);
  int64_t bad = 0;
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float got = c[i * ldc + j];
      if (j >= p.n) {  // between rows: untouched
        const float old = c0[i * ldc + j];
        if (!(got == old || (std::isnan(got) && std::isnan(old)))) ++bad;
        continue;
      }
      double sum = 0, mag = 0;
      for (int64_t q = 0; q < p.k; ++q) {
        const double x = p.ta ? a[q * lda + i] : a[i * lda + q];
        const double y = p.tb ? b[j * ldb + q] : b[q * ldb + j];
        sum += x * y, mag += std::abs(x * y);
      }
      const double old = p.beta == 0.0f ? 0.0 : c0[i * ldc + j];
      const double want = p.alpha * sum + p.beta * old;
      // Float rounding of a k-term sum, then of the alpha/beta update.
      const double tol =
          1e-6 + (p.k + 4) * 6e-8 * (std::abs(p.alpha) * mag + std::abs(p.beta * old));
      if (!(std::abs(got - want) <= tol)) {
        if (bad < 5) UNSCOPED_INFO("C[" << i << "][" << j << "] = " << got << ", want " << want);
        ++bad;
      }
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("the baseline kernel set is always supported and listed first", "[gemm]") {
  const std::vector<Isa> isas = supported_isas();
  REQUIRE(!isas.empty());
  CHECK(isas.front() == Isa::Baseline);
  CHECK(best_isa() == isas.back());
  CHECK(isa_supported(active_isa()));
  CHECK(std::string(cpu_kernel_set_name()) == isa_name(active_isa()));
  CHECK(!cpu_model_name().empty());
  for (Isa i : {Isa::Baseline, Isa::Avx2, Isa::Avx512f}) CHECK(parse_isa(isa_name(i)) == i);
  CHECK(!parse_isa("sse3"));
}

TEST_CASE("sgemm matches F64 loops on odd shapes - every transpose and kernel set", "[gemm]") {
  const int64_t sizes[] = {1, 7, 17, 33, 100};
  for (Isa isa : supported_isas())
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int64_t m : sizes)
          for (int64_t n : sizes)
            for (int64_t k : sizes) check_product(isa, {m, n, k, ta, tb, 1.0f, 0.0f});
}

TEST_CASE("sgemm alpha and beta cases the callers use", "[gemm]") {
  for (Isa isa : supported_isas())
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        // beta 1 accumulates (weight gradients over image groups); the others are general.
        check_product(isa, {33, 17, 100, ta, tb, 1.0f, 1.0f});
        check_product(isa, {7, 100, 33, ta, tb, 0.5f, -2.0f});
        check_product(isa, {17, 33, 7, ta, tb, -1.0f, 0.25f});
        // alpha 0 and k 0 only scale C.
        check_product(isa, {17, 7, 33, ta, tb, 0.0f, 3.0f});
        check_product(isa, {17, 7, 0, ta, tb, 1.0f, 0.5f});
        check_product(isa, {17, 7, 0, ta, tb, 1.0f, 0.0f});
      }
}

TEST_CASE("sgemm across cache blocks and register block widths - with several threads", "[gemm]") {
  // Past one block of rows (mc up to 128), of K (kc 256) and of columns (nc 2048).
  for (Isa isa : supported_isas()) {
    check_product(isa, {131, 67, 517, false, false, 1.0f, 0.0f}, 1);
    check_product(isa, {131, 67, 517, true, true, 1.0f, 1.0f}, 2);
    check_product(isa, {9, 2053, 260, false, true, 1.0f, 0.0f}, 3);
    check_product(isa, {257, 45, 300, true, false, 1.0f, 0.0f}, 3);
    // Above the threshold for threads (2^24 multiply-adds), split unevenly.
    check_product(isa, {263, 301, 259, false, true, 1.0f, 1.0f}, 3);
    // Whole register panels with a small other side: A transposed and B not are
    // used in place, unpacked, across several K slices.
    for (int64_t m : {12, 24, 48})
      for (int64_t n : {16, 32, 48, 64})
        for (bool ta : {false, true})
          for (bool tb : {false, true}) check_product(isa, {m, n, 300, ta, tb, 1.0f, 1.0f}, 2);
    // Exactly the narrow blocks' widths (16 for AVX-512, 8 for AVX2), and just past them.
    for (int64_t n : {8, 9, 16, 17}) {
      check_product(isa, {150, n, 33, false, true, 1.0f, 1.0f}, 1);
      check_product(isa, {25, n, 270, true, false, 1.0f, 0.0f}, 2);
    }
  }
}

TEST_CASE("sgemm is bitwise reproducible for any thread count on one kernel set", "[gemm]") {
  const int64_t m = 203, n = 301, k = 290;
  const std::vector<float> a = random_floats(m * k, 7), b = random_floats(k * n, 8);
  for (Isa isa : supported_isas()) {
    INFO(isa_name(isa));
    std::vector<float> ref;
    for (int threads : {1, 2, 3, 1}) {
      for (bool tb : {false, true}) {
        std::vector<float> c(m * n, 1.0f);
        sgemm_on(isa, threads, false, tb, m, n, k, 1.0f, a.data(), k, b.data(), tb ? k : n, 1.0f,
                 c.data(), n);
        if (!tb) {
          if (ref.empty()) ref = c;
          CHECK(c == ref);
        }
      }
    }
  }
}

TEST_CASE("kernel sets are chosen by name - unsupported or unknown ones are errors", "[gemm]") {
  const Isa saved = active_isa();
  select_isa("baseline", "--cpu-isa");
  CHECK(active_isa() == Isa::Baseline);
  CHECK(std::string(cpu_kernel_set_name()) == "baseline");
  try {
    select_isa("sse9", kIsaEnvVar);
    FAIL("no error");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains("SPARSETRAIN_ISA=sse9"));
  }
  for (Isa i : {Isa::Avx2, Isa::Avx512f}) {
    if (isa_supported(i)) {
      select_isa(isa_name(i), kIsaEnvVar);
      CHECK(active_isa() == i);
    } else {
      CHECK_THROWS_WITH(select_isa(isa_name(i), "--cpu-isa"),
                        Catch::Contains("--cpu-isa") && Catch::Contains("does not support"));
    }
  }
  set_active_isa(saved);
  {
    ScopedIsa lower(Isa::Baseline);
    CHECK(active_isa() == Isa::Baseline);
  }
  CHECK(active_isa() == saved);
}

TEST_CASE("row dot products in lanes match F64 loops on every kernel set", "[gemm]") {
  for (Isa isa : supported_isas()) {
    ScopedIsa kernels(isa);
    const int64_t lanes = dot_lanes();
    for (int64_t m : {1, 2, 3, 4, 5, 7})
      for (int64_t n : {1, 3, 4, 5, 9})
        for (int64_t k : {lanes, 3 * lanes, 8 * lanes}) {
          INFO(isa_name(isa) << ": m " << m << " n " << n << " k " << k);
          // Rows padded by a few elements past k.
          const int64_t lda = k + 3, ldb = k + 5;
          const std::vector<float> a = random_floats(m * lda, 51), b = random_floats(n * ldb, 52);
          // Lanes start from earlier sums: the kernel adds onto them.
          std::vector<float> acc = random_floats(m * n * lanes, 53);
          const std::vector<float> start = acc;
          sdot_accumulate(m, n, k, a.data(), lda, b.data(), ldb, acc.data());
          std::vector<float> sums(m * n), start_sums(m * n);
          sum_lanes(acc.data(), m * n, sums.data());
          sum_lanes(start.data(), m * n, start_sums.data());
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double ref = 0;
              for (int64_t p = 0; p < k; ++p) ref += double(a[i * lda + p]) * b[j * ldb + p];
              CHECK(std::abs(sums[i * n + j] - start_sums[i * n + j] - ref) < 1e-5 * k);
              // Lane l holds only the products at p = l (mod lanes).
              double lane1 = start[(i * n + j) * lanes + 1];
              for (int64_t p = 1; p < k; p += lanes)
                lane1 += double(a[i * lda + p]) * b[j * ldb + p];
              CHECK(std::abs(acc[(i * n + j) * lanes + 1] - lane1) < 1e-5 * k);
            }
        }
    // k must be whole vectors.
    std::vector<float> x(64), acc(64 * lanes);
    CHECK_THROWS_AS(sdot_accumulate(1, 1, lanes + 1, x.data(), 64, x.data(), 64, acc.data()),
                    std::invalid_argument);
  }
}

TEST_CASE("products with A packed once match F64 loops on every kernel set", "[gemm]") {
  for (Isa isa : supported_isas()) {
    ScopedIsa kernels(isa);
    const int64_t nr = packed_b_columns();
    for (bool ta : {false, true})
      for (int64_t m : {1, 5, 6, 7, 13, 64})
        for (int64_t k : {1, 3, 13, 64, 256})
          for (int64_t n : {nr, 3 * nr}) {
            INFO(isa_name(isa) << ": m " << m << " n " << n << " k " << k << " ta " << ta);
            const int64_t lda = (ta ? m : k) + 3, ldb = n + 5, ldc = n + 2;
            const std::vector<float> a = random_floats((ta ? k : m) * lda, 61);
            const std::vector<float> b = random_floats(k * ldb, 62);
            std::vector<float> packed(packed_a_size(m, k));
            pack_small_a(ta, m, k, a.data(), lda, packed.data());
            // C starts as NaN: the product overwrites it without reading it.
            std::vector<float> c(m * ldc, std::numeric_limits<float>::quiet_NaN());
            sgemm_packed_a(m, n, k, packed.data(), b.data(), ldb, c.data(), ldc);
            for (int64_t i = 0; i < m; ++i) {
              for (int64_t j = 0; j < n; ++j) {
                double ref = 0;
                for (int64_t p = 0; p < k; ++p)
                  ref += double(ta ? a[p * lda + i] : a[i * lda + p]) * b[p * ldb + j];
                CHECK(std::abs(c[i * ldc + j] - ref) < 1e-5 * k);
              }
              // The padding past n is left alone.
              CHECK(std::isnan(c[i * ldc + n]));
            }
          }
    std::vector<float> x(65 * 300);
    CHECK_THROWS_AS(pack_small_a(false, 65, 4, x.data(), 4, x.data()), std::invalid_argument);
    CHECK_THROWS_AS(sgemm_packed_a(4, nr + 1, 4, x.data(), x.data(), 64, x.data(), 64),
                    std::invalid_argument);
  }
}
