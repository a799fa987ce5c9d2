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

TEST_CASE("linear_gelu_forward equals linear_forward then gelu_forward", "[ops]") {
  Cpu cpu;
  const index_t n = 6, in = 5, out = 8;
  auto x = random_tensor<double>(Shape{n, in}, 1), w = random_tensor<double>(Shape{out, in}, 2);
  auto b = random_tensor<double>(Shape{out}, 3);
  for (bool with_bias : {true, false}) {
    CAPTURE(with_bias);
    const TensorView<const double, Cpu> bias =
        with_bias ? b.view() : TensorView<const double, Cpu>();
    TensorD h(Shape{n, out}), y(Shape{n, out}), h_ref(Shape{n, out}), y_ref(Shape{n, out});
    linear_gelu_forward(cpu, y.view(), h.view(), x.view(), w.view(), bias);
    linear_forward(cpu, h_ref.view(), x.view(), w.view(), bias);
    gelu_forward(cpu, y_ref.view(), h_ref.view());
    for (index_t i = 0; i < h.size(); ++i) {
      REQUIRE(h.data()[i] == h_ref.data()[i]);
      REQUIRE(y.data()[i] == y_ref.data()[i]);
    }
  }
}

TEST_CASE("linear backward through a GELU (gelu_input) passes the finite-difference check",
          "[ops][gradcheck]") {
  // loss = <gelu(x W1^T + b1) W2^T + b2, r>: the second layer's backward
  // with gelu_input gives the gradient at the GELU's input, which the first
  // layer's backward takes as its dy.
  Cpu cpu;
  const index_t n = 6, in = 5, f = 7, out = 4;
  auto x = random_tensor<double>(Shape{n, in}, 1), w1 = random_tensor<double>(Shape{f, in}, 2);
  auto b1 = random_tensor<double>(Shape{f}, 3), w2 = random_tensor<double>(Shape{out, f}, 4);
  auto b2 = random_tensor<double>(Shape{out}, 5), r = random_tensor<double>(Shape{n, out}, 6);
  TensorD h(Shape{n, f}), a(Shape{n, f}), y(Shape{n, out});
  auto loss = [&] {
    linear_gelu_forward(cpu, a.view(), h.view(), x.view(), w1.view(), b1.view());
    linear_forward(cpu, y.view(), a.view(), w2.view(), b2.view());
    return dot(y, r);
  };
  loss();
  TensorD dh(Shape{n, f}), dx(Shape{n, in}), dw1(Shape{f, in}), db1(Shape{f}), dw2(Shape{out, f}),
      db2(Shape{out});
  for (TensorD* g : {&dw1, &db1, &dw2, &db2}) fill(cpu, g->view(), 0.0);
  linear_backward(cpu, dh.view(), dw2.view(), db2.view(), r.view(), a.view(), w2.view(), h.view());
  linear_backward(cpu, dx.view(), dw1.view(), db1.view(), dh.view(), x.view(), w1.view());
  gradcheck("dx", x, dx, loss);
  gradcheck("dweight (first layer)", w1, dw1, loss);
  gradcheck("dbias (first layer)", b1, db1, loss);
  gradcheck("dweight (second layer)", w2, dw2, loss);
}

TEST_CASE("linear GELU forms reject mismatched shapes with a clear error", "[ops][errors]") {
  Cpu cpu;
  TensorD x(Shape{3, 5}), w(Shape{4, 5}), h(Shape{3, 4}), y(Shape{3, 4}), bad(Shape{3, 5});
  const TensorView<const double, Cpu> none;
  REQUIRE_THROWS_WITH(linear_gelu_forward(cpu, bad.view(), h.view(), x.view(), w.view(), none),
                      Catch::Contains("linear_gelu_forward: y has shape [3, 5], expected [3, 4]"));
  REQUIRE_THROWS_WITH(linear_gelu_forward(cpu, y.view(), bad.view(), x.view(), w.view(), none),
                      Catch::Contains("linear_gelu_forward") &&
                          Catch::Contains("h has shape [3, 5], expected 3 rows of 4"));
  // gelu_input is the GELU's input, shaped like dx; without dx there is no
  // gradient for it to apply to.
  TensorD dy(Shape{3, 4}), dw(Shape{4, 5}), dx(Shape{3, 5}), wrong_input(Shape{3, 4});
  REQUIRE_THROWS_WITH(linear_backward(cpu, dx.view(), dw.view(), TensorView<double, Cpu>(),
                                      dy.view(), x.view(), w.view(), wrong_input.view()),
                      Catch::Contains("linear_backward") && Catch::Contains("gelu_input"));
  REQUIRE_THROWS_WITH(
      linear_backward(cpu, TensorView<double, Cpu>(), dw.view(), TensorView<double, Cpu>(),
                      dy.view(), x.view(), w.view(), bad.view()),
      Catch::Contains("gelu_input is given but dx is empty"));
  // Aliasing: the forward writes both y and h; the backward writes dx while
  // it reads gelu_input.
  TensorD both(Shape{6, 4});
  const TensorView<double, Cpu> first_half(both.data(), Shape{3, 4}),
      shifted(both.data() + 2, Shape{3, 4});
  REQUIRE_THROWS_WITH(linear_gelu_forward(cpu, first_half, shifted, x.view(), w.view(), none),
                      Catch::Contains("linear_gelu_forward: y and h share memory"));
  REQUIRE_THROWS_WITH(
      linear_backward(cpu, dx.view(), dw.view(), TensorView<double, Cpu>(), dy.view(), x.view(),
                      w.view(), ConstView<double, Cpu>(dx.view())),
      Catch::Contains("linear_backward: dx and gelu_input share memory"));
}
