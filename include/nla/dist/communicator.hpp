#pragma once
// Communicator: the collectives data-parallel training needs, over flat
// buffers of one element type, implemented three times:
//
//   SingleProcessCommunicator  rank 0 of 1; every collective is the identity
//   MpiCommunicator            host buffers (pairs with the Cpu backend)
//   NcclCommunicator           device buffers on the model's stream, bootstrapped
//                              through MPI (pairs with the Cuda backend)
//
// Training code (dist/data_parallel.hpp) is written once against this class.
// Collectives are coarse (one per gradient bucket), so the virtual call costs
// nothing measurable, and a run picks its communicator at start-up (mpirun or
// not) without templating every trainer on it.
//
// Every rank must call the same collectives in the same order with the same
// counts; a rank that stops calling them is detected by a timeout (the
// implementations abort the job with a message rather than hang).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nla/core/error.hpp"
#include "nla/core/scalar.hpp"
#include "nla/core/shape.hpp"

namespace nla {

enum class DataType { F32, F64, BF16, I32, I64, U8 };

template <class T>
constexpr DataType data_type_of();
template <>
constexpr DataType data_type_of<float>() {
  return DataType::F32;
}
template <>
constexpr DataType data_type_of<double>() {
  return DataType::F64;
}
template <>
constexpr DataType data_type_of<bf16>() {
  return DataType::BF16;
}
template <>
constexpr DataType data_type_of<std::int32_t>() {
  return DataType::I32;
}
template <>
constexpr DataType data_type_of<std::int64_t>() {
  return DataType::I64;
}
template <>
constexpr DataType data_type_of<std::uint8_t>() {
  return DataType::U8;
}

inline std::size_t size_of(DataType t) {
  switch (t) {
    case DataType::F64:
    case DataType::I64:
      return 8;
    case DataType::F32:
    case DataType::I32:
      return 4;
    case DataType::BF16:
      return 2;
    case DataType::U8:
      return 1;
  }
  return 0;
}

// Where a communicator's buffers live: host memory (MPI) or the GPU (NCCL).
enum class MemorySpace { Host, Device };

// A collective that was started and may still be running: its buffer must
// stay untouched until wait() returns. progress() advances it without
// blocking (MPI moves non-blocking collectives only inside MPI calls) and
// says whether it is complete.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual bool progress() = 0;
  virtual void wait() = 0;
};

// The pending form of a collective that already completed.
class CompletedCollective final : public PendingCollective {
 public:
  bool progress() override { return true; }
  void wait() override {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual MemorySpace memory() const = 0;
  virtual std::string name() const = 0;

  // data[i] = sum over ranks of data[i], identical on every rank. count
  // elements of `type`; bf16 sums in fp32 and rounds once.
  virtual void all_reduce_sum(void* data, index_t count, DataType type) = 0;
  // all_reduce_sum, started: it may still run while the caller computes
  // (gradient buckets during the backward pass). Every rank must start its
  // collectives in the same order. By default it completes before returning.
  virtual std::unique_ptr<PendingCollective> start_all_reduce_sum(void* data, index_t count,
                                                                  DataType type) {
    all_reduce_sum(data, count, type);
    return std::make_unique<CompletedCollective>();
  }
  // data = root's data on every rank.
  virtual void broadcast(void* data, index_t count, DataType type, int root) = 0;
  // recv = the concatenation, in rank order, of every rank's `send`;
  // counts[r] is rank r's count (known to all). send must not overlap recv.
  virtual void all_gather(const void* send, void* recv, const std::vector<index_t>& counts,
                          DataType type) = 0;
  virtual void barrier() = 0;

  // The communicator of the same ranks for host buffers (statistics, error
  // agreement): itself, or the MPI communicator a device one was built on.
  virtual Communicator& host() { return *this; }

  // The work queue whose kernels produce and consume the buffers of the next
  // collectives: a backend's native_queue(backend), a cudaStream_t for Cuda.
  // A device communicator orders its collectives after the work queued there
  // (several models, each on its own stream, can share one communicator);
  // host ones ignore it. DataParallel sets it before every collective.
  virtual void set_queue(void* queue) { (void)queue; }

  // Seconds a collective may wait for the other ranks before the job is
  // aborted with a message naming the collective; 0 waits forever.
  void set_timeout(double seconds) { timeout_s_ = seconds; }
  double timeout() const { return timeout_s_; }

 protected:
  double timeout_s_ = 300;
};

// The communicator of a run without peers.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  MemorySpace memory() const override { return MemorySpace::Host; }
  std::string name() const override { return "single"; }
  void all_reduce_sum(void*, index_t, DataType) override {}
  void broadcast(void*, index_t, DataType, int root) override {
    NLA_CHECK(root == 0, "SingleProcessCommunicator::broadcast", "root {} of 1 rank", root);
  }
  void all_gather(const void* send, void* recv, const std::vector<index_t>& counts,
                  DataType type) override {
    NLA_CHECK(counts.size() == 1, "SingleProcessCommunicator::all_gather", "{} counts for 1 rank",
              counts.size());
    const auto* s = static_cast<const unsigned char*>(send);
    std::copy(s, s + std::size_t(counts[0]) * size_of(type), static_cast<unsigned char*>(recv));
  }
  void barrier() override {}
};

// One process-wide instance, the default of everything data-parallel.
inline SingleProcessCommunicator& single_process() {
  static SingleProcessCommunicator instance;
  return instance;
}

// ---- typed helpers (host memory) ----

template <class T>
void all_reduce_sum(Communicator& comm, T* data, index_t count) {
  comm.all_reduce_sum(data, count, data_type_of<T>());
}

// Sums host scalars (statistics for logs) across ranks.
inline std::vector<double> all_reduce_sum(Communicator& comm, std::vector<double> values) {
  comm.all_reduce_sum(values.data(), index_t(values.size()), DataType::F64);
  return values;
}

// Every rank's variable-length sequence, in rank order (token ids of sampled
// explanations, bytes of an error message).
template <class T>
std::vector<std::vector<T>> all_gather_sequences(Communicator& comm, const std::vector<T>& mine) {
  const int w = comm.size();
  std::vector<std::int64_t> lengths(static_cast<std::size_t>(w), 0);
  lengths[std::size_t(comm.rank())] = std::int64_t(mine.size());
  comm.all_reduce_sum(lengths.data(), w, DataType::I64);
  std::vector<index_t> counts(lengths.begin(), lengths.end());
  index_t total = 0;
  for (index_t c : counts) total += c;
  std::vector<T> flat(static_cast<std::size_t>(total));
  comm.all_gather(mine.data(), flat.data(), counts, data_type_of<T>());
  std::vector<std::vector<T>> out;
  index_t first = 0;
  for (index_t c : counts) {
    out.emplace_back(flat.begin() + first, flat.begin() + first + c);
    first += c;
  }
  return out;
}

// The contiguous part [first, last) of n items that rank r of w owns: the
// first n % w ranks take one more.
struct Partition {
  index_t first = 0, last = 0;
  index_t size() const { return last - first; }
};
inline Partition partition(index_t n, int rank, int size) {
  const index_t base = n / size, extra = n % size;
  const index_t first = rank * base + std::min<index_t>(rank, extra);
  return {first, first + base + (rank < extra ? 1 : 0)};
}

}  // namespace nla
