#pragma once
// LayerNorm and RMSNorm (the contract and formulas of backend/cpu/norm.hpp):
// one index per row for the statistics and the input gradient, one index per
// column for the parameter gradients, so every sum has a fixed order and no
// two indices write the same element.

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

template <class T>
void layernorm_forward(Cuda& backend, T* y, accum_t<T>* mean, accum_t<T>* rstd, const T* x,
                       const T* w, const T* b, index_t rows, index_t d, double eps) {
  using A = accum_t<T>;
  const A epsilon = A(eps);
  for_each_index(backend, rows, [=] NLA_HOST_DEVICE(index_t r) {
    const T* xr = x + r * d;
    A m = 0;
    for (index_t i = 0; i < d; ++i) m += xr[i];
    m /= A(d);
    A v = 0;
    for (index_t i = 0; i < d; ++i) v += (A(xr[i]) - m) * (A(xr[i]) - m);
    const A s = A(1) / math::sqrt(v / A(d) + epsilon);
    T* yr = y + r * d;
    for (index_t i = 0; i < d; ++i) yr[i] = T((A(xr[i]) - m) * s) * w[i] + b[i];
    mean[r] = m;
    rstd[r] = s;
  });
}

template <class T>
void layernorm_backward(Cuda& backend, T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                        const accum_t<T>* mean, const accum_t<T>* rstd, index_t rows, index_t d) {
  using A = accum_t<T>;
  for_each_index(backend, rows, [=] NLA_HOST_DEVICE(index_t r) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    const A m = mean[r], s = rstd[r];
    A sum_g = 0, sum_gx = 0;
    for (index_t i = 0; i < d; ++i) {
      const A g = A(dyr[i]) * A(w[i]);
      sum_g += g;
      sum_gx += g * (A(xr[i]) - m) * s;
    }
    sum_g /= A(d);
    sum_gx /= A(d);
    T* dxr = dx + r * d;
    for (index_t i = 0; i < d; ++i) {
      const A xhat = (A(xr[i]) - m) * s;
      dxr[i] += T(s * (A(dyr[i]) * A(w[i]) - sum_g - xhat * sum_gx));
    }
  });
  for_each_index(backend, d, [=] NLA_HOST_DEVICE(index_t c) {
    A aw = 0, ab = 0;
    for (index_t r = 0; r < rows; ++r) {
      aw += A(dy[r * d + c]) * (A(x[r * d + c]) - mean[r]) * rstd[r];
      ab += A(dy[r * d + c]);
    }
    dw[c] += T(aw);
    db[c] += T(ab);
  });
}

template <class T>
void rmsnorm_forward(Cuda& backend, T* y, accum_t<T>* rstd, const T* x, const T* w, index_t rows,
                     index_t d, double eps) {
  using A = accum_t<T>;
  const A epsilon = A(eps);
  for_each_index(backend, rows, [=] NLA_HOST_DEVICE(index_t r) {
    const T* xr = x + r * d;
    A ss = 0;
    for (index_t i = 0; i < d; ++i) ss += A(xr[i]) * A(xr[i]);
    const A s = A(1) / math::sqrt(ss / A(d) + epsilon);
    T* yr = y + r * d;
    for (index_t i = 0; i < d; ++i) yr[i] = T(A(xr[i]) * s) * w[i];
    rstd[r] = s;
  });
}

template <class T>
void rmsnorm_backward(Cuda& backend, T* dx, T* dw, const T* dy, const T* x, const T* w,
                      const accum_t<T>* rstd, index_t rows, index_t d) {
  using A = accum_t<T>;
  for_each_index(backend, rows, [=] NLA_HOST_DEVICE(index_t r) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    const A s = rstd[r];
    A sum_gx = 0;
    for (index_t i = 0; i < d; ++i) sum_gx += A(dyr[i]) * A(w[i]) * A(xr[i]) * s;
    sum_gx /= A(d);
    T* dxr = dx + r * d;
    for (index_t i = 0; i < d; ++i) dxr[i] += T(s * (A(dyr[i]) * A(w[i]) - A(xr[i]) * s * sum_gx));
  });
  for_each_index(backend, d, [=] NLA_HOST_DEVICE(index_t c) {
    A aw = 0;
    for (index_t r = 0; r < rows; ++r) aw += A(dy[r * d + c]) * A(x[r * d + c]) * rstd[r];
    dw[c] += T(aw);
  });
}

}  // namespace gpu
}  // namespace nla
