#pragma once
// Kernels behind the optimiser: one pass over a flat parameter buffer.
//   AdamW (Loshchilov & Hutter), decoupled weight decay:
//     m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2
//     p -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd * p)
// With master weights (mixed precision: T narrower than S), p is the S-typed
// master copy and params receives it rounded to T; master may be null when
// T == S.
// One pass covers a whole flat buffer of tensors, some decayed (matrices,
// embeddings) and some not (biases, norm gains): decay_switches[0, switches)
// are the strictly ascending offsets where decay turns on or off, off at 0,
// so element i is decayed when an odd number of switches are <= i.

#include <algorithm>
#include <cmath>

#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/elementwise.hpp"
#include "nla/backend/cpu/parallel.hpp"

namespace nla {
namespace cpu {

template <class T, class S>
void adamw_update(Cpu&, T* params, S* master, const T* grads, S* m, S* v, index_t n,
                  const index_t* decay_switches, index_t switches, double lr, double beta1,
                  double beta2, double eps, double weight_decay, double bias_correction1,
                  double bias_correction2) {
  const S b1 = S(beta1), b2 = S(beta2), step = S(lr / bias_correction1);
  const S inv_sqrt_bc2 = S(1.0 / std::sqrt(bias_correction2)), decay_on = S(lr * weight_decay);
  const index_t* switches_end = decay_switches + switches;
  parallel_chunks(n, [&](index_t b, index_t e) {
    // The chunk in runs of equal decay, from the first switch past b on;
    // each run is a plain loop the compiler can vectorise.
    const index_t* next = std::upper_bound(decay_switches, switches_end, b);
    bool decayed = (next - decay_switches) % 2 == 1;
    for (index_t i = b; i < e; decayed = !decayed) {
      const index_t run_end = next == switches_end ? e : std::min(e, *next++);
      const S decay = decayed ? decay_on : S(0);
      for (; i < run_end; ++i) {
        const S g = S(grads[i]);
        m[i] = b1 * m[i] + (S(1) - b1) * g;
        v[i] = b2 * v[i] + (S(1) - b2) * g * g;
        const S p = master ? master[i] : S(params[i]);
        const S updated = p - step * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + S(eps)) - decay * p;
        if (master) master[i] = updated;
        params[i] = T(updated);
      }
    }
  });
}

// sum_i x_i^2 in double, per-thread partials combined in thread order.
template <class T>
double sum_of_squares(Cpu&, const T* x, index_t n) {
  // A fixed number of chunks (not of threads) fixes the summation order.
  constexpr index_t kChunks = 64;
  double partial[kChunks] = {};
  const index_t chunk = (n + kChunks - 1) / kChunks;
  parallel_for(kChunks, chunk, [&](index_t c) {
    double s = 0;
    for (index_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i)
      s += double(x[i]) * double(x[i]);
    partial[c] = s;
  });
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace cpu
}  // namespace nla
