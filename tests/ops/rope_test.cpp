#include <cmath>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

TEST_CASE("rope rotates pairs (i, i + h/2) by pos * theta^(-2i/h)", "[ops]") {
  Cpu cpu;
  const index_t hd = 6;
  RopeTable<double, Cpu> table(cpu, 16, hd, 10000.0);
  auto x = random_tensor<double>(Shape{3, 2 * hd + 2}, 1);  // 2 rotated heads + 2 untouched
  TensorD original(x.shape());
  copy(cpu, original.view(), x.view());
  Tensor<std::int32_t, Cpu> pos(Shape{3});
  pos.data()[0] = 0;
  pos.data()[1] = 5;
  pos.data()[2] = 15;
  rope_forward(cpu, x.view(), 2, pos.view(), table);
  const index_t row = 1, head = 1, i = 1, half = hd / 2;
  const double angle = 5 * std::pow(10000.0, -2.0 * i / hd);
  const double x1 = original.data()[row * 14 + head * hd + i];
  const double x2 = original.data()[row * 14 + head * hd + i + half];
  REQUIRE(x.data()[row * 14 + head * hd + i] ==
          Approx(x1 * std::cos(angle) - x2 * std::sin(angle)));
  REQUIRE(x.data()[row * 14 + head * hd + i + half] ==
          Approx(x2 * std::cos(angle) + x1 * std::sin(angle)));
  for (index_t c = 0; c < 14; ++c) {
    if (c < 12) REQUIRE(x.data()[c] == Approx(original.data()[c]));  // position 0: identity
    REQUIRE(x.data()[row * 14 + 12] == original.data()[row * 14 + 12]);
  }
  rope_backward(cpu, x.view(), 2, pos.view(), table);  // inverse rotation
  for (index_t k = 0; k < x.size(); ++k)
    REQUIRE(x.data()[k] == Approx(original.data()[k]).margin(1e-12));
}

TEST_CASE("rope backward passes the finite-difference check", "[ops][gradcheck]") {
  Cpu cpu;
  RopeTable<double, Cpu> table(cpu, 8, 4, 100.0);
  auto x = random_tensor<double>(Shape{4, 12}, 3), r = random_tensor<double>(Shape{4, 12}, 4);
  Tensor<std::int32_t, Cpu> pos(Shape{4});
  for (int i = 0; i < 4; ++i) pos.data()[i] = 2 * i + 1;
  TensorD y(x.shape()), dx(x.shape());
  auto loss = [&] {
    copy(cpu, y.view(), x.view());
    rope_forward(cpu, y.view(), 3, pos.view(), table);
    return dot(y, r);
  };
  loss();
  copy(cpu, dx.view(), r.view());
  rope_backward(cpu, dx.view(), 3, pos.view(), table);
  gradcheck("dx", x, dx, loss);
  pos.data()[2] = 8;
  REQUIRE_THROWS_WITH(loss(), Catch::Contains("position 8"));
}
