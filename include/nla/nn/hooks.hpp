#pragma once
// Residual-stream hooks. Stream index s names the residual stream entering
// block s: 0 is the embedding output, k + 1 the output of block k (Hugging
// Face's hidden_states[k + 1]). A hook touches rows (flat b * t + position) of
// that stream during the forward pass and mirrors itself in the backward:
//   Read:    values[i] = stream[rows[i]]        backward: dstream[rows[i]] += grad[i]
//   Add:     stream[rows[i]] += values[i]       backward: grad[i] = dstream[rows[i]]
//   Replace: stream[rows[i]] = values[i]        backward: grad[i] = dstream[rows[i]],
//                                                         dstream[rows[i]] = 0
//   AddNormScaled: with h = stream[rows[i]] before the hook, v = values[i],
//            stream[rows[i]] = h + |h| v        backward: with g = dstream[rows[i]],
//                                                         grad[i] = |h| g,
//                                                         dstream[rows[i]] = g + (v . g) h / |h|
// So `grad` is an input of the backward for Read (the gradient of whatever
// consumed the read vectors) and an output for the others (the gradient with
// respect to the injected vectors); leave it empty when not needed. Extraction
// is Read, injection into the verbalizer's slot is Replace at stream 0,
// steering is Add or, scaled to each row's own norm (v = alpha * unit
// direction, nla/steer/steering.hpp), AddNormScaled.

#include <cmath>
#include <vector>

#include "nla/core/check.hpp"
#include "nla/core/host.hpp"
#include "nla/core/tensor.hpp"
#include "nla/ops/elementwise.hpp"

namespace nla {

enum class HookAction { Read, Add, Replace, AddNormScaled };

template <class T, class B>
struct StreamHook {
  index_t stream = 0;
  HookAction action = HookAction::Read;
  std::vector<index_t> rows;  // flat row b * t + position in [batch * t]
  TensorView<T, B> values;    // [rows.size(), d]
  TensorView<T, B> grad;      // [rows.size(), d] or empty
  // [rows.size(), d] or empty. AddNormScaled's backward needs the rows as they
  // were before the hook (h above), which the stream no longer holds, so its
  // forward copies them here; required only if the backward pass will run.
  // (Initialised here so that brace-initialising the first five fields stays
  // warning-free.)
  TensorView<T, B> saved{};
};

template <class T, class B>
using Hooks = std::vector<StreamHook<T, B>>;

namespace detail {

template <class T, class B>
void check_hook(B& backend, const StreamHook<T, B>& h, index_t n, index_t d, index_t max_stream) {
  const char* op = "StreamHook";
  NLA_CHECK(h.stream >= 0 && h.stream <= max_stream, op, "stream index {} is outside [0, {}]",
            h.stream, max_stream);
  check_shape(h.values, Shape{static_cast<index_t>(h.rows.size()), d}, op, "values");
  NLA_CHECK(h.grad.empty() || h.grad.shape() == h.values.shape(), op,
            "grad has shape {}, expected {}", h.grad.shape(), h.values.shape());
  NLA_CHECK(h.saved.empty() || h.saved.shape() == h.values.shape(), op,
            "saved has shape {}, expected {}", h.saved.shape(), h.values.shape());
  for (std::size_t i = 0; i < h.rows.size(); ++i)
    NLA_CHECK(h.rows[i] >= 0 && h.rows[i] < n, op, "rows[{}] = {} is outside [0, {})", i, h.rows[i],
              n);
  if (h.action != HookAction::Read) check_finite(backend, h.values, op, "values");
}

// |x| of one row x: [d], summed in double whatever T is, so the norm that
// scales a steering vector is exact to fp32 or better.
template <class T, class B>
double row_norm(B& backend, const T* x, index_t d) {
  return std::sqrt(sum_of_squares(backend, x, d));
}

// a . b of two rows [d] in double. Only AddNormScaled's backward needs it, so
// it reads the rows on the host (zero-copy on host-accessible backends)
// rather than asking every backend for a dot kernel.
template <class T, class B>
double row_dot(B& backend, const T* a, const T* b, index_t d) {
  const auto ha = to_host(backend, ConstView<T, B>(a, Shape{d}));
  const auto hb = to_host(backend, ConstView<T, B>(b, Shape{d}));
  double s = 0;
  for (index_t c = 0; c < d; ++c) s += double(ha[c]) * double(hb[c]);
  return s;
}

}  // namespace detail

// stream: [n, d]
template <class T, class B>
void apply_hooks_forward(B& backend, const Hooks<T, B>* hooks, index_t index,
                         TensorView<T, B> stream) {
  if (!hooks) return;
  const index_t d = stream.cols();
  for (const auto& h : *hooks) {
    if (h.stream != index) continue;
    for (std::size_t i = 0; i < h.rows.size(); ++i) {
      T* row = stream.data() + h.rows[i] * d;
      T* value = h.values.data() + static_cast<index_t>(i) * d;
      switch (h.action) {
        case HookAction::Read:
          copy_rows(backend, value, d, row, d, 1, d);
          break;
        case HookAction::Add:
          axpy(backend, row, value, d, T(1));
          break;
        case HookAction::Replace:
          copy_rows(backend, row, d, value, d, 1, d);
          break;
        case HookAction::AddNormScaled: {
          // row += |row| * value, |row| taken before the add.
          if (!h.saved.empty())
            copy_rows(backend, h.saved.data() + static_cast<index_t>(i) * d, d,
                      static_cast<const T*>(row), d, 1, d);
          const double norm = detail::row_norm(backend, static_cast<const T*>(row), d);
          axpy(backend, row, static_cast<const T*>(value), d, T(norm));
          break;
        }
      }
    }
  }
}

// dstream: [n, d], the gradient w.r.t. the stream after the hooks ran.
template <class T, class B>
void apply_hooks_backward(B& backend, const Hooks<T, B>* hooks, index_t index,
                          TensorView<T, B> dstream) {
  if (!hooks) return;
  const index_t d = dstream.cols();
  for (auto it = hooks->rbegin(); it != hooks->rend(); ++it) {
    const auto& h = *it;
    if (h.stream != index) continue;
    // Rows in reverse too, so a row listed twice unwinds in the right order.
    for (std::size_t i = h.rows.size(); i-- > 0;) {
      T* row = dstream.data() + h.rows[i] * d;
      T* grad = h.grad.empty() ? nullptr : h.grad.data() + static_cast<index_t>(i) * d;
      if (h.action == HookAction::Read) {
        if (grad) axpy(backend, row, static_cast<const T*>(grad), d, T(1));
        continue;
      }
      if (h.action == HookAction::AddNormScaled) {
        // out = h + |h| v  =>  d out / d h = I + v h^T / |h|, d out / d v = |h| I, so
        //   dh = g + (v . g) h / |h|,  dv = |h| g   (g = dstream row: [d]).
        // A zero row has no direction; its subgradient is taken as g alone.
        NLA_CHECK(!h.saved.empty(), "StreamHook",
                  "the AddNormScaled hook at stream {} needs `saved` ([{}, {}]) for its backward "
                  "pass",
                  h.stream, h.rows.size(), d);
        const T* before = h.saved.data() + static_cast<index_t>(i) * d;
        const T* value = h.values.data() + static_cast<index_t>(i) * d;
        const double norm = detail::row_norm(backend, before, d);
        const double vg = detail::row_dot(backend, value, static_cast<const T*>(row), d);
        if (grad) {
          copy_rows(backend, grad, d, static_cast<const T*>(row), d, 1, d);
          scale(backend, grad, d, T(norm));
        }
        if (norm > 0) axpy(backend, row, before, d, T(vg / norm));
        continue;
      }
      if (grad) copy_rows(backend, grad, d, static_cast<const T*>(row), d, 1, d);
      if (h.action == HookAction::Replace) fill(backend, row, d, T(0));
    }
  }
}

}  // namespace nla
