// The tensor-core attention kernels' own source, run on CPU threads
// (cuda_emulation.hpp) against an fp64 reference: every shape class the
// kernels meet (several query blocks and key tiles, cached keys, grouped and
// multi-query heads, one-token decoding, rows that start unaligned), at
// fp32 (no operand rounding: the indexing to fp32 accuracy), TF32 and bf16
// (the parity suite's tolerances). On a GPU the parity suite checks the same
// kernels on the hardware; this is what checks them everywhere else.

#include "cuda/cuda_emulation.hpp"

namespace nla::gpu::tensor_core_attention {
// The kernels' dynamic shared memory (their `extern __shared__` array).
alignas(128) unsigned char shared[256 * 1024];
}  // namespace nla::gpu::tensor_core_attention

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "nla/backend/cuda/tensor_core_attention_kernels.cuh"
#include "nla/core/random.hpp"

namespace {

using namespace nla;
using namespace nla::gpu::tensor_core_attention;

struct Case {
  index_t batch, tq, tk, heads, kv_heads, head_dim, shift;
};

// max |got - reference| / (1 + max |reference|), per tensor.
struct Errors {
  double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
  long untouched_changed = 0;  // entries outside the heads that changed
};

struct Relative {
  double diff = 0, scale = 0;
  void add(double reference, double got) {
    // A NaN or Inf in either makes the error infinite.
    const double d =
        std::isfinite(got) && std::isfinite(reference) ? std::abs(reference - got) : INFINITY;
    diff = std::max(diff, d);
    scale = std::max(scale, std::abs(reference));
  }
  double value() const { return diff / (1 + scale); }
};

template <class G>
std::vector<G> normal_values(index_t n, std::uint64_t seed) {
  std::vector<G> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[i] = G(float(random_normal(seed, 3, std::uint64_t(i))));
  return v;
}

template <class T, int D, class Kernel>
void run(dim3 grid, Kernel kernel) {
  constexpr std::size_t bytes = SharedLayout<typename Operand<T>::Stored, D>::bytes;
  static_assert(bytes <= sizeof shared, "the emulated shared memory is too small");
  cuda_emulation::launch(grid, kThreads, shared, bytes, kernel);
}

// The three kernels on one case, in the order attention_backward launches
// them, and their errors against fp64 attention on the same values.
template <class G, int D>
Errors run_case(const Case& c) {
  const index_t batch = c.batch, tq = c.tq, tk = c.tk, heads = c.heads, kv_heads = c.kv_heads,
                shift = c.shift, hd = D;
  const index_t qkv = (heads + 2 * kv_heads) * hd, kv_row = 2 * kv_heads * hd;
  const index_t group = heads / kv_heads, past = tk - tq;
  auto q = normal_values<G>(batch * tq * qkv + shift, 1);
  auto kv = normal_values<G>(batch * tk * kv_row + shift, 2);
  auto out = normal_values<G>(batch * tq * heads * hd, 3);
  auto dout = normal_values<G>(batch * tq * heads * hd, 4);
  auto dq = normal_values<G>(batch * tq * qkv + shift, 5);
  auto dkv = normal_values<G>(batch * tk * kv_row + shift, 6);
  const auto dq_before = dq, dkv_before = dkv;
  std::vector<float> lse(std::size_t(batch * heads * tq)), delta(lse.size());
  const float scale = 1.0f / std::sqrt(float(hd));

  const HeadLayout<const G> ql{q.data() + shift, tq * qkv, qkv},
      kl{kv.data() + shift, tk * kv_row, kv_row},
      vl{kv.data() + shift + kv_heads * hd, tk * kv_row, kv_row};
  const HeadLayout<G> dql{dq.data() + shift, tq * qkv, qkv},
      dkl{dkv.data() + shift, tk * kv_row, kv_row},
      dvl{dkv.data() + shift + kv_heads * hd, tk * kv_row, kv_row};
  const unsigned query_blocks = unsigned((tq + kBlockRows - 1) / kBlockRows),
                 key_blocks = unsigned((tk + kBlockRows - 1) / kBlockRows);
  run<G, D>(dim3{unsigned(batch * heads), query_blocks, 1}, [&] {
    forward_kernel<G, D>(out.data(), lse.data(), ql, kl, vl, tq, tk, heads, group, scale);
  });
  run<G, D>(dim3{unsigned(batch * heads), query_blocks, 1}, [&] {
    backward_dq_kernel<G, D>(dql, delta.data(), dout.data(), out.data(), lse.data(), ql, kl, vl, tq,
                             tk, heads, group, scale);
  });
  run<G, D>(dim3{unsigned(batch * kv_heads), key_blocks, 1}, [&] {
    backward_dkv_kernel<G, D>(dkl, dvl, dout.data(), lse.data(), delta.data(), ql, kl, vl, tq, tk,
                              heads, kv_heads, scale);
  });

  // The reference in fp64 on the same values. Its backward takes the
  // kernel's output for delta, as the real backward does.
  auto at = [](const std::vector<G>& v, index_t i) { return double(float(v[std::size_t(i)])); };
  auto q_at = [&](index_t b, index_t t, index_t h, index_t i) {
    return at(q, shift + b * tq * qkv + t * qkv + h * hd + i);
  };
  auto k_at = [&](index_t b, index_t s, index_t g, index_t i) {
    return at(kv, shift + b * tk * kv_row + s * kv_row + g * hd + i);
  };
  auto v_at = [&](index_t b, index_t s, index_t g, index_t i) {
    return at(kv, shift + b * tk * kv_row + s * kv_row + kv_heads * hd + g * hd + i);
  };
  auto dense = [&](index_t b, index_t t, index_t h, index_t i) {
    return (b * tq + t) * heads * hd + h * hd + i;
  };
  Relative e_out, e_lse, e_dq, e_dk, e_dv;
  std::vector<double> dk_ref(std::size_t(batch * tk * kv_heads * hd)), dv_ref(dk_ref.size());
  for (index_t b = 0; b < batch; ++b)
    for (index_t h = 0; h < heads; ++h)
      for (index_t t = 0; t < tq; ++t) {
        const index_t g = h / group, visible = std::min(tk, t + past + 1);
        std::vector<double> s_row(static_cast<std::size_t>(visible)),
            o(static_cast<std::size_t>(hd));
        double max = -INFINITY;
        for (index_t s = 0; s < visible; ++s) {
          double dot = 0;
          for (index_t i = 0; i < hd; ++i) dot += q_at(b, t, h, i) * k_at(b, s, g, i);
          s_row[s] = scale * dot;
          max = std::max(max, s_row[s]);
        }
        double sum = 0;
        for (index_t s = 0; s < visible; ++s) {
          const double p = std::exp(s_row[s] - max);
          sum += p;
          for (index_t i = 0; i < hd; ++i) o[i] += p * v_at(b, s, g, i);
        }
        const double row_lse = max + std::log(sum);
        e_lse.add(row_lse, lse[std::size_t((b * heads + h) * tq + t)]);
        double row_delta = 0;
        for (index_t i = 0; i < hd; ++i) {
          e_out.add(o[i] / sum, at(out, dense(b, t, h, i)));
          row_delta += at(dout, dense(b, t, h, i)) * at(out, dense(b, t, h, i));
        }
        std::vector<double> dq_row(static_cast<std::size_t>(hd));
        for (index_t s = 0; s < visible; ++s) {
          const double p = std::exp(s_row[s] - row_lse);
          double dp = 0;
          for (index_t i = 0; i < hd; ++i) dp += at(dout, dense(b, t, h, i)) * v_at(b, s, g, i);
          const double ds = p * (dp - row_delta);
          for (index_t i = 0; i < hd; ++i) {
            const std::size_t e = std::size_t(((b * tk + s) * kv_heads + g) * hd + i);
            dq_row[i] += ds * k_at(b, s, g, i);
            dk_ref[e] += scale * ds * q_at(b, t, h, i);
            dv_ref[e] += p * at(dout, dense(b, t, h, i));
          }
        }
        for (index_t i = 0; i < hd; ++i)
          e_dq.add(scale * dq_row[i], at(dq, shift + b * tq * qkv + t * qkv + h * hd + i));
      }
  for (index_t b = 0; b < batch; ++b)
    for (index_t s = 0; s < tk; ++s)
      for (index_t g = 0; g < kv_heads; ++g)
        for (index_t i = 0; i < hd; ++i) {
          const std::size_t e = std::size_t(((b * tk + s) * kv_heads + g) * hd + i);
          const index_t row = shift + b * tk * kv_row + s * kv_row;
          e_dk.add(dk_ref[e], at(dkv, row + g * hd + i));
          e_dv.add(dv_ref[e], at(dkv, row + kv_heads * hd + g * hd + i));
        }

  Errors errors{e_out.value(), e_lse.value(), e_dq.value(), e_dk.value(), e_dv.value(), 0};
  // The kernels write the q heads of dq and the k, v heads of dkv, nothing
  // else: the shifted-in prefix and dq's k, v columns keep their values.
  for (index_t e = 0; e < shift; ++e)
    errors.untouched_changed +=
        (float(dq[e]) != float(dq_before[e])) + (float(dkv[e]) != float(dkv_before[e]));
  for (index_t r = 0; r < batch * tq; ++r)
    for (index_t col = heads * hd; col < qkv; ++col) {
      const std::size_t e = std::size_t(shift + r * qkv + col);
      errors.untouched_changed += float(dq[e]) != float(dq_before[e]);
    }
  return errors;
}

template <class G>
void check_cases(double tolerance) {
  const Case cases[] = {{2, 70, 100, 4, 2, 16, 1}, {1, 130, 130, 2, 1, 64, 0},
                        {3, 1, 37, 4, 4, 32, 0},   {2, 129, 200, 4, 2, 64, 0},
                        {1, 65, 65, 4, 1, 16, 0},  {1, 17, 300, 2, 2, 32, 0},
                        {1, 1, 1, 1, 1, 16, 0}};
  for (const Case& c : cases) {
    INFO("batch " << c.batch << ", " << c.tq << " queries over " << c.tk << " keys, " << c.heads
                  << " heads over " << c.kv_heads << ", head_dim " << c.head_dim << ", shift "
                  << c.shift);
    const long violations_before = cuda_emulation::wmma_violations;
    Errors e;
    if (c.head_dim == 16)
      e = run_case<G, 16>(c);
    else if (c.head_dim == 32)
      e = run_case<G, 32>(c);
    else if (c.head_dim == 64)
      e = run_case<G, 64>(c);
    else
      FAIL("no tensor-core kernel for head_dim " << c.head_dim);
    CHECK(e.out < tolerance);
    CHECK(e.lse < tolerance);
    CHECK(e.dq < tolerance);
    CHECK(e.dk < tolerance);
    CHECK(e.dv < tolerance);
    CHECK(e.untouched_changed == 0);
    CHECK(cuda_emulation::wmma_violations == violations_before);
  }
}

}  // namespace

TEST_CASE("tensor-core attention kernels, emulated on CPU threads, match fp64 attention",
          "[emulation]") {
  SECTION("fp32 operands, unrounded: the indexing at fp32 accuracy") {
    cuda_emulation::round_tf32 = false;
    check_cases<float>(1e-5);
  }
  SECTION("TF32") {
    cuda_emulation::round_tf32 = true;
    check_cases<float>(1e-2);
  }
  SECTION("bf16") {
    cuda_emulation::round_tf32 = true;
    check_cases<bf16>(2e-2);
  }
}
