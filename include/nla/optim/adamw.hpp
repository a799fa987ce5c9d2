#pragma once
// AdamW over a model's flat parameter buffer, with decoupled weight decay
// applied only to tensors marked `decay` (matrices, embeddings) and not to
// biases or norm gains. Moments are kept in the accumulation type (fp32 for a
// bf16 model). The update formula is beside the kernel in
// backend/cpu/optimizer.hpp.
//
// Sharded state (ZeRO stage 1): an AdamW built for the part [first, last) of
// the flat buffer holds moments (and master weights) for that part only and
// updates only it; data parallelism gives each rank one part and all-gathers
// the updated values (dist/data_parallel.hpp). The default part is the whole
// buffer.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "nla/core/scalar.hpp"
#include "nla/dist/communicator.hpp"
#include "nla/nn/parameters.hpp"

namespace nla {

struct AdamWOptions {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

template <class B, class T>
class AdamW {
 public:
  using State = accum_t<T>;
  // Mixed precision (T narrower than State, e.g. bf16 with fp32 state): the
  // update runs on a State-typed master copy of the parameters, made from
  // them at the first step, and the model receives it rounded to T. Updates
  // smaller than T's resolution then accumulate instead of vanishing.
  static constexpr bool kMasterWeights = !std::is_same<T, State>::value;

  AdamW() = default;
  AdamW(const ParameterSet<T, B>& params, AdamWOptions options)
      : AdamW(params, options, Partition{0, params.size()}) {}
  AdamW(const ParameterSet<T, B>& params, AdamWOptions options, Partition shard)
      : options_(options),
        parameter_count_(params.size()),
        shard_(shard),
        m_(Shape{shard.size()}),
        v_(Shape{shard.size()}) {
    const char* op = "AdamW";
    NLA_CHECK(shard.first >= 0 && shard.first <= shard.last && shard.last <= params.size(), op,
              "shard [{}, {}) is outside the {} parameters", shard.first, shard.last,
              params.size());
    NLA_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
              op, "betas ({}, {}) must lie in [0, 1)", options.beta1, options.beta2);
    NLA_CHECK(options.eps > 0 && options.weight_decay >= 0, op,
              "eps {} must be positive and weight_decay {} non-negative", options.eps,
              options.weight_decay);
  }

  AdamWOptions& options() { return options_; }
  const AdamWOptions& options() const { return options_; }
  std::int64_t step_count() const { return step_; }

  // One update with learning rate lr (from a schedule), using the gradients
  // in params.grads().
  void step(B& backend, ParameterSet<T, B>& params, double lr) {
    NLA_CHECK(params.size() == parameter_count_ && m_.size() == shard_.size(), "AdamW::step",
              "optimiser was built for {} parameters (state for {}), model has {}",
              parameter_count_, m_.size(), params.size());
    NLA_CHECK(std::isfinite(lr) && lr >= 0, "AdamW::step", "learning rate {} is invalid", lr);
    ++step_;
    const double bc1 = 1 - std::pow(options_.beta1, double(step_));
    const double bc2 = 1 - std::pow(options_.beta2, double(step_));
    if (kMasterWeights && master_.size() != shard_.size()) {
      master_ = Tensor<State, B>(Shape{shard_.size()});
      convert(backend, master_.data(), static_cast<const T*>(params.values().data()) + shard_.first,
              shard_.size());
    }
    update_decay_switches(backend, params);
    const index_t first = shard_.first;
    adamw_update(backend, params.values().data() + first, kMasterWeights ? master_.data() : nullptr,
                 params.grads().data() + first, m_.data(), v_.data(), shard_.size(),
                 decay_switches_.data(), decay_switches_.size(), lr, options_.beta1, options_.beta2,
                 options_.eps, options_.weight_decay, bc1, bc2);
  }

  // The part of the flat buffer this optimiser updates, and whether that is
  // less than all of it (checkpoints need the whole state: gather it first).
  Partition shard() const { return shard_; }
  index_t parameter_count() const { return parameter_count_; }
  bool sharded() const { return shard_.size() != parameter_count_; }

  // This optimiser's state restricted to `part` (inside its own shard), for
  // handing each rank its share of a full state read from a checkpoint.
  AdamW slice(B& backend, Partition part) const {
    NLA_CHECK(part.first >= shard_.first && part.first <= part.last && part.last <= shard_.last,
              "AdamW::slice", "[{}, {}) is not inside the shard [{}, {})", part.first, part.last,
              shard_.first, shard_.last);
    AdamW out;
    out.options_ = options_;
    out.parameter_count_ = parameter_count_;
    out.shard_ = part;
    out.step_ = step_;
    out.m_ = Tensor<State, B>(Shape{part.size()});
    out.v_ = Tensor<State, B>(Shape{part.size()});
    const index_t s = part.first - shard_.first;
    copy(backend, out.m_.view(), ConstView<State, B>(m_.view().slice(s, s + part.size())));
    copy(backend, out.v_.view(), ConstView<State, B>(v_.view().slice(s, s + part.size())));
    return out;
  }

  // Makes this the optimiser of the whole buffer with the given moments
  // (a checkpoint's, or the all-gathered shards).
  void set_full_state(index_t parameter_count) {
    parameter_count_ = parameter_count;
    shard_ = Partition{0, parameter_count};
    master_ = Tensor<State, B>();
  }

  // Optimiser state for checkpoints.
  Tensor<State, B>& first_moment() { return m_; }
  Tensor<State, B>& second_moment() { return v_; }
  const Tensor<State, B>& first_moment() const { return m_; }
  const Tensor<State, B>& second_moment() const { return v_; }
  void set_step_count(std::int64_t s) { step_ = s; }

 private:
  AdamWOptions options_;
  index_t parameter_count_ = 0;
  Partition shard_;
  Tensor<State, B> m_, v_;
  Tensor<State, B> master_;  // kMasterWeights only
  std::int64_t step_ = 0;
  // Where weight decay turns on or off in the shard (offsets from its
  // start), so that one kernel updates every tensor; rebuilt on the host
  // each step (one entry per tensor at most) and uploaded only when changed.
  std::vector<index_t> host_decay_switches_, next_decay_switches_;
  Tensor<index_t, B> decay_switches_;

  void update_decay_switches(B& backend, const ParameterSet<T, B>& params) {
    auto& next = next_decay_switches_;
    next.clear();
    bool decayed = false;
    for (const ParameterInfo& info : params.infos()) {
      const index_t lo = std::max(info.offset, shard_.first);
      const index_t hi = std::min(info.offset + info.shape.size(), shard_.last);
      if (lo >= hi || info.decay == decayed) continue;
      next.push_back(lo - shard_.first);
      decayed = info.decay;
    }
    if (next == host_decay_switches_ && decay_switches_.size() == index_t(next.size())) return;
    host_decay_switches_ = next;
    decay_switches_ = Tensor<index_t, B>(Shape{index_t(next.size())});
    if (!next.empty()) from_host(backend, decay_switches_.view(), next.data());
  }
};

}  // namespace nla
