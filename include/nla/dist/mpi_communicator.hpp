#pragma once
// MpiCommunicator: the Communicator over MPI, on host buffers.
//
// all_reduce_sum sums in rank order by default (Reduction::RankOrdered):
//
//   1. all-to-all: rank r receives chunk r of every rank's buffer   [w, n / w]
//   2. rank r sums its w copies in the order 0, 1, ..., w - 1
//   3. all-gather: every rank receives every summed chunk            [n]
//
// Element i is then ((x_0 + x_1) + x_2) + ... on every rank whatever
// algorithm the MPI library picks, so replicas never drift apart and w ranks
// reproduce bit for bit one process that sums w micro-batch gradients in
// order. It moves the same 2 (w - 1) / w * n elements per rank as a ring
// all-reduce. Reduction::Native calls MPI_Iallreduce instead (the library's
// fastest algorithm, whose summation order is its own).
//
// start_all_reduce_sum runs the same steps as a pending collective, so that
// gradient buckets reduce while the backward pass computes. The all-to-alls
// and the all-gathers run on two duplicates of the communicator and each
// starts in ticket (start) order on every rank, so that every rank matches
// the same operations however their completions interleave.
//
// Every collective is non-blocking and polled against the timeout: a rank
// whose peers stopped calling collectives (an exception, a crash, a
// deadlock) prints which collective it was waiting in and aborts the job,
// instead of hanging until the scheduler's limit.

// The C API only: MPI's deprecated C++ bindings do not compile warning-free.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "nla/dist/communicator.hpp"

namespace nla {

class MpiCommunicator final : public Communicator {
 public:
  enum class Reduction { RankOrdered, Native };

  // Initialises MPI if nothing has yet (and then finalises it when destroyed),
  // and works on a duplicate of `comm`, so that its collectives never match a
  // user's messages.
  explicit MpiCommunicator(Reduction reduction = Reduction::RankOrdered,
                           MPI_Comm comm = MPI_COMM_WORLD)
      : reduction_(reduction) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      NLA_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS,
                "MpiCommunicator", "MPI_Init_thread failed");
      owns_mpi_ = true;
    }
    for (MPI_Comm* c : {&comm_, &gather_comm_}) {
      NLA_CHECK(MPI_Comm_dup(comm, c) == MPI_SUCCESS, "MpiCommunicator", "MPI_Comm_dup failed");
      MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN);
    }
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    MPI_Comm_free(&comm_);
    MPI_Comm_free(&gather_comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MemorySpace memory() const override { return MemorySpace::Host; }
  std::string name() const override {
    return reduction_ == Reduction::RankOrdered ? "mpi" : "mpi-native";
  }
  MPI_Comm handle() const { return comm_; }

  void all_reduce_sum(void* data, index_t count, DataType type) override {
    start_all_reduce_sum(data, count, type)->wait();
  }

  std::unique_ptr<PendingCollective> start_all_reduce_sum(void* data, index_t count,
                                                          DataType type) override {
    if (size_ == 1 || count == 0) return std::make_unique<CompletedCollective>();
    if (reduction_ == Reduction::Native && type != DataType::BF16)
      return std::make_unique<NativeSum>(*this, data, count, type);
    return std::make_unique<RankOrderedSum>(*this, data, count, type);
  }

  void broadcast(void* data, index_t count, DataType type, int root) override {
    NLA_CHECK(root >= 0 && root < size_, "MpiCommunicator::broadcast", "root {} of {} ranks", root,
              size_);
    if (size_ == 1 || count == 0) return;
    MPI_Request request;
    check(MPI_Ibcast(data, to_int(count), mpi_type(type), root, comm_, &request), "broadcast");
    wait(request, "broadcast");
  }

  void all_gather(const void* send, void* recv, const std::vector<index_t>& counts,
                  DataType type) override {
    NLA_CHECK(int(counts.size()) == size_, "MpiCommunicator::all_gather", "{} counts for {} ranks",
              counts.size(), size_);
    std::vector<int> c(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
    index_t first = 0;
    for (int r = 0; r < size_; ++r) {
      c[r] = to_int(counts[r]);
      displs[r] = to_int(first);
      first += counts[r];
    }
    MPI_Request request;
    check(MPI_Iallgatherv(send, c[rank_], mpi_type(type), recv, c.data(), displs.data(),
                          mpi_type(type), comm_, &request),
          "all_gather");
    wait(request, "all_gather");
  }

  void barrier() override {
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "barrier");
    wait(request, "barrier");
  }

 private:
  static MPI_Datatype mpi_type(DataType t) {
    switch (t) {
      case DataType::F32:
        return MPI_FLOAT;
      case DataType::F64:
        return MPI_DOUBLE;
      case DataType::BF16:
        return MPI_UINT16_T;  // moved as bits, summed here in fp32
      case DataType::I32:
        return MPI_INT32_T;
      case DataType::I64:
        return MPI_INT64_T;
      case DataType::U8:
        return MPI_UINT8_T;
    }
    return MPI_BYTE;
  }

  static int to_int(index_t n) {
    NLA_CHECK(n >= 0 && n <= INT_MAX, "MpiCommunicator",
              "{} elements exceed MPI's int counts; reduce in buckets", n);
    return int(n);
  }

  // MPI_Iallreduce, polled.
  class NativeSum final : public PendingCollective {
   public:
    NativeSum(MpiCommunicator& c, void* data, index_t count, DataType type) : c_(c) {
      c.check(MPI_Iallreduce(MPI_IN_PLACE, data, to_int(count), mpi_type(type), MPI_SUM, c.comm_,
                             &request_),
              "all_reduce");
    }
    // A collective writes into its buffer until it completes: a pending one
    // is finished before it goes (errors are the owner's to see in wait()).
    ~NativeSum() override {
      try {
        wait();
      } catch (...) {
      }
    }
    bool progress() override {
      int done = request_ == MPI_REQUEST_NULL;
      if (!done) c_.check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "all_reduce");
      return done;
    }
    void wait() override {
      if (request_ != MPI_REQUEST_NULL) c_.wait(request_, "all_reduce");
    }

   private:
    MpiCommunicator& c_;
    MPI_Request request_ = MPI_REQUEST_NULL;
  };

  // The rank-ordered sum as a pending collective: all-to-all (started at
  // once) -> sum of this rank's chunk -> all-gather (started in ticket order
  // by advance()). Registered with the communicator while it runs.
  class RankOrderedSum final : public PendingCollective {
   public:
    RankOrderedSum(MpiCommunicator& c, void* data, index_t count, DataType type)
        : c_(c), data_(static_cast<unsigned char*>(data)), type_(type), count_(count) {
      const std::size_t w = static_cast<std::size_t>(c.size_);
      const Partition mine = partition(count, c.rank_, c.size_);
      std::vector<int> send_counts(w), send_displs(w), recv_counts(w), recv_displs(w);
      counts_.resize(w);
      displs_.resize(w);
      for (int r = 0; r < c.size_; ++r) {
        const Partition p = partition(count, r, c.size_);
        counts_[r] = send_counts[r] = to_int(p.size());
        displs_[r] = send_displs[r] = to_int(p.first);
        recv_counts[r] = to_int(mine.size());
        recv_displs[r] = to_int(r * mine.size());
      }
      staging_.resize(w * std::size_t(mine.size()) * size_of(type));
      const MPI_Datatype mt = mpi_type(type);
      c.check(MPI_Ialltoallv(data, send_counts.data(), send_displs.data(), mt, staging_.data(),
                             recv_counts.data(), recv_displs.data(), mt, c.comm_, &request_),
              "all_reduce (all-to-all)");
      c.running_.push_back(this);
    }
    ~RankOrderedSum() override {
      try {
        wait();
      } catch (...) {
      }
      c_.running_.remove(this);
    }

    bool progress() override {
      c_.advance();
      return phase_ == Phase::Done;
    }
    void wait() override {
      const auto start = std::chrono::steady_clock::now();
      for (long polls = 0; !progress(); ++polls) c_.pause(start, polls, what());
    }

   private:
    friend class MpiCommunicator;
    enum class Phase { AllToAll, Summed, AllGather, Done };

    const char* what() const {
      return phase_ == Phase::AllGather ? "all_reduce (all-gather)" : "all_reduce (all-to-all)";
    }

    // One step without blocking; may_gather: every earlier ticket has
    // started its all-gather.
    void step(bool may_gather) {
      int done = 0;
      if (phase_ == Phase::AllToAll) {
        c_.check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), what());
        if (!done) return;
        sum();
        phase_ = Phase::Summed;
      }
      if (phase_ == Phase::Summed && may_gather) {
        c_.check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data_, counts_.data(),
                                 displs_.data(), mpi_type(type_), c_.gather_comm_, &request_),
                 "all_reduce (all-gather)");
        phase_ = Phase::AllGather;
      }
      if (phase_ == Phase::AllGather) {
        c_.check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), what());
        if (done) phase_ = Phase::Done;
      }
    }

    void sum() {
      const Partition mine = partition(count_, c_.rank_, c_.size_);
      unsigned char* own = data_ + std::size_t(mine.first) * size_of(type_);
      switch (type_) {
        case DataType::F32:
          return sum_in_rank_order<float, float>(own, mine.size());
        case DataType::F64:
          return sum_in_rank_order<double, double>(own, mine.size());
        case DataType::BF16:
          return sum_in_rank_order<bf16, float>(own, mine.size());
        case DataType::I32:
          return sum_in_rank_order<std::int32_t, std::int32_t>(own, mine.size());
        case DataType::I64:
          return sum_in_rank_order<std::int64_t, std::int64_t>(own, mine.size());
        case DataType::U8:
          return sum_in_rank_order<std::uint8_t, std::uint8_t>(own, mine.size());
      }
    }

    // own[i] = sum over r, in order, of staging_[r][i]; Acc: the type the
    // sum runs in (fp32 for bf16).
    template <class E, class Acc>
    void sum_in_rank_order(unsigned char* own, index_t n) {
      const E* copies = reinterpret_cast<const E*>(staging_.data());
      E* out = reinterpret_cast<E*>(own);
      for (index_t i = 0; i < n; ++i) {
        Acc acc = Acc(copies[i]);
        for (int r = 1; r < c_.size_; ++r) acc += Acc(copies[std::size_t(r) * std::size_t(n) + i]);
        out[i] = E(acc);
      }
    }

    MpiCommunicator& c_;
    unsigned char* data_;
    DataType type_;
    index_t count_;
    std::vector<int> counts_, displs_;
    std::vector<unsigned char> staging_;
    MPI_Request request_ = MPI_REQUEST_NULL;
    Phase phase_ = Phase::AllToAll;
  };

  // Steps every running rank-ordered sum in ticket order; an all-gather
  // starts only once every earlier one has.
  void advance() {
    bool may_gather = true;
    for (auto it = running_.begin(); it != running_.end();) {
      RankOrderedSum& op = **it;
      op.step(may_gather);
      may_gather = may_gather && op.phase_ != RankOrderedSum::Phase::AllToAll &&
                   op.phase_ != RankOrderedSum::Phase::Summed;
      it = op.phase_ == RankOrderedSum::Phase::Done ? running_.erase(it) : std::next(it);
    }
  }

  void check(int status, const char* what) const {
    if (status == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(status, text, &length);
    NLA_FAIL("MpiCommunicator", "rank {} of {}: {} failed: {}", rank_, size_, what,
             std::string(text, std::size_t(length)));
  }

  // Polls the request; yields the core between polls (ranks may share cores
  // with each other's OpenMP threads), and aborts the job on timeout.
  void wait(MPI_Request& request, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    for (long polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      pause(start, polls, what);
    }
  }

  // Between two polls of a collective that started at `start`.
  void pause(std::chrono::steady_clock::time_point start, long polls, const char* what) {
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timeout_s_ > 0 && waited > timeout_s_) {
      std::fprintf(stderr,
                   "nla: rank %d of %d: %s timed out after %.0f s waiting for the other ranks "
                   "(one of them failed or stopped calling collectives); aborting the job\n",
                   rank_, size_, what, waited);
      std::fflush(stderr);
      MPI_Abort(comm_, 3);
    }
    if (polls < 1000)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

  Reduction reduction_;
  MPI_Comm comm_ = MPI_COMM_NULL, gather_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::list<RankOrderedSum*> running_;  // started, not yet complete, in ticket order
};

}  // namespace nla
