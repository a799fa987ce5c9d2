#pragma once
// Linear module: y = x W^T + b over parameters in a ParameterSet. Several
// projections that read the same input (q, k, v; gate, up) are registered as
// adjacent parts and run as one GEMM over their span, while each part keeps
// its own Hugging Face name.

#include <string>
#include <vector>

#include "nla/nn/parameters.hpp"
#include "nla/ops/linear.hpp"

namespace nla {

template <class B, class T>
class Linear {
 public:
  Linear() = default;
  Linear(ParameterSet<T, B>& params, const std::string& name, index_t in, index_t out, bool bias)
      : Linear(params, std::vector<std::string>{name}, in, std::vector<index_t>{out}, bias) {}

  // parts[i] is registered as "<parts[i]>.weight" [outs[i], in] (and ".bias").
  Linear(ParameterSet<T, B>& params, const std::vector<std::string>& parts, index_t in,
         const std::vector<index_t>& outs, bool bias)
      : in_(in) {
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const int id = params.add(parts[i] + ".weight", Shape{outs[i], in}, true);
      if (i == 0) weight_first_ = id;
      weight_last_ = id;
      out_ += outs[i];
    }
    if (bias)
      for (std::size_t i = 0; i < parts.size(); ++i) {
        const int id = params.add(parts[i] + ".bias", Shape{outs[i]}, false);
        if (i == 0) bias_first_ = id;
        bias_last_ = id;
      }
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  int weight_id() const { return weight_first_; }

  // x: [n, in] -> y: [n, out]
  void forward(B& backend, const ParameterSet<T, B>& p, TensorView<T, B> y,
               ConstView<T, B> x) const {
    linear_forward(backend, y, x, p.span(weight_first_, weight_last_), bias(p));
  }

  // x: [n, in] -> h = x W^T + b, y = gelu(h): [n, out] each.
  void forward_gelu(B& backend, const ParameterSet<T, B>& p, TensorView<T, B> y, TensorView<T, B> h,
                    ConstView<T, B> x) const {
    linear_gelu_forward(backend, y, h, x, p.span(weight_first_, weight_last_), bias(p));
  }

  // dx: [n, in] overwritten (empty: skipped); parameter gradients accumulate.
  // With gelu_input (the h of the forward_gelu that produced x), dx is the
  // gradient at h: the GELU's backward rides in the same GEMM.
  void backward(B& backend, ParameterSet<T, B>& p, TensorView<T, B> dx, ConstView<T, B> dy,
                ConstView<T, B> x, ConstView<T, B> gelu_input = {}) const {
    TensorView<T, B> dbias;
    if (bias_first_ >= 0) dbias = p.grad_span(bias_first_, bias_last_);
    linear_backward(backend, dx, p.grad_span(weight_first_, weight_last_), dbias, dy, x,
                    p.span(weight_first_, weight_last_), gelu_input);
  }

 private:
  TensorView<const T, B> bias(const ParameterSet<T, B>& p) const {
    return bias_first_ >= 0 ? p.span(bias_first_, bias_last_) : TensorView<const T, B>();
  }

  index_t in_ = 0, out_ = 0;
  int weight_first_ = -1, weight_last_ = -1, bias_first_ = -1, bias_last_ = -1;
};

}  // namespace nla
