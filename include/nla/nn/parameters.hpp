#pragma once
// All parameters of a model in one flat buffer, with a named view per tensor.
// The optimiser, gradient clipping, checkpointing, the gradient all-reduce and
// the frozen-reference copy are each one loop over one buffer; names follow
// Hugging Face so checkpoints map tensor by tensor.
//
// Modules register their tensors (add) while the model is built, the buffer
// is allocated once (allocate), and modules then address their tensors by the
// id that add returned. Tensors added one after another are adjacent, which
// lets q/k/v or gate/up projections run as a single GEMM over the span.

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nla/core/host.hpp"
#include "nla/ops/elementwise.hpp"

namespace nla {

// Called by a backward pass each time the gradients of the flat buffer from
// `first` to its end become final (nothing later in the pass adds to them),
// so that their all-reduce can run while the pass goes on (DataParallel).
using GradientsFinal = std::function<void(index_t first)>;

struct ParameterInfo {
  std::string name;
  Shape shape;
  index_t offset;
  bool decay;  // takes weight decay: matrices yes, biases and norm gains no
};

template <class T, class B>
class ParameterSet {
 public:
  int add(const std::string& name, Shape shape, bool decay) {
    NLA_CHECK(!allocated(), "ParameterSet::add", "cannot add '{}' after allocation", name);
    NLA_CHECK(index_.count(name) == 0, "ParameterSet::add", "duplicate parameter name '{}'", name);
    const int id = static_cast<int>(infos_.size());
    infos_.push_back({name, shape, size_, decay});
    index_[name] = id;
    size_ += shape.size();
    return id;
  }

  void allocate() {
    values_ = Tensor<T, B>(Shape{size_});
    grads_ = Tensor<T, B>(Shape{size_});
  }
  bool allocated() const { return values_.size() == size_ && size_ > 0; }

  index_t size() const { return size_; }
  int count() const { return static_cast<int>(infos_.size()); }
  const std::vector<ParameterInfo>& infos() const { return infos_; }
  const ParameterInfo& info(int id) const { return infos_.at(static_cast<std::size_t>(id)); }

  int find(const std::string& name) const {
    auto it = index_.find(name);
    NLA_CHECK(it != index_.end(), "ParameterSet::find", "no parameter named '{}'", name);
    return it->second;
  }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

  TensorView<T, B> value(int id) { return {values_.data() + info(id).offset, info(id).shape}; }
  TensorView<const T, B> value(int id) const {
    return {values_.data() + info(id).offset, info(id).shape};
  }
  TensorView<T, B> grad(int id) { return {grads_.data() + info(id).offset, info(id).shape}; }

  // A view spanning tensors first..last (adjacent by construction), read as
  // [sum of first axes, trailing axes of first].
  TensorView<const T, B> span(int first, int last) const {
    return span_of(values_.data(), first, last);
  }
  TensorView<T, B> grad_span(int first, int last) { return span_of(grads_.data(), first, last); }

  TensorView<T, B> values() { return values_.view(); }
  TensorView<const T, B> values() const { return values_.view(); }
  TensorView<T, B> grads() { return grads_.view(); }
  TensorView<const T, B> grads() const { return grads_.view(); }

 private:
  template <class P>
  TensorView<P, B> span_of(P* base, int first, int last) const {
    const Shape& s0 = info(first).shape;
    index_t rows = 0;
    for (int i = first; i <= last; ++i) {
      NLA_CHECK(info(i).shape.size() / info(i).shape[0] == s0.size() / s0[0], "ParameterSet::span",
                "'{}' {} and '{}' {} differ in trailing axes", info(first).name, s0, info(i).name,
                info(i).shape);
      NLA_CHECK(i == first || info(i).offset == info(i - 1).offset + info(i - 1).shape.size(),
                "ParameterSet::span", "'{}' does not follow '{}'", info(i).name, info(i - 1).name);
      rows += info(i).shape[0];
    }
    const Shape shape = s0.rank() == 1 ? Shape{rows} : Shape{rows, s0.size() / s0[0]};
    return {base + info(first).offset, shape};
  }

  std::vector<ParameterInfo> infos_;
  std::unordered_map<std::string, int> index_;
  index_t size_ = 0;
  Tensor<T, B> values_, grads_;
};

// Initialises every tensor of dst from the tensor of the same name in src
// (a model built from another: the reconstructor's truncated copy, the
// verbalizer's extended copy). A dst matrix with more rows than its source,
// a vocabulary extended by new tokens, takes the source rows and gives each
// new row the mean of them.
template <class T, class B>
void copy_parameters_by_name(B& backend, ParameterSet<T, B>& dst, const ParameterSet<T, B>& src) {
  const char* op = "copy_parameters_by_name";
  for (int id = 0; id < dst.count(); ++id) {
    const std::string& name = dst.info(id).name;
    NLA_CHECK(src.contains(name), op, "the source has no parameter '{}'", name);
    auto to = dst.value(id);
    const auto from = src.value(src.find(name));
    if (to.shape() == from.shape()) {
      copy(backend, to, from);
      continue;
    }
    NLA_CHECK(to.shape().rank() == 2 && from.shape().rank() == 2 && to.cols() == from.cols() &&
                  to.rows() > from.rows(),
              op, "'{}' has shape {} here and {} in the source", name, to.shape(), from.shape());
    const index_t rows = from.rows(), d = from.cols();
    const auto h = to_host(backend, from);
    std::vector<T> host(h.data(), h.data() + h.size());
    std::vector<T> mean(static_cast<std::size_t>(d));
    for (index_t j = 0; j < d; ++j) {
      double m = 0;
      for (index_t r = 0; r < rows; ++r) m += double(host[r * d + j]) / double(rows);
      mean[j] = T(m);
    }
    for (index_t r = rows; r < to.rows(); ++r) host.insert(host.end(), mean.begin(), mean.end());
    from_host(backend, to, host.data());
  }
}

}  // namespace nla
