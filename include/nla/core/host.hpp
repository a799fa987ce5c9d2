#pragma once
// Moving data between the host and a backend's memory. Everything above
// backend/ that must look at values on the host (validating token ids,
// summing a loss, drawing a sample) or produce them there (initialisation,
// position ids, tables) goes through these two functions, so a device
// backend plugs in by providing two kernels:
//   download(backend, T* host, const T* device, n)
//   upload(backend, T* device, const T* host, n)
// On a host-accessible backend (Cpu, Thrust's OpenMP system) to_host is a
// zero-copy view and from_host a plain copy: neither kernel is needed.

#include <algorithm>
#include <type_traits>
#include <vector>

#include "nla/core/tensor.hpp"

namespace nla {

// Host-readable values of a view: the view itself when the backend's memory
// is host-accessible, otherwise a downloaded copy it owns.
template <class T>
class HostArray {
 public:
  explicit HostArray(const T* data, index_t size) : data_(data), size_(size) {}
  explicit HostArray(std::vector<T> copy)
      : copy_(std::move(copy)), data_(copy_.data()), size_(index_t(copy_.size())) {}
  HostArray(const HostArray&) = delete;
  HostArray& operator=(const HostArray&) = delete;

  const T* data() const { return data_; }
  index_t size() const { return size_; }
  const T& operator[](index_t i) const { return data_[i]; }

 private:
  std::vector<T> copy_;
  const T* data_;
  index_t size_;
};

template <class T, class B>
HostArray<std::remove_const_t<T>> to_host(B& backend, TensorView<T, B> x) {
  using V = std::remove_const_t<T>;
  if constexpr (B::kHostAccessible) {
    (void)backend;
    return HostArray<V>(x.data(), x.size());
  } else {
    std::vector<V> copy(static_cast<std::size_t>(x.size()));
    download(backend, copy.data(), static_cast<const V*>(x.data()), x.size());
    return HostArray<V>(std::move(copy));
  }
}

// dst <- host[0, dst.size())
template <class T, class B>
void from_host(B& backend, TensorView<T, B> dst, const T* host) {
  if constexpr (B::kHostAccessible) {
    (void)backend;
    std::copy_n(host, dst.size(), dst.data());
  } else {
    upload(backend, dst.data(), host, dst.size());
  }
}

}  // namespace nla
