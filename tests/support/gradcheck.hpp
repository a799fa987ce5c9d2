#pragma once
// Finite-difference gradient checks in double precision.
//
// For a scalar loss L(x) and an analytic gradient g, each checked element i
// must satisfy |g_i - (L(x + h e_i) - L(x - h e_i)) / 2h| <= atol + rtol |g_i|.
// Ops are checked through L = sum(out * R) with a fixed random R, so every
// output element carries a distinct weight.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/nla.hpp>

namespace nla::testing {

using Cpu = nla::Cpu;
using TensorD = nla::Tensor<double, Cpu>;

// Deterministic N(0, scale) fill from the counter-based RNG.
template <class T>
void fill_normal(nla::Tensor<T, Cpu>& t, std::uint64_t seed, double scale = 1.0) {
  for (nla::index_t i = 0; i < t.size(); ++i)
    t.data()[i] = T(scale * nla::random_normal(seed, 0, static_cast<std::uint64_t>(i)));
}

template <class T>
nla::Tensor<T, Cpu> random_tensor(nla::Shape shape, std::uint64_t seed, double scale = 1.0) {
  nla::Tensor<T, Cpu> t(shape);
  fill_normal(t, seed, scale);
  return t;
}

// sum_i a_i * b_i
template <class T>
double dot(const nla::Tensor<T, Cpu>& a, const nla::Tensor<T, Cpu>& b) {
  double s = 0;
  for (nla::index_t i = 0; i < a.size(); ++i) s += double(a.data()[i]) * double(b.data()[i]);
  return s;
}

struct GradcheckOptions {
  double step = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  nla::index_t max_checks = 48;  // elements checked per tensor (spread evenly)
};

// x: the input perturbed in place; analytic: dL/dx; loss: evaluates L at the
// current x. Returns the largest error seen, after asserting each element.
inline double gradcheck(const std::string& name, double* x, const double* analytic, nla::index_t n,
                        const std::function<double()>& loss, GradcheckOptions o = {}) {
  const nla::index_t stride = std::max<nla::index_t>(1, n / o.max_checks);
  double worst = 0;
  for (nla::index_t i = 0; i < n; i += stride) {
    const double saved = x[i];
    x[i] = saved + o.step;
    const double up = loss();
    x[i] = saved - o.step;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * o.step);
    const double err = std::abs(numeric - analytic[i]);
    worst = std::max(worst, err);
    INFO(name << "[" << i << "]: analytic " << analytic[i] << ", numeric " << numeric);
    REQUIRE(err <= o.atol + o.rtol * std::abs(analytic[i]));
  }
  return worst;
}

inline double gradcheck(const std::string& name, TensorD& x, const TensorD& analytic,
                        const std::function<double()>& loss, GradcheckOptions o = {}) {
  REQUIRE(x.size() == analytic.size());
  return gradcheck(name, x.data(), analytic.data(), x.size(), loss, o);
}

// The whole model's parameter gradients with hooks in place: one backward
// after loss() (which must run lm.forward with the same hooks), checked
// against finite differences of loss().
template <class Model, class Activations, class ModelHooks>
void gradcheck_parameters_through_hooks(Model& lm, Activations& acts, ModelHooks& hooks,
                                        const std::function<double()>& loss,
                                        GradcheckOptions o = {}) {
  loss();
  lm.zero_grad();
  lm.backward(acts, &hooks);
  TensorD grads(nla::Shape{lm.parameters().size()});
  copy(lm.backend(), grads.view(), nla::ConstView<double, Cpu>(lm.parameters().grads()));
  gradcheck("parameters", lm.parameters().values().data(), grads.data(), grads.size(), loss, o);
}

}  // namespace nla::testing
