#include <cmath>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

using namespace nla;

TEST_CASE("AdamW follows the update rule, decaying only decayed tensors", "[optim]") {
  Cpu cpu;
  ParameterSet<double, Cpu> p;
  const int w = p.add("w", Shape{2, 2}, true), b = p.add("b", Shape{2}, false);
  p.allocate();
  for (int i = 0; i < 4; ++i) p.value(w).data()[i] = 1.0 + i;
  for (int i = 0; i < 2; ++i) p.value(b).data()[i] = -1.0;
  AdamWOptions o;
  o.lr = 0.1;
  o.beta1 = 0.8;
  o.beta2 = 0.9;
  o.eps = 1e-8;
  o.weight_decay = 0.5;
  AdamW<Cpu, double> opt(p, o);
  const double g[2][6] = {{0.5, -1.0, 2.0, 0.0, 3.0, -0.5}, {-0.25, 0.5, 1.0, 4.0, -1.0, 0.5}};
  double expect[6], m[6] = {}, v[6] = {};
  for (int i = 0; i < 6; ++i) expect[i] = p.values().data()[i];
  for (int step = 1; step <= 2; ++step) {
    for (int i = 0; i < 6; ++i) p.grads().data()[i] = g[step - 1][i];
    opt.step(cpu, p, o.lr);
    for (int i = 0; i < 6; ++i) {
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[step - 1][i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[step - 1][i] * g[step - 1][i];
      const double mhat = m[i] / (1 - std::pow(o.beta1, step));
      const double vhat = v[i] / (1 - std::pow(o.beta2, step));
      const double wd = i < 4 ? o.weight_decay : 0.0;
      expect[i] -= o.lr * (mhat / (std::sqrt(vhat) + o.eps) + wd * expect[i]);
      REQUIRE(p.values().data()[i] == Approx(expect[i]).epsilon(1e-12));
    }
  }
  REQUIRE(opt.step_count() == 2);
  REQUIRE_THROWS_AS(opt.step(cpu, p, std::nan("")), nla::Error);
}

TEST_CASE("global-norm clipping scales every gradient by max_norm / norm", "[optim]") {
  Cpu cpu;
  ParameterSet<float, Cpu> p;
  p.add("a", Shape{3}, true);
  p.add("b", Shape{1}, false);
  p.allocate();
  const float g[4] = {3, 0, 0, 4};  // norm 5
  for (int i = 0; i < 4; ++i) p.grads().data()[i] = g[i];
  REQUIRE(clip_grad_norm(cpu, p, 10.0) == Approx(5.0));
  REQUIRE(p.grads().data()[3] == 4.0f);  // below the limit: unchanged
  REQUIRE(clip_grad_norm(cpu, p, 1.0) == Approx(5.0));
  REQUIRE(p.grads().data()[0] == Approx(0.6f));
  REQUIRE(p.grads().data()[3] == Approx(0.8f));
  p.grads().data()[1] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(clip_grad_norm(cpu, p, 1.0), Catch::Contains("gradient norm"));
}

TEST_CASE("warm-up then cosine schedule", "[optim]") {
  WarmupCosineSchedule s{1.0, 0.1, 10, 110};
  REQUIRE(s(0) == Approx(0.1));
  REQUIRE(s(9) == Approx(1.0));
  REQUIRE(s(10) == Approx(1.0));
  REQUIRE(s(60) == Approx(0.55));  // halfway through the cosine
  REQUIRE(s(110) == Approx(0.1));
  REQUIRE(s(500) == Approx(0.1));
  for (int i = 11; i < 110; ++i) REQUIRE(s(i) <= s(i - 1));
}
