#pragma once
// LayerNorm and RMSNorm over the last axis of x: [rows, d].
//
// LayerNorm:  xhat = (x - mean) * rstd,  y = xhat * w + b,  rstd = 1/sqrt(var + eps)
//   backward: dxhat = dy * w
//             dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
// RMSNorm:    y = x * rstd * w,  rstd = 1/sqrt(mean(x^2) + eps)
//   backward: dx += rstd * (dy*w - xhat * mean(dy*w * xhat)),  xhat = x * rstd
// mean and rstd are saved in the accumulation type for the backward pass.
// Input gradients accumulate (+=): the input is always the residual stream.
// Parameter gradients are summed over rows in fixed column blocks.

#include <algorithm>
#include <cmath>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/scalar.hpp"

namespace nla {
namespace cpu {

template <class T>
void layernorm_forward(Cpu&, T* y, accum_t<T>* mean, accum_t<T>* rstd, const T* x, const T* w,
                       const T* b, index_t rows, index_t d, double eps) {
  using A = accum_t<T>;
  parallel_for(rows, 8 * d, [&](index_t r) {
    const T* xr = x + r * d;
    A m = 0;
    for (index_t i = 0; i < d; ++i) m += xr[i];
    m /= d;
    A v = 0;
    for (index_t i = 0; i < d; ++i) v += (xr[i] - m) * (xr[i] - m);
    const A s = A(1) / std::sqrt(v / d + A(eps));
    T* yr = y + r * d;
    for (index_t i = 0; i < d; ++i) yr[i] = T((xr[i] - m) * s) * w[i] + b[i];
    mean[r] = m;
    rstd[r] = s;
  });
}

// Row-block partial sums for dw/db (column blocks would stride badly here:
// each row is already needed for dx), reduced in block order afterwards.
template <class T>
void layernorm_backward(Cpu&, T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                        const accum_t<T>* mean, const accum_t<T>* rstd, index_t rows, index_t d) {
  using A = accum_t<T>;
  parallel_for(rows, 12 * d, [&](index_t r) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    const A m = mean[r], s = rstd[r];
    A sum_g = 0, sum_gx = 0;
    for (index_t i = 0; i < d; ++i) {
      const A g = A(dyr[i]) * w[i];
      sum_g += g;
      sum_gx += g * (xr[i] - m) * s;
    }
    sum_g /= d;
    sum_gx /= d;
    T* dxr = dx + r * d;
    for (index_t i = 0; i < d; ++i) {
      const A xhat = (xr[i] - m) * s;
      dxr[i] += T(s * (A(dyr[i]) * w[i] - sum_g - xhat * sum_gx));
    }
  });
  constexpr index_t kBlock = 64;
  parallel_for((d + kBlock - 1) / kBlock, rows * kBlock, [&](index_t blk) {
    const index_t c0 = blk * kBlock, c1 = std::min(d, c0 + kBlock);
    A aw[kBlock] = {}, ab[kBlock] = {};
    for (index_t r = 0; r < rows; ++r) {
      const A m = mean[r], s = rstd[r];
      for (index_t c = c0; c < c1; ++c) {
        aw[c - c0] += A(dy[r * d + c]) * (x[r * d + c] - m) * s;
        ab[c - c0] += dy[r * d + c];
      }
    }
    for (index_t c = c0; c < c1; ++c) {
      dw[c] += T(aw[c - c0]);
      db[c] += T(ab[c - c0]);
    }
  });
}

template <class T>
void rmsnorm_forward(Cpu&, T* y, accum_t<T>* rstd, const T* x, const T* w, index_t rows, index_t d,
                     double eps) {
  using A = accum_t<T>;
  parallel_for(rows, 4 * d, [&](index_t r) {
    const T* xr = x + r * d;
    A ss = 0;
    for (index_t i = 0; i < d; ++i) ss += A(xr[i]) * xr[i];
    const A s = A(1) / std::sqrt(ss / d + A(eps));
    T* yr = y + r * d;
    for (index_t i = 0; i < d; ++i) yr[i] = T(xr[i] * s) * w[i];
    rstd[r] = s;
  });
}

template <class T>
void rmsnorm_backward(Cpu&, T* dx, T* dw, const T* dy, const T* x, const T* w,
                      const accum_t<T>* rstd, index_t rows, index_t d) {
  using A = accum_t<T>;
  parallel_for(rows, 8 * d, [&](index_t r) {
    const T *xr = x + r * d, *dyr = dy + r * d;
    const A s = rstd[r];
    A sum_gx = 0;
    for (index_t i = 0; i < d; ++i) sum_gx += A(dyr[i]) * w[i] * xr[i] * s;
    sum_gx /= d;
    T* dxr = dx + r * d;
    for (index_t i = 0; i < d; ++i) dxr[i] += T(s * (A(dyr[i]) * w[i] - xr[i] * s * sum_gx));
  });
  constexpr index_t kBlock = 64;
  parallel_for((d + kBlock - 1) / kBlock, rows * kBlock, [&](index_t blk) {
    const index_t c0 = blk * kBlock, c1 = std::min(d, c0 + kBlock);
    A aw[kBlock] = {};
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = c0; c < c1; ++c) aw[c - c0] += A(dy[r * d + c]) * x[r * d + c] * rstd[r];
    for (index_t c = c0; c < c1; ++c) dw[c] += T(aw[c - c0]);
  });
}

}  // namespace cpu
}  // namespace nla
