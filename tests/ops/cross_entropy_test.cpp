#include <cmath>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

TEST_CASE("cross-entropy: weighted mean with an ignore index, gradient in place",
          "[ops][gradcheck]") {
  Cpu cpu;
  const index_t n = 5, v = 7;
  auto logits = random_tensor<double>(Shape{n, v}, 1, 3.0);
  Tensor<std::int32_t, Cpu> targets(Shape{n});
  Tensor<float, Cpu> weights(Shape{n});
  const std::int32_t t_values[n] = {2, -100, 6, 0, 2};
  const float w_values[n] = {1.0f, 5.0f, 0.5f, -0.25f, 2.0f};  // negative weights are allowed
  for (index_t i = 0; i < n; ++i) {
    targets.data()[i] = t_values[i];
    weights.data()[i] = w_values[i];
  }
  TensorD row_loss(Shape{n}), lse(Shape{n}), dloss(Shape{n});
  auto loss = [&] {
    return cross_entropy_forward<double>(cpu, row_loss.view(), lse.view(), logits.view(),
                                         targets.view(), weights.view(), -100, dloss.view());
  };
  const double mean = loss();
  // By hand: sum_r w_r (lse_r - x_r[t_r]) / sum_r w_r over counted rows.
  double total = 0, wsum = 0;
  for (index_t r = 0; r < n; ++r) {
    if (t_values[r] == -100) continue;
    double m = -1e300, s = 0;
    for (index_t j = 0; j < v; ++j) m = std::max(m, logits.data()[r * v + j]);
    for (index_t j = 0; j < v; ++j) s += std::exp(logits.data()[r * v + j] - m);
    const double ce = m + std::log(s) - logits.data()[r * v + t_values[r]];
    REQUIRE(row_loss.data()[r] == Approx(ce));
    total += w_values[r] * ce;
    wsum += w_values[r];
  }
  REQUIRE(row_loss.data()[1] == 0.0);
  REQUIRE(mean == Approx(total / wsum));
  // The forward also wrote d mean / d row_loss = w_r / sum w (0 when ignored).
  for (index_t r = 0; r < n; ++r)
    REQUIRE(dloss.data()[r] == Approx(t_values[r] == -100 ? 0.0 : w_values[r] / wsum));

  TensorD grad(logits.shape());
  copy(cpu, grad.view(), logits.view());
  cross_entropy_backward(cpu, grad.view(), dloss.view(), lse.view(), targets.view(), -100);
  for (index_t j = 0; j < v; ++j) REQUIRE(grad.data()[1 * v + j] == 0.0);  // ignored row
  gradcheck("dlogits", logits, grad, loss);
}

TEST_CASE("cross-entropy over padded rows reads and writes only the vocabulary", "[ops]") {
  // The same logits as [n, v] and as the first v columns of [n, v + 3] rows
  // whose padding is NaN: the padding must be neither read (the losses would
  // be NaN) nor written. Values agree to rounding: Eigen's exp takes the
  // scalar path for a row's unaligned head, and the rows start at other
  // alignments in the two layouts.
  Cpu cpu;
  const index_t n = 4, v = 9, ld = v + 3;
  auto logits = random_tensor<float>(Shape{n, v}, 2, 2.0);
  Tensor<float, Cpu> padded(Shape{n, ld});
  for (index_t r = 0; r < n; ++r)
    for (index_t j = 0; j < ld; ++j)
      padded.data()[r * ld + j] = j < v ? logits.data()[r * v + j] : std::nanf("");
  Tensor<std::int32_t, Cpu> targets(Shape{n});
  for (index_t r = 0; r < n; ++r) targets.data()[r] = std::int32_t(r == 1 ? -100 : v - 1 - r);
  Tensor<float, Cpu> loss_a(Shape{n}), lse_a(Shape{n}), dloss_a(Shape{n});
  Tensor<float, Cpu> loss_b(Shape{n}), lse_b(Shape{n}), dloss_b(Shape{n});
  const double a = cross_entropy_forward<float>(cpu, loss_a.view(), lse_a.view(), logits.view(),
                                                targets.view(), {}, -100, dloss_a.view());
  const double b = cross_entropy_forward<float>(cpu, loss_b.view(), lse_b.view(), padded.view(),
                                                targets.view(), {}, -100, dloss_b.view(), v);
  REQUIRE(std::isfinite(b));
  REQUIRE(a == Approx(b).epsilon(1e-6));
  cross_entropy_backward(cpu, logits.view(), dloss_a.view(), lse_a.view(), targets.view(), -100);
  cross_entropy_backward(cpu, padded.view(), dloss_b.view(), lse_b.view(), targets.view(), -100, v);
  for (index_t r = 0; r < n; ++r)
    for (index_t j = 0; j < ld; ++j) {
      const float x = padded.data()[r * ld + j];
      if (j < v)
        REQUIRE(x == Approx(logits.data()[r * v + j]).epsilon(1e-5).margin(1e-7));
      else
        REQUIRE(std::isnan(x));
    }
  REQUIRE_THROWS_WITH(cross_entropy_forward<float>(cpu, loss_b.view(), lse_b.view(), padded.view(),
                                                   targets.view(), {}, -100, {}, ld + 1),
                      Catch::Contains("vocabulary of 13 in logits rows of 12"));
}

TEST_CASE("cross-entropy rejects targets outside the vocabulary", "[ops][errors]") {
  Cpu cpu;
  TensorD logits(Shape{2, 4}), row_loss(Shape{2}), lse(Shape{2});
  Tensor<std::int32_t, Cpu> targets(Shape{2});
  targets.data()[0] = 1;
  targets.data()[1] = 4;
  REQUIRE_THROWS_WITH(cross_entropy_forward<double>(cpu, row_loss.view(), lse.view(), logits.view(),
                                                    targets.view(), {}, -100),
                      Catch::Contains("target[1] = 4"));
  targets.data()[0] = -3;  // negative and not the ignore index: the first bad row
  REQUIRE_THROWS_WITH(cross_entropy_forward<double>(cpu, row_loss.view(), lse.view(), logits.view(),
                                                    targets.view(), {}, -100),
                      Catch::Contains("target[0] = -3 is outside [0, 4)"));
}

TEST_CASE("cross-entropy is stable for large logits", "[ops]") {
  Cpu cpu;
  Tensor<float, Cpu> logits(Shape{1, 3}), row_loss(Shape{1}), lse(Shape{1});
  logits.data()[0] = 1000.f;
  logits.data()[1] = 999.f;
  logits.data()[2] = -1000.f;
  Tensor<std::int32_t, Cpu> targets(Shape{1});
  targets.data()[0] = 1;
  const double loss = cross_entropy_forward<float>(cpu, row_loss.view(), lse.view(), logits.view(),
                                                   targets.view(), {}, -100);
  REQUIRE(std::isfinite(loss));
  REQUIRE(loss == Approx(std::log(1 + std::exp(1.0))).epsilon(1e-5));
}
