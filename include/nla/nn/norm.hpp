#pragma once
// Normalisation module: LayerNorm (weight and bias) for Gpt2, RMSNorm (weight
// only) for Llama. Saved statistics live in a NormCache owned by the caller.

#include <string>

#include "nla/core/scalar.hpp"
#include "nla/nn/parameters.hpp"
#include "nla/ops/norm.hpp"

namespace nla {

enum class NormKind { LayerNorm, RmsNorm };

template <class T, class B>
struct NormCache {
  Tensor<accum_t<T>, B> mean, rstd;  // [rows]
  void resize(index_t rows) {
    mean.resize(Shape{rows});
    rstd.resize(Shape{rows});
  }
};

template <class B, class T>
class Norm {
 public:
  Norm() = default;
  Norm(ParameterSet<T, B>& params, const std::string& name, index_t d, NormKind kind, double eps)
      : kind_(kind), eps_(eps) {
    weight_ = params.add(name + ".weight", Shape{d}, false);
    if (kind == NormKind::LayerNorm) bias_ = params.add(name + ".bias", Shape{d}, false);
  }

  NormKind kind() const { return kind_; }
  int weight_id() const { return weight_; }
  int bias_id() const { return bias_; }

  // x, y: [rows, d]
  void forward(B& backend, const ParameterSet<T, B>& p, TensorView<T, B> y, ConstView<T, B> x,
               NormCache<T, B>& cache) const {
    cache.resize(x.rows());
    if (kind_ == NormKind::LayerNorm)
      layernorm_forward(backend, y, cache.mean.view(), cache.rstd.view(), x, p.value(weight_),
                        p.value(bias_), eps_);
    else
      rmsnorm_forward(backend, y, cache.rstd.view(), x, p.value(weight_), eps_);
  }

  // dx accumulates (+=).
  void backward(B& backend, ParameterSet<T, B>& p, TensorView<T, B> dx, ConstView<T, B> dy,
                ConstView<T, B> x, const NormCache<T, B>& cache) const {
    if (kind_ == NormKind::LayerNorm)
      layernorm_backward(backend, dx, p.grad(weight_), p.grad(bias_), dy, x, p.value(weight_),
                         cache.mean.view(), cache.rstd.view());
    else
      rmsnorm_backward(backend, dx, p.grad(weight_), dy, x, p.value(weight_), cache.rstd.view());
  }

 private:
  NormKind kind_ = NormKind::LayerNorm;
  double eps_ = 1e-5;
  int weight_ = -1, bias_ = -1;
};

}  // namespace nla
