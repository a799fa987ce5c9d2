#pragma once
// LayerNorm and RMSNorm (the contract and formulas of backend/cpu/norm.hpp).
// The row statistics and the input gradient are written once, as functions
// of one row worked by `lanes` cooperating threads whose partial sums
// `sum` combines: on a GPU a warp per row (32 lanes, shuffle sums, so a
// warp's loads of a row coalesce), on Thrust's host systems one index per row
// (one lane, no combining). The parameter gradients are reduce.cuh's chunked
// column sums. Every sum has a fixed order and no two threads write the same
// element.

#include "nla/backend/cuda/cuda.cuh"
#include "nla/backend/cuda/math.cuh"
#include "nla/backend/cuda/reduce.cuh"
#include "nla/backend/cuda/rows.cuh"
#include "nla/core/scalar.hpp"

namespace nla {
namespace gpu {

template <class T>
void layernorm_forward(Cuda& backend, T* y, accum_t<T>* mean, accum_t<T>* rstd, const T* x,
                       const T* w, const T* b, index_t rows, index_t d, double eps) {
  using A = accum_t<T>;
  const A epsilon = A(eps);
  for_each_row(backend, rows, [=] NLA_HOST_DEVICE(index_t r, RowLanes lanes) {
    const T* xr = x + r * d;
    A m = 0;
    for (index_t i = lanes.lane; i < d; i += lanes.count) m += xr[i];
    m = lanes.sum(m) / A(d);
    A v = 0;
    for (index_t i = lanes.lane; i < d; i += lanes.count) v += (A(xr[i]) - m) * (A(xr[i]) - m);
    const A s = A(1) / math::sqrt(lanes.sum(v) / A(d) + epsilon);
    T* yr = y + r * d;
    for (index_t i = lanes.lane; i < d; i += lanes.count)
      yr[i] = T((A(xr[i]) - m) * s) * w[i] + b[i];
    if (lanes.lane == 0) {
      mean[r] = m;
      rstd[r] = s;
    }
  });
}

template <class T>
void layernorm_backward(Cuda& backend, T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                        const accum_t<T>* mean, const accum_t<T>* rstd, index_t rows, index_t d) {
  using A = accum_t<T>;
  for_each_row(backend, rows, [=] NLA_HOST_DEVICE(index_t r, RowLanes lanes) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    const A m = mean[r], s = rstd[r];
    A sum_g = 0, sum_gx = 0;
    for (index_t i = lanes.lane; i < d; i += lanes.count) {
      const A g = A(dyr[i]) * A(w[i]);
      sum_g += g;
      sum_gx += g * (A(xr[i]) - m) * s;
    }
    sum_g = lanes.sum(sum_g) / A(d);
    sum_gx = lanes.sum(sum_gx) / A(d);
    T* dxr = dx + r * d;
    for (index_t i = lanes.lane; i < d; i += lanes.count) {
      const A xhat = (A(xr[i]) - m) * s;
      dxr[i] += T(s * (A(dyr[i]) * A(w[i]) - sum_g - xhat * sum_gx));
    }
  });
  // dw[c] += sum_r dy[r, c] xhat[r, c] and db[c] += sum_r dy[r, c], in one
  // pass over dy.
  column_sums<SumPair<A>>(
      backend, rows, d,
      [=] NLA_HOST_DEVICE(index_t r, index_t c) {
        const A g = dy[r * d + c];
        return SumPair<A>{g * (A(x[r * d + c]) - mean[r]) * rstd[r], g};
      },
      [=] NLA_HOST_DEVICE(index_t c, SumPair<A> total) {
        dw[c] += T(total.first);
        db[c] += T(total.second);
      });
}

template <class T>
void rmsnorm_forward(Cuda& backend, T* y, accum_t<T>* rstd, const T* x, const T* w, index_t rows,
                     index_t d, double eps) {
  using A = accum_t<T>;
  const A epsilon = A(eps);
  for_each_row(backend, rows, [=] NLA_HOST_DEVICE(index_t r, RowLanes lanes) {
    const T* xr = x + r * d;
    A ss = 0;
    for (index_t i = lanes.lane; i < d; i += lanes.count) ss += A(xr[i]) * A(xr[i]);
    const A s = A(1) / math::sqrt(lanes.sum(ss) / A(d) + epsilon);
    T* yr = y + r * d;
    for (index_t i = lanes.lane; i < d; i += lanes.count) yr[i] = T(A(xr[i]) * s) * w[i];
    if (lanes.lane == 0) rstd[r] = s;
  });
}

template <class T>
void rmsnorm_backward(Cuda& backend, T* dx, T* dw, const T* dy, const T* x, const T* w,
                      const accum_t<T>* rstd, index_t rows, index_t d) {
  using A = accum_t<T>;
  for_each_row(backend, rows, [=] NLA_HOST_DEVICE(index_t r, RowLanes lanes) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    const A s = rstd[r];
    A sum_gx = 0;
    for (index_t i = lanes.lane; i < d; i += lanes.count)
      sum_gx += A(dyr[i]) * A(w[i]) * A(xr[i]) * s;
    sum_gx = lanes.sum(sum_gx) / A(d);
    T* dxr = dx + r * d;
    for (index_t i = lanes.lane; i < d; i += lanes.count)
      dxr[i] += T(s * (A(dyr[i]) * A(w[i]) - A(xr[i]) * s * sum_gx));
  });
  column_sums<A>(
      backend, rows, d,
      [=] NLA_HOST_DEVICE(index_t r, index_t c) {
        return A(dy[r * d + c]) * A(x[r * d + c]) * rstd[r];
      },
      [=] NLA_HOST_DEVICE(index_t c, A total) { dw[c] += T(total); });
}

}  // namespace gpu
}  // namespace nla
