#include <cmath>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

namespace {

// Plain loops: out[b, t, h] = sum_s softmax_s(q.k_s / sqrt(hd)) v_s over s <= t,
// and lse[b, h, t] = log sum_s exp(q.k_s / sqrt(hd)) when asked for.
TensorD naive_attention(const TensorD& qkv, index_t batch, index_t t, AttentionHeads h,
                        TensorD* lse = nullptr) {
  const index_t w = h.qkv_width(), hd = h.head_dim, group = h.heads / h.kv_heads;
  TensorD out(Shape{batch, t, h.heads * hd});
  for (index_t b = 0; b < batch; ++b)
    for (index_t head = 0; head < h.heads; ++head)
      for (index_t i = 0; i < t; ++i) {
        const double* q = qkv.data() + (b * t + i) * w + head * hd;
        std::vector<double> score(i + 1);
        double max = -1e300, sum = 0;
        for (index_t s = 0; s <= i; ++s) {
          const double* k = qkv.data() + (b * t + s) * w + (h.heads + head / group) * hd;
          double dot = 0;
          for (index_t c = 0; c < hd; ++c) dot += q[c] * k[c];
          score[s] = dot / std::sqrt(double(hd));
          max = std::max(max, score[s]);
        }
        for (auto& s : score) sum += (s = std::exp(s - max));
        if (lse) lse->data()[(b * h.heads + head) * t + i] = max + std::log(sum);
        for (index_t c = 0; c < hd; ++c) {
          double acc = 0;
          for (index_t s = 0; s <= i; ++s)
            acc += score[s] / sum *
                   qkv.data()[(b * t + s) * w + (h.heads + h.kv_heads + head / group) * hd + c];
          out.data()[(b * t + i) * h.heads * hd + head * hd + c] = acc;
        }
      }
  return out;
}

}  // namespace

TEST_CASE("causal attention equals the loop definition (MHA, GQA, MQA, odd head sizes)", "[ops]") {
  Cpu cpu;
  const AttentionHeads configs[] = {{4, 4, 3}, {4, 2, 5}, {6, 1, 2}};
  for (const auto& h : configs) {
    const index_t batch = 2, t = 5;
    auto qkv = random_tensor<double>(Shape{batch, t, h.qkv_width()}, 1);
    TensorD out(Shape{batch, t, h.heads * h.head_dim}), lse(Shape{batch, h.heads, t});
    self_attention_forward(cpu, out.view(), lse.view(), qkv.view(), h);
    TensorD expect_lse(lse.shape());
    const auto expect = naive_attention(qkv, batch, t, h, &expect_lse);
    for (index_t i = 0; i < out.size(); ++i)
      REQUIRE(out.data()[i] == Approx(expect.data()[i]).margin(1e-12));
    // The saved log-sum-exp of each causal row of scores.
    for (index_t i = 0; i < lse.size(); ++i)
      REQUIRE(lse.data()[i] == Approx(expect_lse.data()[i]).margin(1e-12));
  }
}

TEST_CASE("attention backward passes the finite-difference check", "[ops][gradcheck]") {
  Cpu cpu;
  const AttentionHeads configs[] = {{2, 2, 3}, {4, 2, 2}, {3, 1, 4}};
  for (const auto& h : configs) {
    const index_t batch = 2, t = 4;
    auto qkv = random_tensor<double>(Shape{batch, t, h.qkv_width()}, 5);
    auto r = random_tensor<double>(Shape{batch, t, h.heads * h.head_dim}, 6);
    TensorD out(r.shape()), lse(Shape{batch, h.heads, t}), dqkv(qkv.shape());
    auto loss = [&] {
      self_attention_forward(cpu, out.view(), lse.view(), qkv.view(), h);
      return dot(out, r);
    };
    loss();
    self_attention_backward(cpu, dqkv.view(), r.view(), out.view(), lse.view(), qkv.view(), h);
    gradcheck("dqkv", qkv, dqkv, loss, {1e-6, 1e-7, 1e-5, 200});
  }
}

TEST_CASE("cached attention over a KV cache equals the last rows of full attention", "[ops]") {
  Cpu cpu;
  const AttentionHeads h{4, 2, 3};
  const index_t batch = 2, t = 6, tq = 2, kw = h.kv_heads * h.head_dim, w = h.qkv_width();
  const index_t capacity = 8;
  auto qkv = random_tensor<double>(Shape{batch, t, w}, 9);
  TensorD full(Shape{batch, t, h.heads * h.head_dim}), lse(Shape{batch, h.heads, t});
  self_attention_forward(cpu, full.view(), lse.view(), qkv.view(), h);
  TensorD kc(Shape{batch, capacity, kw}), vc(Shape{batch, capacity, kw}), q(Shape{batch, tq, w});
  for (index_t b = 0; b < batch; ++b)
    for (index_t s = 0; s < t; ++s)
      for (index_t c = 0; c < kw; ++c) {
        kc.data()[(b * capacity + s) * kw + c] =
            qkv.data()[(b * t + s) * w + h.heads * h.head_dim + c];
        vc.data()[(b * capacity + s) * kw + c] =
            qkv.data()[(b * t + s) * w + h.heads * h.head_dim + kw + c];
      }
  for (index_t b = 0; b < batch; ++b)
    for (index_t i = 0; i < tq; ++i)
      for (index_t c = 0; c < w; ++c)
        q.data()[(b * tq + i) * w + c] = qkv.data()[(b * t + t - tq + i) * w + c];
  TensorD out(Shape{batch, tq, h.heads * h.head_dim}), clse(Shape{batch, h.heads, tq});
  cached_attention_forward(cpu, out.view(), clse.view(), q.view(), kc.view(), vc.view(), t, h);
  const index_t width = h.heads * h.head_dim;
  for (index_t b = 0; b < batch; ++b)
    for (index_t i = 0; i < tq; ++i)
      for (index_t c = 0; c < width; ++c)
        REQUIRE(out.data()[(b * tq + i) * width + c] ==
                Approx(full.data()[(b * t + t - tq + i) * width + c]).margin(1e-12));
  for (index_t b = 0; b < batch; ++b)
    for (index_t head = 0; head < h.heads; ++head)
      for (index_t i = 0; i < tq; ++i)
        REQUIRE(clse.data()[(b * h.heads + head) * tq + i] ==
                Approx(lse.data()[(b * h.heads + head) * t + t - tq + i]).margin(1e-12));
  REQUIRE_THROWS_AS(cached_attention_forward(cpu, out.view(), clse.view(), q.view(), kc.view(),
                                             vc.view(), capacity + 1, h),
                    nla::Error);
}

TEST_CASE("attention rejects head counts that do not group", "[ops][errors]") {
  Cpu cpu;
  const AttentionHeads h{4, 3, 2};
  TensorD qkv(Shape{1, 2, h.qkv_width()}), out(Shape{1, 2, 8}), lse(Shape{1, 4, 2});
  REQUIRE_THROWS_WITH(self_attention_forward(cpu, out.view(), lse.view(), qkv.view(), h),
                      Catch::Contains("4 query heads") && Catch::Contains("3 key/value heads"));
}
