#pragma once
// Data parallelism over a Communicator: every rank holds the whole model,
// takes its slice of each global batch, and after the backward pass
//
//   g = sum_r (w_r / sum_s w_s) g_r        w_r: rank r's weight (1, or its token count)
//
// is all-reduced in buckets, clipped by its global norm and applied by the
// same optimiser step on every rank, so the replicas stay identical.
// backward_and_reduce starts each bucket's all-reduce as soon as the
// backward pass has finished the layers it holds (the top layers' buckets
// travel while the lower layers compute); reduce_gradients reduces after a
// finished pass. Both give the same sums bit for bit. With
// the rank-ordered reduction of MpiCommunicator, w ranks with batch B give
// bit for bit what one process gives when it sums the gradients of w
// micro-batches of B in order (tests/dist).
//
// Optimiser-state sharding (ZeRO stage 1, options.shard_optimizer): rank r
// keeps AdamW moments (and fp32 master weights) for the part
// partition(n, r, w) of the flat buffer only, steps that part, and the
// updated parts are all-gathered. Optimiser memory falls from 2n (3n with
// master weights) state values per rank to 2n / w (3n / w); communication grows by
// one all-gather of the parameters (n values) per step.
//
// Errors: run_local wraps a rank's local work (forward, loss, backward); an
// exception on any rank is rethrown on every rank with the rank and the
// message, so all ranks stop together at the next agreement point instead of
// leaving the others waiting in a collective. A rank that dies outside such a
// region is caught by the communicator's collective timeout.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "nla/dist/communicator.hpp"
#include "nla/nn/parameters.hpp"
#include "nla/optim/adamw.hpp"
#include "nla/optim/clip.hpp"

namespace nla {

// Time and volume of the gradient and parameter collectives since the last
// reset, shared by every copy of a DataParallel (the trainers hold copies).
struct CommunicationStats {
  double seconds = 0;  // spent in the communicator's calls: what overlap did not hide
  double bytes = 0;    // per rank, as handed to the communicator
  index_t collectives = 0;
};

struct DataParallelOptions {
  // Elements per gradient all-reduce (16 MB of fp32): bounds the
  // communicator's staging memory, and how soon during the backward pass the
  // first bucket can leave.
  index_t bucket_elements = index_t(1) << 22;
  bool shard_optimizer = false;  // ZeRO stage 1
};

class DataParallel {
 public:
  // One process: every collective is the identity.
  DataParallel() : comm_(&single_process()) {}
  explicit DataParallel(Communicator& comm, DataParallelOptions options = {})
      : comm_(&comm), options_(options) {
    NLA_CHECK(options.bucket_elements > 0, "DataParallel", "bucket_elements {} must be positive",
              options.bucket_elements);
  }

  const CommunicationStats& communication() const { return *stats_; }
  void reset_communication() const { *stats_ = CommunicationStats(); }

  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }
  bool is_root() const { return comm_->rank() == 0; }
  Communicator& communicator() const { return *comm_; }
  const DataParallelOptions& options() const { return options_; }

  // This rank's rows of a global batch of n. n must split evenly, so that
  // every rank's mean gradient carries the same weight.
  Partition batch_slice(index_t n, const char* op) const {
    NLA_CHECK(n % size() == 0, op, "global batch {} does not split evenly over {} ranks", n,
              size());
    return partition(n, rank(), size());
  }

  // Runs this rank's local work, then agrees with every rank that it
  // succeeded: if any rank threw, every rank throws nla::Error(what, "rank r
  // of w: message") naming the first rank that failed.
  template <class Work>
  void run_local(const char* what, Work&& work) const {
    std::string error;
    try {
      work();
    } catch (const std::exception& e) {
      if (size() == 1) throw;
      error = e.what();
    }
    if (size() == 1) return;
    Communicator& host = comm_->host();
    std::vector<double> failed(std::size_t(size()), 0.0);
    failed[std::size_t(rank())] = error.empty() ? 0.0 : 1.0;
    failed = all_reduce_sum(host, failed);
    int first = -1;
    for (int r = size() - 1; r >= 0; --r)
      if (failed[std::size_t(r)] > 0) first = r;
    if (first < 0) return;
    const std::vector<std::uint8_t> mine(error.begin(), error.end());
    const auto messages = all_gather_sequences(host, mine);
    const auto& m = messages[std::size_t(first)];
    throw Error(what,
                fmt::format("rank {} of {}: {}", first, size(), std::string(m.begin(), m.end())));
  }

  // Runs `write` on rank 0 only (checkpoints, logs), then agrees that it
  // succeeded, so a failed write stops every rank.
  template <class Write>
  void on_root(const char* what, Write&& write) const {
    run_local(what, [&] {
      if (is_root()) write();
    });
  }

  // Sums host statistics over ranks.
  std::vector<double> sum(std::vector<double> values) const {
    return all_reduce_sum(comm_->host(), std::move(values));
  }

  // The optimiser of params for this rank: of the whole buffer, or of its
  // shard under ZeRO stage 1.
  template <class B, class T>
  AdamW<B, T> make_optimizer(const ParameterSet<T, B>& params, const AdamWOptions& o) const {
    return AdamW<B, T>(params, o, shard_of(params.size()));
  }

  // Makes an optimiser built or loaded whole into this rank's one.
  template <class B, class T>
  void adopt(B& backend, AdamW<B, T>& optimizer, const ParameterSet<T, B>& params) const {
    const Partition mine = shard_of(params.size());
    if (optimizer.shard().first == mine.first && optimizer.shard().last == mine.last) return;
    NLA_CHECK(!optimizer.sharded(), "DataParallel::adopt",
              "optimiser holds the shard [{}, {}), this rank needs [{}, {})",
              optimizer.shard().first, optimizer.shard().last, mine.first, mine.last);
    optimizer = optimizer.slice(backend, mine);
  }

  // weight_r / sum_s weight_s for this rank (collective).
  double share_of(double weight) const {
    NLA_CHECK(std::isfinite(weight) && weight > 0, "DataParallel",
              "rank {} has weight {}; weights must be positive", rank(), weight);
    return size() == 1 ? 1.0 : weight / sum({weight})[0];
  }

  // g = sum_r (weight_r / sum_s weight_s) g_r on every rank, after the
  // backward pass.
  template <class B, class T>
  void reduce_gradients(B& backend, ParameterSet<T, B>& params, double weight = 1.0) const {
    backward_and_reduce(backend, params, share_of(weight), [](const GradientsFinal&) {});
  }

  // Runs backward(on_final), a backward pass into params' gradients that
  // calls on_final(first) whenever the gradients [first, n) are final, and
  // meanwhile reduces them: each bucket inside [first, n) is scaled by this
  // rank's share and its all-reduce started, top bucket first; what is left
  // starts when the pass returns. On return g = sum_r share_r g_r on every
  // rank. Buckets are the fixed ranges [k b, (k + 1) b), started in the same
  // order on every rank whatever the pass reports, so the sums do not depend
  // on it. An exception from the pass leaves the other ranks waiting (their
  // timeout ends the job): agree on the forward pass and the loss first
  // (run_local); the backward pass adds no error of the input's.
  template <class B, class T, class Backward>
  void backward_and_reduce(B& backend, ParameterSet<T, B>& params, double share,
                           Backward&& backward) const {
    bind(backend);
    if (size() == 1) {
      backward(GradientsFinal());
      return;
    }
    NLA_CHECK(std::isfinite(share) && share > 0 && share <= 1, "DataParallel::backward_and_reduce",
              "rank {} has share {}; shares lie in (0, 1]", rank(), share);
    auto g = params.grads();
    const index_t bucket = options_.bucket_elements;
    index_t started = g.size();  // buckets from here to the end have started
    std::vector<std::unique_ptr<PendingCollective>> pending;
    const auto start_final = [&](index_t first) {
      const Timer timer(*stats_, 0);
      while (started > 0) {
        const index_t lo = (started - 1) / bucket * bucket;
        if (lo < first) break;
        if (share != 1.0) scale(backend, g.data() + lo, started - lo, T(share));
        pending.push_back(
            comm_->start_all_reduce_sum(g.data() + lo, started - lo, data_type_of<T>()));
        stats_->bytes += double((started - lo) * index_t(sizeof(T)));
        ++stats_->collectives;
        started = lo;
      }
      for (auto& p : pending) p->progress();
    };
    backward(GradientsFinal(start_final));
    start_final(0);
    const Timer timer(*stats_, 0);
    for (auto& p : pending) p->wait();
  }

  // One data-parallel update: reduce the gradients, then apply them.
  template <class B, class T>
  double update(B& backend, ParameterSet<T, B>& params, AdamW<B, T>& optimizer, double lr,
                double clip_norm, double weight = 1.0) const {
    reduce_gradients(backend, params, weight);
    return apply(backend, params, optimizer, lr, clip_norm);
  }

  // Reduced gradients: clip them by their global norm, step, and (sharded)
  // gather the updated parameters. Returns the norm before clipping,
  // identical on every rank.
  template <class B, class T>
  double apply(B& backend, ParameterSet<T, B>& params, AdamW<B, T>& optimizer, double lr,
               double clip_norm) const {
    const double norm = clip_grad_norm(backend, params, clip_norm);
    optimizer.step(backend, params, lr);
    if (optimizer.sharded()) gather_shards(backend, params.values().data(), params.size());
    return norm;
  }

  // The whole optimiser (a checkpoint holds the whole state): the optimiser
  // itself, or its shards gathered from every rank into `storage`.
  // Collective when sharded.
  template <class B, class T>
  const AdamW<B, T>& whole_optimizer(B& backend, const AdamW<B, T>& optimizer,
                                     const ParameterSet<T, B>& params,
                                     std::optional<AdamW<B, T>>& storage) const {
    if (!optimizer.sharded()) return optimizer;
    bind(backend);
    AdamW<B, T>& whole = storage.emplace(params, optimizer.options());
    whole.set_step_count(optimizer.step_count());
    using State = typename AdamW<B, T>::State;
    for (auto [from, to] : {std::pair{&optimizer.first_moment(), &whole.first_moment()},
                            std::pair{&optimizer.second_moment(), &whole.second_moment()}}) {
      const State* shard = from->data();
      comm_->all_gather(shard, to->data(), counts_of(params.size()), data_type_of<State>());
    }
    return whole;
  }

 private:
  Partition shard_of(index_t n) const {
    return options_.shard_optimizer ? partition(n, rank(), size()) : Partition{0, n};
  }

  std::vector<index_t> counts_of(index_t n) const {
    std::vector<index_t> counts;
    for (int r = 0; r < size(); ++r) counts.push_back(partition(n, r, size()).size());
    return counts;
  }

  // values[shard r] from rank r, for every r.
  template <class B, class T>
  void gather_shards(B& backend, T* values, index_t n) const {
    const Partition mine = partition(n, rank(), size());
    Tensor<T, B> own(Shape{mine.size()});
    copy(backend, own.view(),
         ConstView<T, B>(TensorView<T, B>(values + mine.first, Shape{mine.size()})));
    const Timer timer(*stats_, n * index_t(sizeof(T)));
    comm_->all_gather(own.data(), values, counts_of(n), data_type_of<T>());
    ++stats_->collectives;
  }

  struct Timer {
    CommunicationStats& stats;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    Timer(CommunicationStats& s, index_t bytes) : stats(s) { stats.bytes += double(bytes); }
    ~Timer() {
      stats.seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
  };

  // Checks that backend and communicator share a memory space, and queues
  // the communicator's device collectives behind the backend's work. One
  // rank communicates nothing, so any backend goes with any communicator.
  template <class B>
  void bind(B& backend) const {
    if (size() == 1) return;
    const MemorySpace backend_memory = B::kHostAccessible ? MemorySpace::Host : MemorySpace::Device;
    NLA_CHECK(backend_memory == comm_->memory(), "DataParallel",
              "the {} backend keeps buffers in {} memory, the {} communicator works on {} memory",
              B::kName, backend_memory == MemorySpace::Host ? "host" : "device", comm_->name(),
              comm_->memory() == MemorySpace::Host ? "host" : "device");
    comm_->set_queue(native_queue(backend));
  }

  Communicator* comm_;
  DataParallelOptions options_;
  std::shared_ptr<CommunicationStats> stats_ = std::make_shared<CommunicationStats>();
};

}  // namespace nla
