// Parity of the Cuda backend with the Cpu reference: every kernel, a whole
// GPT-2- and Llama-flavour model forward/backward, one AdamW step, a training
// run, KV-cache decoding, seeded sampling and token draws.
//
// This file is compiled twice (tests/CMakeLists.txt):
//   - by nvcc with Thrust's CUDA system (nla_cuda_tests): the real GPU path,
//     cuBLASLt included. Without a GPU every case reports "skipped: no usable
//     GPU" and passes; one case checks that the backend then refuses to start
//     with a clear nla::Error.
//   - by the host compiler with Thrust's OpenMP system (nla_thrust_omp_tests,
//     through parity_omp_test.cpp): every Thrust code path on the CPU, run in
//     CI on every submission.
//
// Tolerances (max |cuda - cpu| / (1 + max |cpu|) over a tensor):
//   fp64 kernels 1e-12; fp32 kernels 1e-5 (the sums run in another order);
//   fp32 model logits/gradients 1e-4; TF32 GEMMs (GPU only) 1e-2;
//   50 training steps in fp32: losses within 1e-3 of each other.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "nla/backend/cuda.cuh"
#include "nla/nla.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace nla;

// Skips a [cuda] case, with the reason, when kernels cannot run here.
#define NLA_SKIP_WITHOUT_DEVICE()                      \
  do {                                                 \
    std::string why_;                                  \
    if (!nla::gpu::device_available(&why_)) {          \
      WARN("skipped: no usable GPU (" << why_ << ")"); \
      SUCCEED("skipped: no usable GPU");               \
      return;                                          \
    }                                                  \
  } while (false)

// One tensor held by both backends with the same values: T on the Cpu, G on
// the Cuda backend (bf16 where the Cpu reference runs in fp32), the values
// rounded through G on both.
template <class T, class G = T>
struct Mirror {
  Tensor<T, Cpu> cpu;
  Tensor<G, Cuda> gpu;

  Mirror(Cuda& backend, const std::vector<T>& values)
      : cpu(Shape{index_t(values.size())}), gpu(Shape{index_t(values.size())}) {
    std::vector<G> rounded(values.begin(), values.end());
    std::copy(rounded.begin(), rounded.end(), cpu.data());
    from_host(backend, gpu.view(), rounded.data());
  }
  T* on(Cpu&) { return cpu.data(); }
  G* on(Cuda&) { return gpu.data(); }

  // max |gpu - cpu| / (1 + max |cpu|)
  double error(Cuda& backend) const {
    const auto g = to_host(backend, gpu.view());
    double diff = 0, scale = 0;
    for (index_t i = 0; i < cpu.size(); ++i) {
      diff = std::max(diff, std::abs(double(g[i]) - double(cpu.data()[i])));
      scale = std::max(scale, std::abs(double(cpu.data()[i])));
      if (!std::isfinite(double(g[i]))) return INFINITY;
    }
    return diff / (1 + scale);
  }
};

template <class T>
std::vector<T> normal(index_t n, std::uint64_t seed, double scale = 1.0) {
  std::vector<T> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[i] = T(scale * random_normal(seed, 7, std::uint64_t(i)));
  return v;
}

template <class T, class G = T>
Mirror<T, G> random_mirror(Cuda& backend, index_t n, std::uint64_t seed, double scale = 1.0) {
  return Mirror<T, G>(backend, normal<T>(n, seed, scale));
}

template <class T>
double tolerance() {
  return std::is_same<T, double>::value ? 1e-12 : 1e-5;
}

// Runs f on the Cpu and on the Cuda backend; f(backend) picks the kernels by
// argument-dependent lookup and the Mirror pointers by overload.
template <class F>
void on_both(Cpu& cpu, Cuda& gpu, F f) {
  f(cpu);
  f(gpu);
}

// Each column's sum of x [rows, cols] (and of x^2 alongside, through the
// paired sums a LayerNorm's backward takes), by reduce.cuh at a given chunking.
template <class T>
void device_column_sums(Cuda& gpu, T* sums, T* pair_sums, const T* x, index_t rows, index_t cols,
                        index_t chunk_rows) {
  using A = accum_t<T>;
  gpu::column_sums<A>(
      gpu, rows, cols, [=] NLA_HOST_DEVICE(index_t r, index_t c) { return A(x[r * cols + c]); },
      [=] NLA_HOST_DEVICE(index_t c, A total) { sums[c] = T(total); }, chunk_rows);
  gpu::column_sums<gpu::SumPair<A>>(
      gpu, rows, cols,
      [=] NLA_HOST_DEVICE(index_t r, index_t c) {
        const A v = x[r * cols + c];
        return gpu::SumPair<A>{v, v * v};
      },
      [=] NLA_HOST_DEVICE(index_t c, gpu::SumPair<A> total) {
        pair_sums[2 * c] = T(total.first);
        pair_sums[2 * c + 1] = T(total.second);
      },
      chunk_rows);
}

}  // namespace

TEMPLATE_TEST_CASE("Cuda GEMM matches the Cpu GEMM for every transpose, beta and stride", "[cuda]",
                   float, double) {
  NLA_SKIP_WITHOUT_DEVICE();
  using T = TestType;
  Cpu cpu;
  Cuda gpu;
  const index_t m = 7, n = 5, k = 9, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (double beta : {0.0, 1.0, 0.5}) {
        CAPTURE(ta, tb, beta);
        const index_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
        auto a = random_mirror<T>(gpu, (ta ? k : m) * lda, 1);
        auto b = random_mirror<T>(gpu, (tb ? n : k) * ldb, 2);
        auto c = random_mirror<T>(gpu, m * ldc, 3);
        on_both(cpu, gpu, [&](auto& be) {
          gemm(be, ta, tb, m, n, k, T(1.5), a.on(be), lda, b.on(be), ldb, T(beta), c.on(be), ldc);
        });
        CHECK(c.error(gpu) < tolerance<T>());
      }
}

TEMPLATE_TEST_CASE("Cuda GEMM with a bias epilogue matches the Cpu GEMM plus bias", "[cuda]", float,
                   double) {
  NLA_SKIP_WITHOUT_DEVICE();
  using T = TestType;
  Cpu cpu;
  Cuda gpu;
  // n = 16 lets cuBLASLt vectorise. Offsets 0 and 16 bytes are aligned
  // biases through one cached plan (its bias pointer set per call); offset 1
  // is misaligned and takes the unfused path.
  const index_t m = 7, n = 16, k = 9, pad = 3, aligned = index_t(16 / sizeof(T));
  auto bias = random_mirror<T>(gpu, n + aligned, 4);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (index_t offset : {index_t(0), aligned, index_t(1)}) {
        CAPTURE(ta, tb, offset);
        const index_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad;
        auto a = random_mirror<T>(gpu, (ta ? k : m) * lda, 1);
        auto b = random_mirror<T>(gpu, (tb ? n : k) * ldb, 2);
        auto c = random_mirror<T>(gpu, m * n, 3);
        on_both(cpu, gpu, [&](auto& be) {
          gemm_bias(be, ta, tb, m, n, k, a.on(be), lda, b.on(be), ldb, bias.on(be) + offset,
                    c.on(be));
        });
        CHECK(c.error(gpu) < tolerance<T>());
      }
}

// GELU in the GEMM's epilogue (gemm_bias_gelu, then gemm_gelu_grad on the h
// it wrote) against the Cpu's GEMM, bias and GELU. On a GPU, n = 16 with an
// aligned bias or none and an aligned h takes cuBLASLt's GELU_AUX(_BIAS) and
// DGELU epilogues, which the call counts confirm (fp32 and bf16, sm_80+);
// n = 12 (the aux matrix's leading dimension must be a multiple of 8), a bias
// or h one element in, fp64 and a backend with epilogues off take the
// unfused kernels. The Cuda backend runs G, the Cpu accum_t<G>. fp32
// tolerance 1e-4: cuBLASLt's GELU evaluates tanh its own way.
namespace {
template <class G>
void check_gelu_epilogues(double tolerance) {
  using T = accum_t<G>;
  Cpu cpu;
  Cuda gpu;
  const index_t m = 7, k = 9, pad = 3, aligned = index_t(16 / sizeof(G)), no_bias = -1;
  auto bias = random_mirror<T, G>(gpu, 16 + aligned, 4);
  for (bool fused : {true, false})
    for (index_t n : {index_t(16), index_t(12)})
      for (bool ta : {false, true})
        for (bool tb : {false, true})
          for (index_t offset : {index_t(0), aligned, index_t(1), no_bias})
            for (index_t h_shift : {index_t(0), index_t(1)}) {
              CAPTURE(fused, n, ta, tb, offset, h_shift);
              gpu.set_gemm_epilogues(fused);
              const index_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad;
              auto a = random_mirror<T, G>(gpu, (ta ? k : m) * lda, 1);
              auto b = random_mirror<T, G>(gpu, (tb ? n : k) * ldb, 2);
              auto h = random_mirror<T, G>(gpu, m * n + h_shift, 3);
              auto c = random_mirror<T, G>(gpu, m * n, 5);
              auto dh = random_mirror<T, G>(gpu, m * n, 6);  // a and b reused as dy and W
#if NLA_CUDA_DEVICE_SYSTEM
              const std::int64_t gelu_before = gpu.blas().calls(CUBLASLT_EPILOGUE_GELU_AUX) +
                                               gpu.blas().calls(CUBLASLT_EPILOGUE_GELU_AUX_BIAS),
                                 grad_before = gpu.blas().calls(CUBLASLT_EPILOGUE_DGELU);
#endif
              on_both(cpu, gpu, [&](auto& be) {
                const auto* bias_ptr = offset == no_bias ? nullptr : bias.on(be) + offset;
                gemm_bias_gelu(be, ta, tb, m, n, k, a.on(be), lda, b.on(be), ldb, bias_ptr,
                               h.on(be) + h_shift, c.on(be));
                gemm_gelu_grad(be, ta, tb, m, n, k, a.on(be), lda, b.on(be), ldb,
                               h.on(be) + h_shift, dh.on(be));
              });
              CHECK(h.error(gpu) < tolerance);
              CHECK(c.error(gpu) < tolerance);
              CHECK(dh.error(gpu) < tolerance);
#if NLA_CUDA_DEVICE_SYSTEM
              const bool fusable = fused && n % 8 == 0 && offset != 1 && h_shift == 0 &&
                                   !std::is_same<G, double>::value &&
                                   gpu.device_info().compute_capability >= 80;
              const std::int64_t gelu_calls = gpu.blas().calls(CUBLASLT_EPILOGUE_GELU_AUX) +
                                              gpu.blas().calls(CUBLASLT_EPILOGUE_GELU_AUX_BIAS) -
                                              gelu_before,
                                 grad_calls =
                                     gpu.blas().calls(CUBLASLT_EPILOGUE_DGELU) - grad_before;
              CHECK(gelu_calls == (fusable ? 1 : 0));
              CHECK(grad_calls == (fusable ? 1 : 0));
#endif
            }
}
}  // namespace

TEMPLATE_TEST_CASE("Cuda GEMMs with GELU epilogues match the Cpu GEMM and GELU", "[cuda]", float,
                   double) {
  NLA_SKIP_WITHOUT_DEVICE();
  check_gelu_epilogues<TestType>(std::is_same<TestType, double>::value ? 1e-12 : 1e-4);
}

TEST_CASE("Cuda bf16 GEMMs with GELU epilogues match the Cpu fp32 GEMM and GELU", "[cuda][bf16]") {
  NLA_SKIP_WITHOUT_DEVICE();
  check_gelu_epilogues<bf16>(2e-2);
}

TEST_CASE("a copied Cuda backend keeps the original's settings", "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  Cuda gpu;
  gpu.set_gemm_precision(gpu::GemmPrecision::Tf32);
  gpu.set_attention_kernels(gpu::AttentionKernels::CudaCores);
  gpu.set_gemm_epilogues(false);
  const Cuda copied(gpu);
  Cuda assigned;
  assigned = gpu;
  for (const Cuda* b : {&copied, static_cast<const Cuda*>(&assigned)}) {
    CHECK(b->gemm_precision() == gpu::GemmPrecision::Tf32);
    CHECK(b->attention_kernels() == gpu::AttentionKernels::CudaCores);
    CHECK_FALSE(b->gemm_epilogues());
  }
  CHECK(Cuda().gemm_epilogues());
}

TEMPLATE_TEST_CASE("Cuda element-wise kernels match the Cpu ones", "[cuda]", float, double) {
  NLA_SKIP_WITHOUT_DEVICE();
  using T = TestType;
  Cpu cpu;
  Cuda gpu;
  const index_t rows = 6, cols = 10, n = rows * cols;
  auto x = random_mirror<T>(gpu, n, 1, 2.0);
  auto dy = random_mirror<T>(gpu, n, 2);
  auto y = random_mirror<T>(gpu, n, 3);
  auto bias = random_mirror<T>(gpu, cols, 4);
  auto check = [&](const char* name, auto& out, auto run) {
    on_both(cpu, gpu, run);
    INFO(name);
    CHECK(out.error(gpu) < tolerance<T>());
  };
  check("fill", y, [&](auto& be) { fill(be, y.on(be), n / 2, T(0.25)); });
  check("copy", y, [&](auto& be) { copy(be, y.on(be), x.on(be), n - 3); });
  check("copy_rows", y,
        [&](auto& be) { copy_rows(be, y.on(be) + 1, cols, x.on(be) + 2, cols, rows - 1, 7); });
  check("axpy", y, [&](auto& be) { axpy(be, y.on(be), x.on(be), n, T(-0.75)); });
  check("scale", y, [&](auto& be) { scale(be, y.on(be), n, T(1.25)); });
  check("gelu_forward", y, [&](auto& be) { gelu_forward(be, y.on(be), x.on(be), n); });
  check("gelu_backward", y, [&](auto& be) { gelu_backward(be, y.on(be), dy.on(be), x.on(be), n); });
  check("silu_forward", y, [&](auto& be) { silu_forward(be, y.on(be), x.on(be), n); });
  check("silu_backward", y, [&](auto& be) { silu_backward(be, y.on(be), dy.on(be), x.on(be), n); });
  // x read as [rows, 2 * (cols / 2)] gate|up, y as [rows, cols / 2].
  check("swiglu_forward", y,
        [&](auto& be) { swiglu_forward(be, y.on(be), x.on(be), rows, cols / 2); });
  check("swiglu_backward", y,
        [&](auto& be) { swiglu_backward(be, y.on(be), dy.on(be), x.on(be), rows, cols / 2); });
  check("sum_rows_accumulate", bias,
        [&](auto& be) { sum_rows_accumulate(be, bias.on(be), x.on(be), rows, cols); });
  check("add_bias", y, [&](auto& be) { add_bias(be, y.on(be), bias.on(be), rows, cols); });
  // The first cols - 2 columns of rows - 1 rows, cols apart; every third kept.
  std::vector<std::uint8_t> keep_values(static_cast<std::size_t>(cols));
  for (index_t c = 0; c < cols; ++c) keep_values[std::size_t(c)] = c % 3 == 0;
  Mirror<std::uint8_t> keep(gpu, keep_values);
  check("mask_columns", y, [&](auto& be) {
    mask_columns(be, y.on(be), rows - 1, cols, cols - 2,
                 static_cast<const std::uint8_t*>(keep.on(be)), T(-7));
  });
}

// Bias and norm gradients are column sums in two passes (chunks of rows, then
// the chunks' partial sums); every chunking must give the sums, including a
// last chunk cut short, one chunk for every row and one row per chunk.
TEMPLATE_TEST_CASE("Cuda column sums match sums in fp64 for every chunking", "[cuda]", float,
                   double) {
  NLA_SKIP_WITHOUT_DEVICE();
  using T = TestType;
  Cuda gpu;
  const std::vector<std::pair<index_t, index_t>> shapes = {{1, 1},   {7, 3},    {64, 5},
                                                           {65, 33}, {300, 40}, {1000, 3}};
  for (const auto& [rows, cols] : shapes) {
    const std::vector<T> values = normal<T>(rows * cols, std::uint64_t(rows * 31 + cols), 2.0);
    Tensor<T, Cuda> x(Shape{rows * cols}), sums(Shape{cols}), pair_sums(Shape{2 * cols});
    from_host(gpu, x.view(), values.data());
    std::vector<double> expected(static_cast<std::size_t>(cols)),
        expected_squares(static_cast<std::size_t>(cols)), scale(static_cast<std::size_t>(cols));
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) {
        const double v = values[std::size_t(r * cols + c)];
        expected[std::size_t(c)] += v;
        expected_squares[std::size_t(c)] += v * v;
        scale[std::size_t(c)] += std::abs(v);
      }
    for (index_t chunk_rows : {index_t(1), index_t(7), index_t(8), index_t(64), rows + 5,
                               gpu::default_column_chunk_rows(rows, cols)}) {
      INFO("rows " << rows << ", cols " << cols << ", chunks of " << chunk_rows << " rows");
      device_column_sums(gpu, sums.data(), pair_sums.data(), x.data(), rows, cols, chunk_rows);
      const auto got = to_host(gpu, sums.view());
      const auto got_pairs = to_host(gpu, pair_sums.view());
      for (index_t c = 0; c < cols; ++c) {
        const double s = scale[std::size_t(c)];
        CHECK(std::abs(double(got[c]) - expected[std::size_t(c)]) <= tolerance<T>() * (1 + s));
        CHECK(std::abs(double(got_pairs[2 * c]) - expected[std::size_t(c)]) <=
              tolerance<T>() * (1 + s));
        CHECK(std::abs(double(got_pairs[2 * c + 1]) - expected_squares[std::size_t(c)]) <=
              tolerance<T>() * (1 + expected_squares[std::size_t(c)]));
      }
    }
  }
  // The default chunk: 64 rows where that leaves a GPU enough (chunk, column)
  // sums to run at once, fewer (down to 8) where it would not.
  CHECK(gpu::default_column_chunk_rows(16 * 1024, 768) == 64);
  CHECK(gpu::default_column_chunk_rows(64 * 128, 256) == 16);
  CHECK(gpu::default_column_chunk_rows(64, 768) == 8);
  CHECK_THROWS_WITH(device_column_sums(gpu, static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                       static_cast<const T*>(nullptr), 4, 3, 0),
                    Catch::Contains("chunk_rows is 0"));
}

TEMPLATE_TEST_CASE("Cuda norm, embedding, RoPE and cross-entropy kernels match the Cpu ones",
                   "[cuda]", float, double) {
  NLA_SKIP_WITHOUT_DEVICE();
  using T = TestType;
  using A = accum_t<T>;
  Cpu cpu;
  Cuda gpu;
  const index_t rows = 5, d = 12;
  auto x = random_mirror<T>(gpu, rows * d, 1, 3.0);
  auto w = random_mirror<T>(gpu, d, 2);
  auto b = random_mirror<T>(gpu, d, 3);
  auto dy = random_mirror<T>(gpu, rows * d, 4);
  auto y = random_mirror<T>(gpu, rows * d, 5);
  auto dx = random_mirror<T>(gpu, rows * d, 6);
  auto dw = random_mirror<T>(gpu, d, 7);
  auto db = random_mirror<T>(gpu, d, 8);
  auto mean = random_mirror<A>(gpu, rows, 9);
  auto rstd = random_mirror<A>(gpu, rows, 10);
  SECTION("layernorm") {
    on_both(cpu, gpu, [&](auto& be) {
      layernorm_forward(be, y.on(be), mean.on(be), rstd.on(be), x.on(be), w.on(be), b.on(be), rows,
                        d, 1e-5);
      layernorm_backward(be, dx.on(be), dw.on(be), db.on(be), dy.on(be), x.on(be), w.on(be),
                         mean.on(be), rstd.on(be), rows, d);
    });
    for (double e : {y.error(gpu), mean.error(gpu), rstd.error(gpu), dx.error(gpu), dw.error(gpu),
                     db.error(gpu)})
      CHECK(e < tolerance<T>());
  }
  SECTION("rmsnorm") {
    on_both(cpu, gpu, [&](auto& be) {
      rmsnorm_forward(be, y.on(be), rstd.on(be), x.on(be), w.on(be), rows, d, 1e-6);
      rmsnorm_backward(be, dx.on(be), dw.on(be), dy.on(be), x.on(be), w.on(be), rstd.on(be), rows,
                       d);
    });
    for (double e : {y.error(gpu), rstd.error(gpu), dx.error(gpu), dw.error(gpu)})
      CHECK(e < tolerance<T>());
  }
  SECTION("embedding, with repeated ids") {
    Mirror<std::int32_t> ids(gpu, {3, 0, 3, 4, 1});
    auto table = random_mirror<T>(gpu, 6 * d, 11);
    auto dtable = random_mirror<T>(gpu, 6 * d, 12);
    on_both(cpu, gpu, [&](auto& be) {
      embedding_forward(be, y.on(be), ids.on(be), table.on(be), rows, d, false);
      embedding_forward(be, dx.on(be), ids.on(be), table.on(be), rows, d, true);
      embedding_backward(be, dtable.on(be), ids.on(be), dy.on(be), rows, d);
    });
    CHECK(y.error(gpu) < tolerance<T>());
    CHECK(dx.error(gpu) < tolerance<T>());
    CHECK(dtable.error(gpu) < tolerance<T>());
  }
  SECTION("rope, forward and inverse, on two heads of rows with a stride") {
    const index_t head_dim = 4, half = 2, positions = 8;
    Mirror<std::int32_t> pos(gpu, {0, 5, 2, 7, 1});
    std::vector<A> table(positions * half * 2);
    for (index_t p = 0; p < positions; ++p)
      for (index_t j = 0; j < half; ++j) {
        const double angle = p * std::pow(10000.0, -2.0 * j / head_dim);
        table[(p * half + j) * 2] = A(std::cos(angle));
        table[(p * half + j) * 2 + 1] = A(std::sin(angle));
      }
    Mirror<A> cos_sin(gpu, table);
    on_both(cpu, gpu, [&](auto& be) {
      rope_rotate(be, x.on(be), rows, d, 2, head_dim, pos.on(be), cos_sin.on(be), false);
      rope_rotate(be, dx.on(be), rows, d, 2, head_dim, pos.on(be), cos_sin.on(be), true);
    });
    CHECK(x.error(gpu) < tolerance<T>());
    CHECK(dx.error(gpu) < tolerance<T>());
  }
  SECTION("cross-entropy, with an ignored row and a zero weight, over whole and padded rows") {
    // vocab < d: the rows of x are padded, and the padding must stay as it was.
    for (const index_t vocab : {d, d - 3}) {
      INFO("vocabulary " << vocab << " in rows of " << d);
      Mirror<std::int32_t> targets(gpu, {2, -100, std::int32_t(vocab - 1), 0, 7});
      Mirror<A> dloss(gpu, {A(0.2), A(0.2), A(0), A(0.3), A(0.3)});
      auto loss = random_mirror<A>(gpu, rows, 13);
      auto logits = random_mirror<T>(gpu, rows * d, 14, 3.0);
      on_both(cpu, gpu, [&](auto& be) {
        cross_entropy_forward(be, loss.on(be), mean.on(be), logits.on(be), d, targets.on(be), rows,
                              vocab, -100);
        cross_entropy_backward(be, logits.on(be), d, dloss.on(be), mean.on(be), targets.on(be),
                               rows, vocab, -100);
      });
      CHECK(loss.error(gpu) < tolerance<T>());
      CHECK(mean.error(gpu) < tolerance<T>());
      CHECK(logits.error(gpu) < tolerance<T>());
      const auto before = normal<T>(rows * d, 14, 3.0);
      const auto after = to_host(gpu, logits.gpu.view());
      for (index_t r = 0; r < rows; ++r)
        for (index_t i = vocab; i < d; ++i) CHECK(after[r * d + i] == before[r * d + i]);
    }
  }
  SECTION("row-loss sums and gradients, with weights, ignored rows and bad targets") {
    // 3,000 rows: enough that the device reduction combines partial sums
    // across blocks. Every 7th row is ignored; rows 1,700 and 2,900 get
    // targets outside [0, d), which the forward must not read (NaN losses)
    // and the sums must name (the first, 1,700). The weights are zero on the
    // bad rows, so the weighted total must leave their NaN out.
    const index_t n = 3000;
    std::vector<std::int32_t> target_values(n);
    std::vector<float> weight_values(n);
    for (index_t r = 0; r < n; ++r) {
      target_values[r] = r % 7 == 0 ? -100 : std::int32_t(random_bits(19, 0, std::uint64_t(r)) % d);
      weight_values[r] = float(random_normal(19, 1, std::uint64_t(r)));
    }
    target_values[1700] = std::int32_t(d);
    target_values[2900] = -2;
    weight_values[1700] = weight_values[2900] = 0.0f;
    Mirror<std::int32_t> targets(gpu, target_values);
    Mirror<float> weights(gpu, weight_values);
    auto logits = random_mirror<T>(gpu, n * d, 15, 2.0);
    auto loss = random_mirror<A>(gpu, n, 16);
    auto lse = random_mirror<A>(gpu, n, 17);
    auto grad = random_mirror<A>(gpu, n, 18);
    // The forward, the sums and the gradient (for weight sum `weight_sum`)
    // on both backends; sums[0] is the Cpu's, sums[1] the Cuda's.
    const auto run = [&](Mirror<std::int32_t>& t, bool weighted, double weight_sum,
                         RowLossSums(&sums)[2]) {
      on_both(cpu, gpu, [&](auto& be) {
        cross_entropy_forward(be, loss.on(be), lse.on(be), logits.on(be), d, t.on(be), n, d, -100);
        const float* w = weighted ? weights.on(be) : nullptr;
        sums[std::is_same<std::decay_t<decltype(be)>, Cuda>::value] =
            sum_row_losses(be, static_cast<const A*>(loss.on(be)), t.on(be), w, n, d, -100);
        row_loss_gradient(be, grad.on(be), t.on(be), w, n, -100, weight_sum);
      });
    };
    for (const bool weighted : {false, true}) {
      INFO("weighted " << weighted);
      RowLossSums sums[2];
      run(targets, weighted, 2.5, sums);
      CHECK(sums[0].first_bad == 1700);
      CHECK(sums[1].first_bad == 1700);
      CHECK(std::abs(sums[1].weight - sums[0].weight) <= 1e-9 * (1 + std::abs(sums[0].weight)));
      // Unweighted, the bad rows count and their NaN reaches the total;
      // weighted, they weigh 0 and the totals are finite and agree.
      CHECK(std::isnan(sums[0].total) == !weighted);
      CHECK(std::isnan(sums[1].total) == !weighted);
      if (weighted)
        CHECK(std::abs(sums[1].total - sums[0].total) <=
              tolerance<T>() * (1 + std::abs(sums[0].total)));
      CHECK(lse.error(gpu) < tolerance<T>());
      CHECK(grad.error(gpu) < tolerance<T>());
      const auto g = to_host(gpu, loss.gpu.view());
      CHECK(std::isnan(double(g[1700])));
      CHECK(std::isnan(double(g[2900])));
      CHECK(double(g[7]) == 0.0);
    }
    // Without bad rows, weighted or not, the totals agree; a zero weight sum
    // gives zero gradients.
    target_values[1700] = target_values[2900] = 1;
    Mirror<std::int32_t> good(gpu, target_values);
    for (const bool weighted : {false, true}) {
      INFO("weighted " << weighted << ", no bad rows");
      RowLossSums sums[2];
      run(good, weighted, 0.0, sums);
      CHECK(sums[0].first_bad == kNoBadRow);
      CHECK(sums[1].first_bad == kNoBadRow);
      CHECK(std::abs(sums[1].total - sums[0].total) <=
            tolerance<T>() * (1 + std::abs(sums[0].total)));
      CHECK(loss.error(gpu) < tolerance<T>());
      const auto g = to_host(gpu, grad.gpu.view());
      CHECK(std::all_of(g.data(), g.data() + n, [](A x) { return x == A(0); }));
    }
  }
}

// Attention forward and backward over cases that reach every path: on a GPU
// head sizes 16, 32 and 64 take the flash or tensor-core kernels (query
// counts across several 64-row blocks and key tiles, with cached keys,
// grouped and multi-query heads, one-token decoding, rows that start
// unaligned) and 4 the portable loops. The Cuda backend runs G (fp32, fp64, bf16), the Cpu
// reference accum_t<G> from the same values.
namespace {
template <class G>
void check_attention(Cuda& gpu, double tolerance) {
  using T = accum_t<G>;
  Cpu cpu;
  struct Case {
    index_t batch, tq, tk, heads, kv_heads, hd;
    index_t shift = 0;  // q, k, v and their gradients start this many elements in
  };
  const Case cases[] = {{2, 3, 5, 4, 2, 4},
                        {2, 70, 100, 4, 2, 16, 1},
                        {1, 130, 130, 2, 1, 64},
                        {3, 1, 37, 4, 4, 32},
                        {2, 129, 200, 4, 2, 64}};
  for (const Case& c : cases) {
    const index_t batch = c.batch, tq = c.tq, tk = c.tk, heads = c.heads, kv_heads = c.kv_heads,
                  hd = c.hd, shift = c.shift;
    INFO("batch " << batch << ", " << tq << " queries over " << tk << " keys, " << heads
                  << " heads over " << kv_heads << ", head_dim " << hd << ", shift " << shift);
    const index_t qkv = (heads + 2 * kv_heads) * hd;  // fused row: q | k | v
    auto q = random_mirror<T, G>(gpu, batch * tq * qkv + shift, 1);
    auto kv = random_mirror<T, G>(gpu, batch * tk * 2 * kv_heads * hd + shift, 2);
    auto out = random_mirror<T, G>(gpu, batch * tq * heads * hd, 3);
    auto lse = random_mirror<T>(gpu, batch * heads * tq, 4);
    auto dout = random_mirror<T, G>(gpu, batch * tq * heads * hd, 5);
    auto dq = random_mirror<T, G>(gpu, batch * tq * qkv + shift, 6);
    auto dkv = random_mirror<T, G>(gpu, batch * tk * 2 * kv_heads * hd + shift, 7);
    const index_t kv_row = 2 * kv_heads * hd;
    on_both(cpu, gpu, [&](auto& be) {
      using E = std::remove_pointer_t<decltype(q.on(be))>;
      using P = HeadLayout<const E>;
      const P ql{q.on(be) + shift, tq * qkv, qkv}, kl{kv.on(be) + shift, tk * kv_row, kv_row},
          vl{kv.on(be) + shift + kv_heads * hd, tk * kv_row, kv_row};
      attention_forward(be, out.on(be), lse.on(be), ql, kl, vl, batch, tq, tk, heads, kv_heads, hd);
      const HeadLayout<E> dql{dq.on(be) + shift, tq * qkv, qkv},
          dkl{dkv.on(be) + shift, tk * kv_row, kv_row},
          dvl{dkv.on(be) + shift + kv_heads * hd, tk * kv_row, kv_row};
      attention_backward(be, dql, dkl, dvl, static_cast<const E*>(dout.on(be)),
                         static_cast<const E*>(out.on(be)), lse.on(be), ql, kl, vl, batch, tq, tk,
                         heads, kv_heads, hd);
    });
    CHECK(out.error(gpu) < tolerance);
    CHECK(lse.error(gpu) < tolerance);
    CHECK(dq.error(gpu) < tolerance);
    CHECK(dkv.error(gpu) < tolerance);
  }
}
}  // namespace

TEMPLATE_TEST_CASE("Cuda attention matches the Cpu attention with grouped heads and a cache",
                   "[cuda]", float, double) {
  NLA_SKIP_WITHOUT_DEVICE();
  Cuda gpu;
  check_attention<TestType>(gpu, tolerance<TestType>());
}

// bf16 and TF32 attention (tensor cores on sm_80 or newer) against the fp32
// reference on the same values. Their products round P and dS to the operand
// type (8 or 11 significant bits) and bf16 outputs round once more: 2e-2 for
// bf16, 1e-2 for TF32 (as for TF32 GEMMs). The CUDA-core kernels on bf16
// round only the outputs. A wrong tile, mask or scale gives errors of order 1.
TEST_CASE("Cuda bf16 and TF32 attention match the Cpu fp32 attention", "[cuda][bf16]") {
  NLA_SKIP_WITHOUT_DEVICE();
  Cuda gpu;
  SECTION("bf16, tensor cores where the device has them") {
    check_attention<bf16>(gpu, 2e-2);
  }
  SECTION("bf16, CUDA cores") {
    gpu.set_attention_kernels(gpu::AttentionKernels::CudaCores);
    check_attention<bf16>(gpu, 1e-2);
  }
  SECTION("fp32 under TF32, tensor cores where the device has them") {
    gpu.set_gemm_precision(gpu::GemmPrecision::Tf32);
    check_attention<float>(gpu, 1e-2);
  }
}

TEMPLATE_TEST_CASE("Cuda AdamW and sum of squares match the Cpu ones", "[cuda]", float, double) {
  NLA_SKIP_WITHOUT_DEVICE();
  using T = TestType;
  using S = accum_t<T>;
  Cpu cpu;
  Cuda gpu;
  const index_t n = 1000;
  auto p = random_mirror<T>(gpu, n, 1);
  auto g = random_mirror<T>(gpu, n, 2);
  auto m = random_mirror<S>(gpu, n, 3, 0.1);
  auto v = Mirror<S>(gpu, std::vector<S>(n, S(0.5)));
  // Decayed on [100, 400) and [700, n), as a buffer of tensors would be.
  Mirror<index_t> decay_switches(gpu, {100, 400, 700});
  on_both(cpu, gpu, [&](auto& be) {
    adamw_update(be, p.on(be), static_cast<S*>(nullptr), g.on(be), m.on(be), v.on(be), n,
                 decay_switches.on(be), 3, 1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9 * 0.9,
                 1 - 0.95 * 0.95);
  });
  CHECK(p.error(gpu) < tolerance<T>());
  CHECK(m.error(gpu) < tolerance<T>());
  CHECK(v.error(gpu) < tolerance<T>());
  // Both sums over the same values (the device's parameters, which differ
  // from the Cpu's by rounding): the reductions run in double on both sides,
  // in different orders, so only double rounding separates them.
  const auto device_p = to_host(gpu, p.gpu.view());
  const double cpu_sum = sum_of_squares(cpu, device_p.data(), n);
  const double gpu_sum = sum_of_squares(gpu, p.on(gpu), n);
  CHECK(std::abs(gpu_sum - cpu_sum) <= 1e-12 * cpu_sum);
}

namespace {

// The same model on both backends: parameters are drawn on the host from the
// counter-based RNG, so equal seeds give equal weights.
template <class T>
struct ModelPair {
  TransformerLM<Cpu, T> cpu;
  TransformerLM<Cuda, T> gpu;
  explicit ModelPair(const TransformerConfig& c, std::uint64_t seed) : cpu(c, seed), gpu(c, seed) {}
};

template <class T, class U>
double max_error(Cuda& backend, TensorView<const T, Cpu> ref, TensorView<const U, Cuda> x) {
  REQUIRE(ref.size() == x.size());
  const auto h = to_host(backend, x);
  double diff = 0, scale = 0;
  for (index_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(double(h[i]))) return INFINITY;
    diff = std::max(diff, std::abs(double(h[i]) - double(ref.data()[i])));
    scale = std::max(scale, std::abs(double(ref.data()[i])));
  }
  return diff / (1 + scale);
}

std::vector<std::int32_t> random_tokens(index_t n, index_t vocab, std::uint64_t seed) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i)
    ids[i] = std::int32_t(random_uniform(seed, 3, std::uint64_t(i)) * double(vocab)) % vocab;
  return ids;
}

// Next-token batch [batch, t] of random ids, on both backends.
struct TokenBatch {
  Tensor<std::int32_t, Cpu> tokens_c, targets_c;
  Tensor<std::int32_t, Cuda> tokens_g, targets_g;
  TokenBatch(Cuda& gpu, index_t batch, index_t t, index_t vocab, std::uint64_t seed)
      : tokens_c(Shape{batch, t}),
        targets_c(Shape{batch * t}),
        tokens_g(Shape{batch, t}),
        targets_g(Shape{batch * t}) {
    const index_t n = batch * t;
    const auto ids = random_tokens(n + 1, vocab, seed);
    std::copy_n(ids.begin(), n, tokens_c.data());
    std::copy_n(ids.begin() + 1, n, targets_c.data());
    from_host(gpu, tokens_g.view(), tokens_c.data());
    from_host(gpu, targets_g.view(), targets_c.data());
  }
};

TransformerConfig flavour_config(Flavour f) {
  return f == Flavour::Gpt2 ? TransformerConfig::gpt2(48, 16, 32, 2, 4)
                            : TransformerConfig::llama(48, 16, 32, 2, 4, 2);
}

// A model in training on one batch, one method per phase of a step (forward,
// loss and backward, clip at norm 1, AdamW), so a lockstep test can compare
// two backends between phases and every test runs the same step.
template <class B, class T>
struct Trainee {
  TransformerLM<B, T>& model;
  ConstView<std::int32_t, B> tokens, targets;
  LmActivations<T, B> acts;
  AdamW<B, T> optimizer;
  double loss = 0, grad_norm = 0;

  Trainee(TransformerLM<B, T>& m, const Tensor<std::int32_t, B>& tokens_,
          const Tensor<std::int32_t, B>& targets_)
      : model(m),
        tokens(tokens_.view()),
        targets(targets_.view()),
        optimizer(m.parameters(), AdamWOptions{}) {}

  TensorView<T, B> forward() { return model.forward(tokens, acts); }
  void backward() {
    loss = model.loss(acts, targets);
    model.zero_grad();
    model.backward(acts);
  }
  void clip() { grad_norm = clip_grad_norm(model.backend(), model.parameters(), 1.0); }
  void update() { optimizer.step(model.backend(), model.parameters(), 3e-3); }
  void step() {
    forward();
    backward();
    clip();
    update();
  }
};

}  // namespace

TEST_CASE("Cuda TransformerLM matches the Cpu model: forward, backward, AdamW, 50 steps",
          "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    CAPTURE(int(f));
    ModelPair<float> m(flavour_config(f), 5);
    Cuda& gpu = m.gpu.backend();
    const TokenBatch data(gpu, 3, 12, 48, 9);
    Trainee<Cpu, float> c(m.cpu, data.tokens_c, data.targets_c);
    Trainee<Cuda, float> g(m.gpu, data.tokens_g, data.targets_g);
    auto& params_c = m.cpu.parameters();
    auto& params_g = m.gpu.parameters();

    // The first step compared after every phase.
    CHECK(max_error<float, float>(gpu, c.forward(), g.forward()) < 1e-4);
    c.backward();
    g.backward();
    CHECK(std::abs(c.loss - g.loss) < 1e-5 * (1 + std::abs(c.loss)));
    CHECK(max_error<float, float>(gpu, params_c.grads(), params_g.grads()) < 1e-4);
    c.clip();
    g.clip();
    CHECK(std::abs(c.grad_norm - g.grad_norm) < 1e-4 * c.grad_norm);
    c.update();
    g.update();
    CHECK(max_error<float, float>(gpu, params_c.values(), params_g.values()) < 1e-4);
    // The other 49 steps with the logits' rows padded as LmTrainer pads them
    // (48 -> 64 entries): padded GEMM outputs and cross-entropy rows on both.
    c.acts.logits_padding = g.acts.logits_padding = kAlignedLogitsPadding;
    for (int s = 1; s < 50; ++s) {
      c.step();
      g.step();
    }
    INFO("loss at step 50: cpu " << c.loss << ", cuda " << g.loss);
    CHECK(c.loss < 3.0);  // it trained (log 48 = 3.87 at the start)
    CHECK(std::abs(c.loss - g.loss) < 1e-3);
  }
}

TEST_CASE("AdamW on bf16 parameters accumulates updates below bf16 resolution in fp32 masters",
          "[cuda][bf16]") {
  NLA_SKIP_WITHOUT_DEVICE();
  Cuda gpu;
  ParameterSet<bf16, Cuda> params;
  params.add("w", Shape{4}, false);
  params.allocate();
  fill(gpu, params.values(), bf16(1.0f));
  fill(gpu, params.grads(), bf16(1.0f));
  AdamWOptions o;
  o.weight_decay = 0;
  AdamW<Cuda, bf16> opt(params, o);
  // Adam's first steps move by about lr = 1e-3 each, a quarter of bf16's
  // spacing at 1 (2^-7): rounded every step, the weights would stay at 1.
  for (int s = 0; s < 10; ++s) opt.step(gpu, params, 1e-3);
  const auto w = to_host(gpu, ConstView<bf16, Cuda>(params.values()));
  for (index_t i = 0; i < 4; ++i) CHECK(std::abs(float(w[i]) - 0.99f) <= 0.004f);
}

TEST_CASE("TransformerLM<Cuda, bf16> tracks the fp32 Cpu model and trains as well",
          "[cuda][bf16]") {
  NLA_SKIP_WITHOUT_DEVICE();
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    CAPTURE(int(f));
    TransformerLM<Cpu, float> ref(flavour_config(f), 5);
    TransformerLM<Cuda, bf16> lm(flavour_config(f), 5);
    Cuda& gpu = lm.backend();
    const TokenBatch data(gpu, 3, 12, 48, 9);
    Trainee<Cpu, float> c(ref, data.tokens_c, data.targets_c);
    Trainee<Cuda, bf16> g(lm, data.tokens_g, data.targets_g);
    // bf16 keeps 8 significant bits: logits agree to about 1% of their scale.
    CHECK(max_error<float, bf16>(gpu, c.forward(), g.forward()) < 3e-2);
    c.backward();
    g.backward();
    CHECK(std::abs(c.loss - g.loss) < 2e-2);
    c.acts.logits_padding = g.acts.logits_padding = kAlignedLogitsPadding;  // as above
    for (int s = 0; s < 49; ++s) {
      c.clip();
      g.clip();
      c.update();
      g.update();
      c.forward();
      g.forward();
      c.backward();
      g.backward();
    }
    const double loss_c = c.loss, loss_g = g.loss;
    INFO("loss at step 50: fp32 cpu " << loss_c << ", bf16 cuda " << loss_g);
    CHECK(loss_g < 3.0);
    CHECK(std::abs(loss_c - loss_g) < 0.1);
  }
}

TEST_CASE("checkpoints move a model and its optimiser between Cuda and Cpu bit for bit",
          "[cuda][io]") {
  NLA_SKIP_WITHOUT_DEVICE();
  nla::testing::TempDir tmp("cuda_checkpoint");
  ModelPair<float> m(flavour_config(Flavour::Llama), 3);
  Cuda& gpu = m.gpu.backend();
  const TokenBatch data(gpu, 2, 8, 48, 4);
  Trainee<Cuda, float> g(m.gpu, data.tokens_g, data.targets_g);
  for (int s = 0; s < 3; ++s) g.step();  // moments and values away from the init
  TrainingState state;
  state.step = 3;
  save_checkpoint(tmp.file("gpu.ckpt"), m.gpu, g.optimizer, state);

  // Device -> file -> host: every array bit for bit.
  TransformerLM<Cpu, float> host(flavour_config(Flavour::Llama), 99);
  AdamW<Cpu, float> host_opt;
  CHECK(load_checkpoint(tmp.file("gpu.ckpt"), host, host_opt).step == 3);
  CHECK(max_error<float, float>(gpu, host.parameters().values(), m.gpu.parameters().values()) == 0);
  CHECK(max_error<float, float>(gpu, host_opt.first_moment().view(),
                                g.optimizer.first_moment().view()) == 0);
  CHECK(max_error<float, float>(gpu, host_opt.second_moment().view(),
                                g.optimizer.second_moment().view()) == 0);
  CHECK(host_opt.step_count() == g.optimizer.step_count());

  // Host -> file -> device, into a model and optimiser of other values.
  save_checkpoint(tmp.file("cpu.ckpt"), host, host_opt, state);
  TransformerLM<Cuda, float> back(flavour_config(Flavour::Llama), 98);
  AdamW<Cuda, float> back_opt;
  load_checkpoint(tmp.file("cpu.ckpt"), back, back_opt);
  CHECK(max_error<float, float>(gpu, host.parameters().values(), back.parameters().values()) == 0);
  CHECK(max_error<float, float>(gpu, host_opt.second_moment().view(),
                                back_opt.second_moment().view()) == 0);
  // A corrupt file leaves the device model as it was.
  {
    std::FILE* f = std::fopen(tmp.file("cpu.ckpt").c_str(), "r+b");
    REQUIRE(f);
    std::fseek(f, 200, SEEK_SET);
    const int byte = std::fgetc(f);
    std::fseek(f, 200, SEEK_SET);
    std::fputc(byte ^ 0x10, f);
    std::fclose(f);
  }
  REQUIRE_THROWS_WITH(load_checkpoint(tmp.file("cpu.ckpt"), back, back_opt),
                      Catch::Contains("checksum mismatch"));
  CHECK(max_error<float, float>(gpu, host.parameters().values(), back.parameters().values()) == 0);
}

TEST_CASE("a warm Cuda training step allocates no device memory", "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  TransformerLM<Cuda, float> lm(flavour_config(Flavour::Llama), 3);
  const TokenBatch data(lm.backend(), 2, 10, 48, 4);
  Trainee<Cuda, float> t(lm, data.tokens_g, data.targets_g);
  t.step();
  const gpu::DeviceMemoryStats warm = gpu::device_memory_stats();
  gpu::reset_peak_device_memory();
  for (int s = 0; s < 3; ++s) t.step();
  const gpu::DeviceMemoryStats after = gpu::device_memory_stats();
  CHECK(after.allocations == warm.allocations);
  CHECK(after.bytes_in_use == warm.bytes_in_use);
  CHECK(after.peak_bytes == warm.bytes_in_use);
  CHECK(warm.allocations > 0);  // the counter sees the model's allocations
}

TEST_CASE("device memory accounting follows every buffer, and the peak until reset", "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  const gpu::DeviceMemoryStats before = gpu::device_memory_stats();
  const gpu::PeakMemoryMeter meter;
  {
    gpu::DeviceBuffer<float> a(1000);
    {
      gpu::DeviceBuffer<double> b(500);
      CHECK(gpu::device_memory_stats().bytes_in_use == before.bytes_in_use + 4000 + 4000);
    }
    CHECK(gpu::device_memory_stats().bytes_in_use == before.bytes_in_use + 4000);
    a.resize(3000);  // grows: the new block is taken before the old one is freed
    CHECK(gpu::device_memory_stats().bytes_in_use == before.bytes_in_use + 12000);
    CHECK(gpu::device_memory_stats().peak_bytes == before.bytes_in_use + 16000);
    CHECK(meter.bytes() == 16000);
    gpu::reset_peak_device_memory();
    CHECK(gpu::device_memory_stats().peak_bytes == before.bytes_in_use + 12000);
  }
  const gpu::DeviceMemoryStats after = gpu::device_memory_stats();
  CHECK(after.bytes_in_use == before.bytes_in_use);
  CHECK(after.allocations == before.allocations + 3);

  // A request the device cannot meet is a clear error, and nothing is counted.
  CHECK_THROWS_WITH(
      gpu::device_allocate(std::size_t(1) << 62),
      Catch::Contains("Cuda") && Catch::Contains("cannot allocate") && Catch::Contains("MiB"));
  CHECK(gpu::device_memory_stats().bytes_in_use == before.bytes_in_use);
}

TEST_CASE("the counter-based RNG draws the same numbers on the device as on the host", "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  Cuda gpu;
  const index_t n = 4096;
  Tensor<double, Cuda> normals(Shape{n}), uniforms(Shape{n});
  double* pn = normals.data();
  double* pu = uniforms.data();
  gpu::for_each_index(gpu, n, [=] NLA_HOST_DEVICE(index_t i) {
    pn[i] = random_normal(17, 5, std::uint64_t(i));
    pu[i] = random_uniform(17, 5, std::uint64_t(i));
  });
  const auto hn = to_host(gpu, ConstView<double, Cuda>(normals));
  const auto hu = to_host(gpu, ConstView<double, Cuda>(uniforms));
  // The Philox bits, hence the uniforms, are identical; the Box-Muller
  // normals go through log, sin and cos, which the device's math library
  // rounds within an ulp or two of glibc's.
  for (index_t i = 0; i < n; ++i) {
    REQUIRE(hu[i] == random_uniform(17, 5, std::uint64_t(i)));
    REQUIRE(std::abs(hn[i] - random_normal(17, 5, std::uint64_t(i))) <= 1e-13);
  }
}

TEST_CASE("Cuda KV-cache decoding and seeded sampling give the Cpu tokens", "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  for (Flavour f : {Flavour::Gpt2, Flavour::Llama}) {
    CAPTURE(int(f));
    ModelPair<float> m(flavour_config(f), 11);
    Generator<Cpu, float> gen_c(m.cpu);
    Generator<Cuda, float> gen_g(m.gpu);
    const std::vector<std::vector<std::int32_t>> prompts = {{1, 5, 9}, {2}, {7, 7, 7, 7}};
    // top_k 0: the device draws the tokens; top_k 5: the logits come to the
    // host for the sort.
    for (index_t top_k : {0, 5}) {
      CAPTURE(top_k);
      SamplingOptions s;
      s.max_new_tokens = 8;
      s.temperature = 1.0;
      s.top_k = top_k;
      GenerateOptions g;
      g.seed = 42;
      const auto out_c = gen_c.generate(prompts, s, g);
      const auto out_g = gen_g.generate(prompts, s, g);
      REQUIRE(out_c.size() == out_g.size());
      for (std::size_t b = 0; b < out_c.size(); ++b) {
        CHECK(out_c[b].tokens == out_g[b].tokens);
        for (std::size_t i = 0; i < out_c[b].logprobs.size(); ++i)
          CHECK(std::abs(out_c[b].logprobs[i] - out_g[b].logprobs[i]) < 1e-4);
      }
    }
  }
}

TEST_CASE("Cuda token draws match the Cpu ones for every temperature and mask", "[cuda]") {
  NLA_SKIP_WITHOUT_DEVICE();
  Cpu cpu;
  Cuda gpu;
  const index_t rows = 40, vocab = 5003, count = 64;
  auto logits = random_mirror<float>(gpu, rows * vocab, 31, 3.0);
  std::vector<TokenDrawRequest> requests;
  for (index_t i = 0; i < count; ++i)
    requests.push_back({(7 * i) % rows, std::uint64_t(i % 5), std::uint64_t(i)});
  requests.back().row = rows;  // not in the logits: reported by both, drawn by neither
  Tensor<TokenDrawRequest, Cpu> requests_c(Shape{count});
  Tensor<TokenDrawRequest, Cuda> requests_g(Shape{count});
  std::copy(requests.begin(), requests.end(), requests_c.data());
  from_host(gpu, requests_g.view(), requests.data());
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(vocab), 0);
  for (index_t t = 1; t < vocab; t += 3) mask[t] = 1;
  Tensor<std::uint8_t, Cpu> mask_c(Shape{vocab});
  Tensor<std::uint8_t, Cuda> mask_g(Shape{vocab});
  std::copy(mask.begin(), mask.end(), mask_c.data());
  from_host(gpu, mask_g.view(), mask.data());
  for (double temperature : {0.0, 1.0, 0.7}) {
    for (bool masked : {false, true}) {
      CAPTURE(temperature, masked);
      Tensor<TokenDraw, Cpu> out_c(Shape{count});
      Tensor<TokenDraw, Cuda> out_g(Shape{count});
      draw_tokens<float>(
          cpu, out_c.view(), TensorView<const float, Cpu>(logits.cpu.data(), Shape{rows, vocab}),
          requests_c.view(), 17, temperature,
          masked ? ConstView<std::uint8_t, Cpu>(mask_c.view()) : ConstView<std::uint8_t, Cpu>{});
      draw_tokens<float>(
          gpu, out_g.view(), TensorView<const float, Cuda>(logits.gpu.data(), Shape{rows, vocab}),
          requests_g.view(), 17, temperature,
          masked ? ConstView<std::uint8_t, Cuda>(mask_g.view()) : ConstView<std::uint8_t, Cuda>{});
      const auto g = to_host(gpu, ConstView<TokenDraw, Cuda>(out_g.view()));
      for (index_t i = 0; i < count; ++i) {
        const TokenDraw& c = out_c.data()[i];
        CHECK(g[i].status == c.status);
        if (i == count - 1) {
          CHECK(c.status == TokenDrawStatus::RowOutOfRange);
          continue;
        }
        REQUIRE(c.token >= 0);
        CHECK(g[i].token == c.token);
        CHECK(std::abs(g[i].logprob - c.logprob) <= 1e-5);
        CHECK(std::abs(g[i].model_logprob - c.model_logprob) <= 1e-5);
        if (masked) CHECK(mask[c.token] == 1);
      }
    }
  }
}

TEST_CASE("the Cuda backend refuses to start without a GPU, with a clear error", "[cuda]") {
  std::string why;
  if (nla::gpu::device_available(&why)) {
    Cuda gpu;  // a usable device: construction succeeds
    SUCCEED("a GPU is present; the no-GPU error cannot be observed here");
    return;
  }
  REQUIRE_THROWS_AS(Cuda(), nla::Error);
  REQUIRE_THROWS_WITH(Cuda(), Catch::Contains("no usable GPU"));
  REQUIRE_THROWS_WITH((TransformerLM<Cuda, float>(flavour_config(Flavour::Gpt2), 1)),
                      Catch::Contains("no usable GPU"));
}

namespace {

// The Communicator of rank 0 of two whose peer holds the same values: every
// sum is twice this rank's. On device buffers (as NcclCommunicator), with a
// host twin for statistics, so DataParallel runs its two-rank code path on a
// Cuda model without a second process.
class MirroredPeer final : public Communicator {
 public:
  MirroredPeer(Cuda& backend, MemorySpace memory) : backend_(&backend), memory_(memory) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  MemorySpace memory() const override { return memory_; }
  std::string name() const override { return "mirrored-peer"; }
  void all_reduce_sum(void* data, index_t count, DataType type) override {
    if (memory_ == MemorySpace::Device) {
      REQUIRE(type == DataType::F32);
      scale(*backend_, static_cast<float*>(data), count, 2.0f);
      return;
    }
    for (index_t i = 0; i < count; ++i) {
      if (type == DataType::F64) static_cast<double*>(data)[i] *= 2;
      if (type == DataType::I64) static_cast<std::int64_t*>(data)[i] *= 2;
    }
  }
  void broadcast(void*, index_t, DataType, int) override {}
  void all_gather(const void*, void*, const std::vector<index_t>&, DataType) override {
    FAIL("not used");
  }
  void barrier() override {}
  Communicator& host() override { return memory_ == MemorySpace::Host ? *this : *host_twin_; }
  void set_host_twin(MirroredPeer& twin) { host_twin_ = &twin; }
  // The queues DataParallel named, one per call that communicates.
  void set_queue(void* queue) override { queues.push_back(queue); }
  std::vector<void*> queues;

 private:
  Cuda* backend_;
  MemorySpace memory_;
  MirroredPeer* host_twin_ = nullptr;
};

}  // namespace

TEST_CASE("a data-parallel Cuda LmTrainer over a device communicator trains as the Cpu one",
          "[cuda][dist]") {
  NLA_SKIP_WITHOUT_DEVICE();
  ModelPair<float> m(flavour_config(Flavour::Llama), 5);
  Cuda& gpu = m.gpu.backend();
  const TokenBatch data(gpu, 3, 12, 48, 9);
  MirroredPeer device(gpu, MemorySpace::Device), host(gpu, MemorySpace::Host);
  device.set_host_twin(host);
  LmTrainerOptions o;
  o.schedule = {3e-3, 3e-4, 1, 10};
  LmTrainer<Cpu, float> c(m.cpu, o);
  LmTrainer<Cuda, float> g(m.gpu, o);
  g.set_data_parallel(DataParallel(device, DataParallelOptions{100, false}));
  for (int s = 0; s < 5; ++s) {
    const auto rc = c.step(data.tokens_c.view(), data.targets_c.view());
    const auto rg = g.step(data.tokens_g.view(), data.targets_g.view());
    CHECK(std::abs(rc.loss - rg.loss) < 1e-5 * (1 + std::abs(rc.loss)));
    CHECK(std::abs(rc.grad_norm - rg.grad_norm) < 1e-4 * rc.grad_norm);
  }
  CHECK(max_error<float, float>(gpu, m.cpu.parameters().values(), m.gpu.parameters().values()) <
        1e-4);
  CHECK(g.data_parallel().communication().collectives > 5);  // buckets of 100
  // Every step's collectives were queued behind the model's own stream; a
  // second model (its own stream) sharing the communicator gets its own.
  REQUIRE(!device.queues.empty());
  for (void* q : device.queues) CHECK(q == native_queue(gpu));
  TransformerLM<Cuda, float> other(flavour_config(Flavour::Llama), 6);
  LmTrainer<Cuda, float> g2(other, o);
  g2.set_data_parallel(DataParallel(device, DataParallelOptions{100, false}));
  device.queues.clear();
  g2.step(data.tokens_g.view(), data.targets_g.view());
  REQUIRE(!device.queues.empty());
  for (void* q : device.queues) CHECK(q == native_queue(other.backend()));
#if NLA_CUDA_DEVICE_SYSTEM
  CHECK(native_queue(other.backend()) != native_queue(gpu));
#endif
  // A Cpu model cannot use a device communicator.
  LmTrainer<Cpu, float> wrong(m.cpu, o);
  wrong.set_data_parallel(DataParallel(device));
  REQUIRE_THROWS_WITH(wrong.step(data.tokens_c.view(), data.targets_c.view()),
                      Catch::Contains("host memory") && Catch::Contains("device memory"));
}
