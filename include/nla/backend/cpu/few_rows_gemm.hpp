#pragma once
// C[m, n] += alpha * A[m, k] B[n, k]^T for few rows of A: a Linear layer in a
// decode step (one row per sequence). A blocked GEMM first packs B into
// panels, a cost that grows with n * k however small m is (a fifth of a
// decode step at m = 16, with the weights cold in cache). This kernel reads B
// where it lies, once:
//   C[i, j] += alpha * A[i, :] . B[j, :]
// as tiles of dot products vectorised along k and reduced across the vector
// lanes at the end.
//
// Every element sums over k in one order (lanes, their reduction, then the
// tail past the last whole vector) whatever m, n or the tile it falls in, so a
// row's result does not depend on the other rows of the batch. Row-major
// operands with row strides; T is float or double (Eigen's packet math picks
// the vector width: AVX2, AVX-512, NEON or none).

#include <Eigen/Core>
#include <algorithm>

#include "nla/backend/cpu/parallel.hpp"
#include "nla/core/shape.hpp"

namespace nla {
namespace cpu {

// Up to this many rows of A gemm() takes this kernel; beyond it a blocked
// GEMM's packing pays for itself (benchmarks/ops_benchmark.cpp, GemmAbt).
inline constexpr index_t kFewRows = 16;

namespace few_rows {

namespace ei = Eigen::internal;
template <class T>
using Packet = typename ei::packet_traits<T>::type;
template <class T>
inline constexpr index_t kLanes = ei::packet_traits<T>::size;

// A thread takes kDotBlock rows of B (columns of C) at a time and covers
// them with tiles of R rows of A by kDotBlock / R rows of B: 12 accumulators
// whatever R, so that even a lone row keeps 12 independent FMA chains in
// flight (one chain would wait on the FMA latency at every step). With the
// tile's vectors of A and B that is 13 to 16 of AVX2's 16 vector registers.
inline constexpr int kDotBlock = 12;

// C[0:R, 0:C] += alpha * A[0:R, :] B[0:C, :]^T
template <class T, int R, int C>
void dot_tile(index_t k, T alpha, const T* a, index_t lda, const T* b, index_t ldb, T* c,
              index_t ldc) {
  using P = Packet<T>;
  P acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = ei::pset1<P>(T(0));
  index_t l = 0;
  for (; l + kLanes<T> <= k; l += kLanes<T>) {
    P bv[C];
    for (int j = 0; j < C; ++j) bv[j] = ei::ploadu<P>(b + j * ldb + l);
    for (int r = 0; r < R; ++r) {
      const P av = ei::ploadu<P>(a + r * lda + l);
      for (int j = 0; j < C; ++j) acc[r][j] = ei::pmadd(av, bv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) {
      T sum = ei::predux(acc[r][j]);
      for (index_t t = l; t < k; ++t) sum += a[r * lda + t] * b[j * ldb + t];
      c[r * ldc + j] += alpha * sum;
    }
}

// Rows [0, R) of A against `cols` rows of B: tiles of R x (kDotBlock / R),
// then a column at a time.
template <class T, int R>
void dot_rows(index_t cols, index_t k, T alpha, const T* a, index_t lda, const T* b, index_t ldb,
              T* c, index_t ldc) {
  constexpr int C = kDotBlock / R;
  index_t j = 0;
  for (; j + C <= cols; j += C) dot_tile<T, R, C>(k, alpha, a, lda, b + j * ldb, ldb, c + j, ldc);
  for (; j < cols; ++j) dot_tile<T, R, 1>(k, alpha, a, lda, b + j * ldb, ldb, c + j, ldc);
}

// C[0:m, 0:cols] += alpha * A[0:m, :] B[0:cols, :]^T, four rows at a time.
template <class T>
void dot_column_block(index_t m, index_t cols, index_t k, T alpha, const T* a, index_t lda,
                      const T* b, index_t ldb, T* c, index_t ldc) {
  index_t i = 0;
  for (; i + 4 <= m; i += 4)
    dot_rows<T, 4>(cols, k, alpha, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
  a += i * lda;
  c += i * ldc;
  switch (m - i) {
    case 3:
      dot_rows<T, 3>(cols, k, alpha, a, lda, b, ldb, c, ldc);
      break;
    case 2:
      dot_rows<T, 2>(cols, k, alpha, a, lda, b, ldb, c, ldc);
      break;
    case 1:
      dot_rows<T, 1>(cols, k, alpha, a, lda, b, ldb, c, ldc);
      break;
    default:
      break;
  }
}

}  // namespace few_rows

// C[m, n] += alpha * A[m, k] B[n, k]^T. Threads split the columns, so each
// reads its own rows of B once.
template <class T>
void gemm_few_rows_bt(index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda, const T* b,
                      index_t ldb, T* c, index_t ldc) {
  using namespace few_rows;
  parallel_for((n + kDotBlock - 1) / kDotBlock, 2 * m * k * kDotBlock, [&](index_t block) {
    const index_t j = block * kDotBlock, cols = std::min<index_t>(kDotBlock, n - j);
    dot_column_block(m, cols, k, alpha, a, lda, b + j * ldb, ldb, c + j, ldc);
  });
}

}  // namespace cpu
}  // namespace nla
