#pragma once
// Tensor<T, Backend> owns a contiguous row-major buffer in the backend's memory
// space; TensorView<T, Backend> is a non-owning (pointer, shape) pair. Ops take
// views, so a slice of a flat parameter buffer and a freshly allocated tensor
// are the same thing to them. The backend is part of both types, so passing a
// host view to a device op is a compile error, not a crash.

#include <cstdint>
#include <type_traits>
#include <utility>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"

namespace nla {

template <class T, class Backend>
class TensorView {
 public:
  using value_type = T;
  using backend_type = Backend;

  TensorView() = default;
  TensorView(T* data, Shape shape) : data_(data), shape_(shape) {}
  // A view of T converts to a view of const T.
  template <class U, class = std::enable_if_t<std::is_same<const U, T>::value>>
  TensorView(const TensorView<U, Backend>& other) : data_(other.data()), shape_(other.shape()) {}

  T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  index_t size() const { return shape_.size(); }
  index_t rows() const { return shape_.rows(); }
  index_t cols() const { return shape_.cols(); }
  bool empty() const { return data_ == nullptr || size() == 0; }

  // Same buffer read with another shape of the same size.
  TensorView reshape(Shape shape) const {
    NLA_CHECK(shape.size() == shape_.size(), "TensorView::reshape", "cannot reshape {} to {}",
              shape_, shape);
    return TensorView(data_, shape);
  }
  // Rows [begin, end) along the first axis.
  TensorView slice(index_t begin, index_t end) const {
    NLA_CHECK(0 <= begin && begin <= end && end <= shape_[0], "TensorView::slice",
              "range [{}, {}) outside first axis of {}", begin, end, shape_);
    const index_t inner = shape_[0] ? shape_.size() / shape_[0] : 0;
    Shape s = shape_;
    s = with_first(s, end - begin);
    return TensorView(data_ + begin * inner, s);
  }

 private:
  static Shape with_first(const Shape& s, index_t n) {
    switch (s.rank()) {
      case 1:
        return Shape{n};
      case 2:
        return Shape{n, s[1]};
      case 3:
        return Shape{n, s[1], s[2]};
      default:
        return Shape{n, s[1], s[2], s[3]};
    }
  }

  T* data_ = nullptr;
  Shape shape_;
};

template <class T, class Backend>
class Tensor {
 public:
  using value_type = T;
  using backend_type = Backend;
  using Buffer = typename Backend::template Buffer<T>;

  Tensor() = default;
  explicit Tensor(Shape shape) : buffer_(static_cast<std::size_t>(shape.size())), shape_(shape) {}

  T* data() { return buffer_.data(); }
  const T* data() const { return buffer_.data(); }
  const Shape& shape() const { return shape_; }
  index_t size() const { return shape_.size(); }

  // Grows the buffer only when the new shape needs more room, so that a
  // workspace reshaped every step never reallocates in steady state.
  void resize(Shape shape) {
    if (static_cast<std::size_t>(shape.size()) > buffer_.size())
      buffer_.resize(static_cast<std::size_t>(shape.size()));
    shape_ = shape;
  }

  TensorView<T, Backend> view() { return {data(), shape_}; }
  TensorView<const T, Backend> view() const { return {data(), shape_}; }
  operator TensorView<T, Backend>() { return view(); }
  operator TensorView<const T, Backend>() const { return view(); }

 private:
  Buffer buffer_;
  Shape shape_;
};

// Shape checks shared by every op front-end. `op` and `arg` name the call and
// the argument in the error, e.g. "linear_forward: weight has shape ...".
template <class View>
void check_shape(const View& v, const Shape& expected, const char* op, const char* arg) {
  NLA_CHECK(v.shape() == expected, op, "{} has shape {}, expected {}", arg, v.shape(), expected);
}
template <class View>
void check_rank(const View& v, int rank, const char* op, const char* arg) {
  NLA_CHECK(v.shape().rank() == rank, op, "{} must have rank {}, got shape {}", arg, rank,
            v.shape());
}

// True when two views share an element. Pointers into different arrays do not
// compare with <, so their addresses are compared as integers.
template <class A, class B>
bool overlaps(const A& a, const B& b) {
  if (a.empty() || b.empty()) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data()),
             b0 = reinterpret_cast<std::uintptr_t>(b.data());
  const auto a1 = a0 + std::uintptr_t(a.size()) * sizeof(*a.data()),
             b1 = b0 + std::uintptr_t(b.size()) * sizeof(*b.data());
  return a0 < b1 && b0 < a1;
}

}  // namespace nla

namespace nla {

// Input views in op signatures: `ConstView<T, B>` is TensorView<const T, B>
// but does not take part in template deduction, so a mutable view converts to
// it and T, B are deduced from the op's output argument alone.
template <class T>
struct NonDeduced {
  using type = T;
};
template <class T, class B>
using ConstView = TensorView<const typename NonDeduced<T>::type, typename NonDeduced<B>::type>;

}  // namespace nla

namespace nla {

// For ops that read any tensor as a matrix [rows, cols] (leading axes
// flattened): checks the matrix shape only.
template <class View>
void check_matrix(const View& v, index_t rows, index_t cols, const char* op, const char* arg) {
  NLA_CHECK(v.rows() == rows && v.cols() == cols, op, "{} has shape {}, expected {} rows of {}",
            arg, v.shape(), rows, cols);
}

}  // namespace nla
