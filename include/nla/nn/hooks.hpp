#pragma once
// Residual-stream hooks. Stream index s names the residual stream entering
// block s: 0 is the embedding output, k + 1 the output of block k (Hugging
// Face's hidden_states[k + 1]). A hook touches rows (flat b * t + position) of
// that stream during the forward pass and mirrors itself in the backward:
//   Read:    values[i] = stream[rows[i]]        backward: dstream[rows[i]] += grad[i]
//   Add:     stream[rows[i]] += values[i]       backward: grad[i] = dstream[rows[i]]
//   Replace: stream[rows[i]] = values[i]        backward: grad[i] = dstream[rows[i]],
//                                                         dstream[rows[i]] = 0
// So `grad` is an input of the backward for Read (the gradient of whatever
// consumed the read vectors) and an output for Add/Replace (the gradient with
// respect to the injected vectors); leave it empty when not needed. Extraction
// is Read, injection into the verbalizer's slot is Replace at stream 0,
// steering is Add.

#include <vector>

#include "nla/core/check.hpp"
#include "nla/core/tensor.hpp"
#include "nla/ops/elementwise.hpp"

namespace nla {

enum class HookAction { Read, Add, Replace };

template <class T, class B>
struct StreamHook {
  index_t stream = 0;
  HookAction action = HookAction::Read;
  std::vector<index_t> rows;  // flat row b * t + position in [batch * t]
  TensorView<T, B> values;    // [rows.size(), d]
  TensorView<T, B> grad;      // [rows.size(), d] or empty
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
  for (std::size_t i = 0; i < h.rows.size(); ++i)
    NLA_CHECK(h.rows[i] >= 0 && h.rows[i] < n, op, "rows[{}] = {} is outside [0, {})", i, h.rows[i],
              n);
  if (h.action != HookAction::Read) check_finite(backend, h.values, op, "values");
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
    for (std::size_t i = 0; i < h.rows.size(); ++i) {
      T* row = dstream.data() + h.rows[i] * d;
      T* grad = h.grad.empty() ? nullptr : h.grad.data() + static_cast<index_t>(i) * d;
      if (h.action == HookAction::Read) {
        if (grad) axpy(backend, row, static_cast<const T*>(grad), d, T(1));
        continue;
      }
      if (grad) copy_rows(backend, grad, d, static_cast<const T*>(row), d, 1, d);
      if (h.action == HookAction::Replace) fill(backend, row, d, T(0));
    }
  }
}

}  // namespace nla
