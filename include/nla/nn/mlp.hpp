#pragma once
// The feed-forward half of a block.
//   Gelu:   y = W2 gelu(W1 x + b1) + b2              (GPT-2: c_fc, c_proj)
//   SwiGlu: y = Wd (silu(Wg x) * (Wu x))             (Llama: gate, up, down)
// gate and up are adjacent parameters and run as one GEMM into [n, 2 f].
// The GELU rides in the GEMMs around it (linear_gelu_forward, and
// linear_backward's gelu_input), which the Cuda backend fuses into cuBLASLt's
// epilogues.

#include <string>

#include "nla/nn/linear.hpp"
#include "nla/ops/activation.hpp"

namespace nla {

enum class MlpKind { Gelu, SwiGlu };

template <class T, class B>
struct MlpCache {
  Tensor<T, B> hidden;     // [n, f] (Gelu) or [n, 2f] (SwiGlu): pre-activation
  Tensor<T, B> activated;  // [n, f]
};

template <class T, class B>
struct MlpScratch {
  Tensor<T, B> dhidden;
  Tensor<T, B> dactivated;  // SwiGlu only
};

template <class B, class T>
class Mlp {
 public:
  Mlp() = default;
  // prefix: "transformer.h.3.mlp" or "model.layers.3.mlp"
  Mlp(ParameterSet<T, B>& params, const std::string& prefix, index_t d, index_t f, MlpKind kind,
      bool bias)
      : kind_(kind), f_(f) {
    if (kind == MlpKind::Gelu) {
      up_ = Linear<B, T>(params, prefix + ".c_fc", d, f, bias);
      down_ = Linear<B, T>(params, prefix + ".c_proj", f, d, bias);
    } else {
      up_ = Linear<B, T>(params, {prefix + ".gate_proj", prefix + ".up_proj"}, d, {f, f}, bias);
      down_ = Linear<B, T>(params, prefix + ".down_proj", f, d, bias);
    }
  }

  const Linear<B, T>& output_projection() const { return down_; }

  // x: [n, d] -> y: [n, d]
  void forward(B& backend, const ParameterSet<T, B>& p, TensorView<T, B> y, ConstView<T, B> x,
               MlpCache<T, B>& cache) const {
    const index_t n = x.rows();
    cache.hidden.resize(Shape{n, up_.out_features()});
    cache.activated.resize(Shape{n, f_});
    if (kind_ == MlpKind::Gelu) {
      up_.forward_gelu(backend, p, cache.activated.view(), cache.hidden.view(), x);
    } else {
      up_.forward(backend, p, cache.hidden.view(), x);
      swiglu_forward(backend, cache.activated.view(), cache.hidden.view());
    }
    down_.forward(backend, p, y, cache.activated.view());
  }

  // dx: [n, d] overwritten.
  void backward(B& backend, ParameterSet<T, B>& p, TensorView<T, B> dx, ConstView<T, B> dy,
                ConstView<T, B> x, const MlpCache<T, B>& cache, MlpScratch<T, B>& s) const {
    const index_t n = x.rows();
    s.dhidden.resize(Shape{n, up_.out_features()});
    if (kind_ == MlpKind::Gelu) {
      down_.backward(backend, p, s.dhidden.view(), dy, cache.activated.view(), cache.hidden.view());
    } else {
      s.dactivated.resize(Shape{n, f_});
      down_.backward(backend, p, s.dactivated.view(), dy, cache.activated.view());
      swiglu_backward(backend, s.dhidden.view(), s.dactivated.view(), cache.hidden.view());
    }
    up_.backward(backend, p, dx, s.dhidden.view(), x);
  }

 private:
  MlpKind kind_ = MlpKind::Gelu;
  index_t f_ = 0;
  Linear<B, T> up_, down_;
};

}  // namespace nla
