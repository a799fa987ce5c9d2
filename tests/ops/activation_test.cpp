#include <cmath>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

TEST_CASE("gelu matches the tanh formula and its gradient", "[ops][gradcheck]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{3, 40}, 1, 2.0), r = random_tensor<double>(Shape{3, 40}, 2);
  TensorD y(x.shape()), dx(x.shape());
  auto loss = [&] {
    gelu_forward(cpu, y.view(), x.view());
    return dot(y, r);
  };
  loss();
  for (index_t i = 0; i < x.size(); ++i) {
    const double v = x.data()[i];
    const double expect =
        0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    REQUIRE(y.data()[i] == Approx(expect).epsilon(1e-12));
  }
  gelu_backward(cpu, dx.view(), r.view(), x.view());
  gradcheck("dx", x, dx, loss);
}

TEST_CASE("silu and its gradient", "[ops][gradcheck]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{50}, 3, 3.0), r = random_tensor<double>(Shape{50}, 4);
  TensorD y(x.shape()), dx(x.shape());
  auto loss = [&] {
    silu_forward(cpu, y.view(), x.view());
    return dot(y, r);
  };
  loss();
  REQUIRE(y.data()[7] == Approx(x.data()[7] / (1 + std::exp(-x.data()[7]))));
  silu_backward(cpu, dx.view(), r.view(), x.view());
  gradcheck("dx", x, dx, loss);
}

TEST_CASE("swiglu over a fused gate|up input", "[ops][gradcheck]") {
  Cpu cpu;
  auto gu = random_tensor<double>(Shape{4, 2 * 6}, 5, 2.0),
       r = random_tensor<double>(Shape{4, 6}, 6);
  TensorD y(Shape{4, 6}), dgu(gu.shape());
  auto loss = [&] {
    swiglu_forward(cpu, y.view(), gu.view());
    return dot(y, r);
  };
  loss();
  const double g = gu.data()[12 + 2], u = gu.data()[12 + 6 + 2];
  REQUIRE(y.data()[6 + 2] == Approx(g / (1 + std::exp(-g)) * u));
  swiglu_backward(cpu, dgu.view(), r.view(), gu.view());
  gradcheck("dgate_up", gu, dgu, loss);
  TensorD odd(Shape{4, 5});
  REQUIRE_THROWS_AS(swiglu_forward(cpu, y.view(), odd.view()), nla::Error);
}

TEST_CASE("residual add: y += x, gradient passes through to both", "[ops][gradcheck]") {
  Cpu cpu;
  auto a = random_tensor<double>(Shape{3, 4}, 7), x = random_tensor<double>(Shape{3, 4}, 8);
  auto r = random_tensor<double>(Shape{3, 4}, 9);
  TensorD y(a.shape());
  auto loss = [&] {
    copy(cpu, y.view(), a.view());
    add(cpu, y.view(), x.view());
    return dot(y, r);
  };
  loss();
  // d(sum r * (a + x)) / da = d/dx = r
  gradcheck("da", a, r, loss);
  gradcheck("dx", x, r, loss);
  TensorD wrong(Shape{4, 4});
  REQUIRE_THROWS_AS(add(cpu, y.view(), wrong.view()), nla::Error);
}
