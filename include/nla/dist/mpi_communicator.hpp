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
    NLA_CHECK(MPI_Comm_dup(comm, &comm_) == MPI_SUCCESS, "MpiCommunicator", "MPI_Comm_dup failed");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override {
    MPI_Comm_free(&comm_);
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
    if (size_ == 1 || count == 0) return;
    const MPI_Datatype mt = mpi_type(type);
    if (reduction_ == Reduction::Native && type != DataType::BF16) {
      MPI_Request request;
      check(MPI_Iallreduce(MPI_IN_PLACE, data, to_int(count), mt, MPI_SUM, comm_, &request),
            "all_reduce");
      wait(request, "all_reduce");
      return;
    }
    const std::size_t bytes = size_of(type);
    const Partition mine = partition(count, rank_, size_);
    std::vector<int> send_counts(static_cast<std::size_t>(size_)),
        send_displs(static_cast<std::size_t>(size_)), recv_counts(static_cast<std::size_t>(size_)),
        recv_displs(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      const Partition p = partition(count, r, size_);
      send_counts[r] = to_int(p.size());
      send_displs[r] = to_int(p.first);
      recv_counts[r] = to_int(mine.size());
      recv_displs[r] = to_int(r * mine.size());
    }
    staging_.resize(static_cast<std::size_t>(size_) * std::size_t(mine.size()) * bytes);
    MPI_Request request;
    check(MPI_Ialltoallv(data, send_counts.data(), send_displs.data(), mt, staging_.data(),
                         recv_counts.data(), recv_displs.data(), mt, comm_, &request),
          "all_reduce (all-to-all)");
    wait(request, "all_reduce (all-to-all)");
    unsigned char* own = static_cast<unsigned char*>(data) + std::size_t(mine.first) * bytes;
    switch (type) {
      case DataType::F32:
        sum_in_rank_order<float, float>(own, mine.size());
        break;
      case DataType::F64:
        sum_in_rank_order<double, double>(own, mine.size());
        break;
      case DataType::BF16:
        sum_in_rank_order<bf16, float>(own, mine.size());
        break;
      case DataType::I32:
        sum_in_rank_order<std::int32_t, std::int32_t>(own, mine.size());
        break;
      case DataType::I64:
        sum_in_rank_order<std::int64_t, std::int64_t>(own, mine.size());
        break;
      case DataType::U8:
        sum_in_rank_order<std::uint8_t, std::uint8_t>(own, mine.size());
        break;
    }
    std::vector<int> counts(static_cast<std::size_t>(size_)),
        displs(static_cast<std::size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      const Partition p = partition(count, r, size_);
      counts[r] = to_int(p.size());
      displs[r] = to_int(p.first);
    }
    check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(),
                          mt, comm_, &request),
          "all_reduce (all-gather)");
    wait(request, "all_reduce (all-gather)");
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

  // own[i] = sum over r, in order, of staging_[r][i]; Acc: the type the sum
  // runs in (fp32 for bf16).
  template <class E, class Acc>
  void sum_in_rank_order(unsigned char* own, index_t n) {
    const E* copies = reinterpret_cast<const E*>(staging_.data());
    E* out = reinterpret_cast<E*>(own);
    for (index_t i = 0; i < n; ++i) {
      Acc acc = Acc(copies[i]);
      for (int r = 1; r < size_; ++r) acc += Acc(copies[std::size_t(r) * std::size_t(n) + i]);
      out[i] = E(acc);
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
  }

  Reduction reduction_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
  std::vector<unsigned char> staging_;
};

}  // namespace nla
