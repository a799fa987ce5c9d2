#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

TEST_CASE("layernorm output has zero mean and unit variance before the affine map", "[ops]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{4, 16}, 7, 3.0);
  TensorD w(Shape{16}), b(Shape{16}), y(Shape{4, 16});
  Tensor<double, Cpu> mean(Shape{4}), rstd(Shape{4});
  fill(cpu, w.view(), 1.0);
  fill(cpu, b.view(), 0.0);
  layernorm_forward(cpu, y.view(), mean.view(), rstd.view(), x.view(), w.view(), b.view(), 1e-12);
  for (index_t r = 0; r < 4; ++r) {
    double m = 0, v = 0;
    for (index_t i = 0; i < 16; ++i) m += y.data()[r * 16 + i] / 16;
    for (index_t i = 0; i < 16; ++i)
      v += (y.data()[r * 16 + i] - m) * (y.data()[r * 16 + i] - m) / 16;
    REQUIRE(m == Approx(0).margin(1e-12));
    REQUIRE(v == Approx(1).epsilon(1e-9));
  }
}

TEST_CASE("layernorm backward passes the finite-difference check", "[ops][gradcheck]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{5, 8}, 1, 2.0), w = random_tensor<double>(Shape{8}, 2);
  auto b = random_tensor<double>(Shape{8}, 3), r = random_tensor<double>(Shape{5, 8}, 4);
  TensorD y(Shape{5, 8}), dx(Shape{5, 8}), dw(Shape{8}), db(Shape{8});
  Tensor<double, Cpu> mean(Shape{5}), rstd(Shape{5});
  auto loss = [&] {
    layernorm_forward(cpu, y.view(), mean.view(), rstd.view(), x.view(), w.view(), b.view(), 1e-5);
    return dot(y, r);
  };
  loss();
  zero(cpu, dx.view());
  zero(cpu, dw.view());
  zero(cpu, db.view());
  layernorm_backward(cpu, dx.view(), dw.view(), db.view(), r.view(), x.view(), w.view(),
                     mean.view(), rstd.view());
  gradcheck("dx", x, dx, loss);
  gradcheck("dweight", w, dw, loss);
  gradcheck("dbias", b, db, loss);
}

TEST_CASE("rmsnorm forward and backward", "[ops][gradcheck]") {
  Cpu cpu;
  auto x = random_tensor<double>(Shape{5, 8}, 11, 2.0), w = random_tensor<double>(Shape{8}, 12);
  auto r = random_tensor<double>(Shape{5, 8}, 13);
  TensorD y(Shape{5, 8}), dx(Shape{5, 8}), dw(Shape{8});
  Tensor<double, Cpu> rstd(Shape{5});
  auto loss = [&] {
    rmsnorm_forward(cpu, y.view(), rstd.view(), x.view(), w.view(), 1e-6);
    return dot(y, r);
  };
  loss();
  // y = x / rms(x) * w
  double ss = 0;
  for (index_t i = 0; i < 8; ++i) ss += x.data()[i] * x.data()[i];
  REQUIRE(y.data()[3] == Approx(x.data()[3] / std::sqrt(ss / 8 + 1e-6) * w.data()[3]));
  // Input gradients accumulate: start from 1 and check the difference.
  fill(cpu, dx.view(), 1.0);
  zero(cpu, dw.view());
  rmsnorm_backward(cpu, dx.view(), dw.view(), r.view(), x.view(), w.view(), rstd.view());
  for (index_t i = 0; i < dx.size(); ++i) dx.data()[i] -= 1.0;
  gradcheck("dx", x, dx, loss);
  gradcheck("dweight", w, dw, loss);
}
