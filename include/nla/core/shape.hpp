#pragma once
// Shape of a contiguous row-major tensor of rank 1 to 4.

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "nla/core/error.hpp"

namespace nla {

using index_t = std::int64_t;

class Shape {
 public:
  static constexpr int kMaxRank = 4;

  Shape() = default;
  Shape(std::initializer_list<index_t> dims) {
    NLA_CHECK(dims.size() >= 1 && dims.size() <= kMaxRank, "Shape", "rank must be 1..{}, got {}",
              kMaxRank, dims.size());
    for (index_t d : dims) {
      NLA_CHECK(d >= 0, "Shape", "dimension {} is negative", d);
      dims_[rank_++] = d;
    }
  }

  int rank() const { return rank_; }
  index_t operator[](int i) const { return dims_[normalize(i)]; }
  index_t size() const {
    index_t n = rank_ == 0 ? 0 : 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  // Product of all dimensions but the last: the number of rows when the
  // tensor is read as a matrix [rows, cols].
  index_t rows() const {
    return rank_ == 0 ? 0 : size() / (dims_[rank_ - 1] ? dims_[rank_ - 1] : 1);
  }
  index_t cols() const { return rank_ == 0 ? 0 : dims_[rank_ - 1]; }

  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != o.dims_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }

 private:
  int normalize(int i) const {
    int j = i < 0 ? i + rank_ : i;
    NLA_CHECK(j >= 0 && j < rank_, "Shape", "axis {} out of range for shape {}", i, str());
    return j;
  }

  std::array<index_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace nla

namespace fmt {
template <>
struct formatter<nla::Shape> : formatter<std::string> {
  template <class Context>
  auto format(const nla::Shape& s, Context& ctx) const {
    return formatter<std::string>::format(s.str(), ctx);
  }
};
}  // namespace fmt
