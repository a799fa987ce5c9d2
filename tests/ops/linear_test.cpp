#include <cmath>

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

TEST_CASE("linear without a bias writes and reads padded rows, leaving the padding", "[ops]") {
  // y and dy as [n, 7] rows of which the layer's 4 come first; the padding
  // holds NaN, so reading it would show in every result.
  Cpu cpu;
  const index_t n = 6, in = 5, out = 4, ld = 7;
  auto x = random_tensor<double>(Shape{n, in}, 1), w = random_tensor<double>(Shape{out, in}, 2);
  auto dy = random_tensor<double>(Shape{n, out}, 3);
  TensorD y(Shape{n, out}), padded_y(Shape{n, ld}), padded_dy(Shape{n, ld});
  fill(cpu, padded_y.view(), std::nan(""));
  fill(cpu, padded_dy.view(), std::nan(""));
  for (index_t r = 0; r < n; ++r)
    for (index_t o = 0; o < out; ++o) padded_dy.data()[r * ld + o] = dy.data()[r * out + o];
  const TensorView<const double, Cpu> none;
  linear_forward(cpu, y.view(), x.view(), w.view(), none);
  linear_forward(cpu, padded_y.view(), x.view(), w.view(), none);
  for (index_t r = 0; r < n; ++r)
    for (index_t o = 0; o < ld; ++o) {
      const double got = padded_y.data()[r * ld + o];
      if (o < out)
        REQUIRE(got == y.data()[r * out + o]);
      else
        REQUIRE(std::isnan(got));
    }
  TensorD dx(Shape{n, in}), dw(Shape{out, in}), padded_dx(Shape{n, in}), padded_dw(Shape{out, in});
  fill(cpu, dw.view(), 0.0);
  fill(cpu, padded_dw.view(), 0.0);
  linear_backward(cpu, dx.view(), dw.view(), TensorView<double, Cpu>(), dy.view(), x.view(),
                  w.view());
  linear_backward(cpu, padded_dx.view(), padded_dw.view(), TensorView<double, Cpu>(),
                  padded_dy.view(), x.view(), w.view());
  for (index_t i = 0; i < dx.size(); ++i) REQUIRE(padded_dx.data()[i] == Approx(dx.data()[i]));
  for (index_t i = 0; i < dw.size(); ++i) REQUIRE(padded_dw.data()[i] == Approx(dw.data()[i]));
  // A bias is added over the whole row, so padded rows take none.
  auto b = random_tensor<double>(Shape{out}, 4);
  REQUIRE_THROWS_WITH(linear_forward(cpu, padded_y.view(), x.view(), w.view(), b.view()),
                      Catch::Contains("y has shape [6, 7], expected 6 rows of 4"));
}
