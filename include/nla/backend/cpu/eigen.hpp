#pragma once
// Eigen maps over row-major host buffers: the only place the CPU kernels
// spell out Eigen types.

#include <Eigen/Core>

#include "nla/core/shape.hpp"

namespace nla {
namespace cpu {

template <class T>
using RowMatrix =
    Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// [rows, cols] with a row stride (elements between consecutive rows).
template <class T>
using MatrixMap =
    Eigen::Map<std::conditional_t<std::is_const<T>::value, const RowMatrix<T>, RowMatrix<T>>,
               Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
MatrixMap<T> matrix(T* data, index_t rows, index_t cols, index_t stride) {
  return MatrixMap<T>(data, rows, cols, Eigen::OuterStride<>(stride));
}
template <class T>
MatrixMap<T> matrix(T* data, index_t rows, index_t cols) {
  return matrix(data, rows, cols, cols);
}

template <class T>
using VectorMap =
    Eigen::Map<std::conditional_t<std::is_const<T>::value,
                                  const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>,
                                  Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>>>;

template <class T>
VectorMap<T> vector(T* data, index_t n) {
  return VectorMap<T>(data, n);
}

}  // namespace cpu
}  // namespace nla
