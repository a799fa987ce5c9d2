#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

TEST_CASE("linear forward matches the definition x W^T + b", "[ops]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{2, 3, 5}, 1), w = random_tensor<double>(Shape{4, 5}, 2);
  auto b = random_tensor<double>(Shape{4}, 3);
  TensorD y(Shape{2, 3, 4});
  linear_forward(cpu, y.view(), x.view(), w.view(), b.view());
  for (index_t r = 0; r < 6; ++r)
    for (index_t o = 0; o < 4; ++o) {
      double expect = b.data()[o];
      for (index_t i = 0; i < 5; ++i) expect += x.data()[r * 5 + i] * w.data()[o * 5 + i];
      REQUIRE(y.data()[r * 4 + o] == Approx(expect).epsilon(1e-12));
    }
}

TEST_CASE("linear backward passes the finite-difference check", "[ops][gradcheck]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{6, 5}, 1), w = random_tensor<double>(Shape{4, 5}, 2);
  auto b = random_tensor<double>(Shape{4}, 3), r = random_tensor<double>(Shape{6, 4}, 4);
  TensorD y(Shape{6, 4}), dx(Shape{6, 5}), dw(Shape{4, 5}), db(Shape{4});
  auto loss = [&] {
    linear_forward(cpu, y.view(), x.view(), w.view(), b.view());
    return dot(y, r);
  };
  // Parameter gradients accumulate: start from a non-zero value and subtract it.
  fill(cpu, dw.view(), 0.5);
  fill(cpu, db.view(), 0.0);
  linear_backward(cpu, dx.view(), dw.view(), db.view(), r.view(), x.view(), w.view());
  for (index_t i = 0; i < dw.size(); ++i) dw.data()[i] -= 0.5;
  gradcheck("dx", x, dx, loss);
  gradcheck("dweight", w, dw, loss);
  gradcheck("dbias", b, db, loss);
}

TEST_CASE("linear rejects mismatched shapes with a clear error", "[ops][errors]") {
  Cpu cpu;
  TensorD x(Shape{3, 5}), w(Shape{4, 6}), y(Shape{3, 4});
  REQUIRE_THROWS_WITH(
      linear_forward(cpu, y.view(), x.view(), w.view(), TensorView<const double, Cpu>()),
      Catch::Contains("linear_forward") && Catch::Contains("[3, 5]") && Catch::Contains("[4, 6]"));
  TensorD w2(Shape{4, 5}), bad_y(Shape{3, 3});
  REQUIRE_THROWS_AS(
      linear_forward(cpu, bad_y.view(), x.view(), w2.view(), TensorView<const double, Cpu>()),
      nla::Error);
}
