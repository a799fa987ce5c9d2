#pragma once
// NcclCommunicator: the Communicator over NCCL, on device buffers, enqueued
// on the model's stream (pairs with the Cuda backend; set_queue(stream), which
// DataParallel calls with the stream of the model it reduces).
//
// Bootstrap: an MpiCommunicator launches and numbers the ranks; rank 0's
// ncclUniqueId is broadcast over it, and each rank takes GPU
// (local rank mod GPUs on its node). The MPI communicator also serves the
// host-side collectives (statistics, error agreement: host()).
//
// NCCL refuses two ranks on one GPU, which is how a single-GPU machine checks
// a 2-rank run: then the ranks agree to stage device buffers through host
// memory and reduce them with MPI (transport() says "mpi-staged"), same
// results, slower. Every collective waits for its stream with the
// communicator's timeout, and a timed-out NCCL communicator is aborted
// before the job is, so no rank hangs in a kernel.
//
// start_all_reduce_sum (gradient buckets during the backward pass) enqueues
// on a second stream of the communicator's own, behind an event of the
// model's stream: the bucket's all-reduce runs while the model's stream goes
// on computing the lower layers' gradients.

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "nla/dist/mpi_communicator.hpp"

namespace nla {

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(MpiCommunicator& mpi) : mpi_(&mpi) {
    const char* op = "NcclCommunicator";
    int devices = 0;
    NLA_CHECK(cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0, op,
              "rank {}: no usable GPU (cudaGetDeviceCount found none)", mpi.rank());
    MPI_Comm node;
    MPI_Comm_split_type(mpi.handle(), MPI_COMM_TYPE_SHARED, mpi.rank(), MPI_INFO_NULL, &node);
    int local_rank = 0, local_size = 1;
    MPI_Comm_rank(node, &local_rank);
    MPI_Comm_size(node, &local_size);
    MPI_Comm_free(&node);
    device_ = local_rank % devices;
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    // Shared GPUs anywhere: every rank must take the same transport.
    std::int64_t shared = local_size > devices ? 1 : 0;
    nla::all_reduce_sum(mpi, &shared, 1);
    staged_ = shared > 0;
    if (!staged_) {
      ncclUniqueId id;
      if (mpi.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
      mpi.broadcast(&id, sizeof id, DataType::U8, 0);
      check_nccl(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()), "ncclCommInitRank");
    }
    check_cuda(cudaMalloc(&scratch_, 8), "cudaMalloc");
    check_cuda(cudaStreamCreateWithFlags(&side_stream_, cudaStreamNonBlocking),
               "cudaStreamCreateWithFlags");
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    cudaFree(scratch_);
    cudaStreamDestroy(side_stream_);
  }

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  MemorySpace memory() const override { return MemorySpace::Device; }
  std::string name() const override { return staged_ ? "nccl (mpi-staged)" : "nccl"; }
  Communicator& host() override { return *mpi_; }
  const char* transport() const { return staged_ ? "mpi-staged" : "nccl"; }
  int device() const { return device_; }

  // The stream collectives are enqueued on (the Cuda backend's); null: the
  // legacy default stream, which waits for every blocking stream.
  void set_queue(void* stream) override { stream_ = static_cast<cudaStream_t>(stream); }

  void all_reduce_sum(void* data, index_t count, DataType type) override {
    if (size() == 1 || count == 0) return;
    if (staged_)
      return staged(data, count, data, count, type,
                    [&](void* h, void*) { mpi_->all_reduce_sum(h, count, type); });
    check_nccl(
        ncclAllReduce(data, data, std::size_t(count), nccl_type(type), ncclSum, comm_, stream_),
        "ncclAllReduce");
    wait("all_reduce");
  }

  std::unique_ptr<PendingCollective> start_all_reduce_sum(void* data, index_t count,
                                                          DataType type) override {
    if (size() == 1 || count == 0 || staged_)
      return Communicator::start_all_reduce_sum(data, count, type);
    return std::make_unique<SideStreamSum>(*this, data, count, type);
  }

  void broadcast(void* data, index_t count, DataType type, int root) override {
    NLA_CHECK(root >= 0 && root < size(), "NcclCommunicator::broadcast", "root {} of {} ranks",
              root, size());
    if (size() == 1 || count == 0) return;
    if (staged_)
      return staged(data, count, data, count, type,
                    [&](void* h, void*) { mpi_->broadcast(h, count, type, root); });
    check_nccl(ncclBroadcast(data, data, std::size_t(count), nccl_type(type), root, comm_, stream_),
               "ncclBroadcast");
    wait("broadcast");
  }

  // NCCL has no variable all-gather: one broadcast per rank, grouped.
  void all_gather(const void* send, void* recv, const std::vector<index_t>& counts,
                  DataType type) override {
    NLA_CHECK(int(counts.size()) == size(), "NcclCommunicator::all_gather",
              "{} counts for {} ranks", counts.size(), size());
    const std::size_t bytes = size_of(type);
    index_t total = 0;
    for (index_t c : counts) total += c;
    if (staged_)
      return staged(send, counts[rank()], recv, total, type, [&](void* h_send, void* h_recv) {
        mpi_->all_gather(h_send, h_recv, counts, type);
      });
    auto* out = static_cast<unsigned char*>(recv);
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    index_t offset = 0;
    for (int r = 0; r < size(); ++r) {
      const void* from = r == rank() ? send : out + std::size_t(offset) * bytes;
      check_nccl(ncclBroadcast(from, out + std::size_t(offset) * bytes, std::size_t(counts[r]),
                               nccl_type(type), r, comm_, stream_),
                 "ncclBroadcast");
      offset += counts[r];
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    wait("all_gather");
  }

  void barrier() override {
    if (staged_) return mpi_->barrier();
    all_reduce_sum(scratch_, 1, DataType::I64);
  }

 private:
  static ncclDataType_t nccl_type(DataType t) {
    switch (t) {
      case DataType::F32:
        return ncclFloat32;
      case DataType::F64:
        return ncclFloat64;
      case DataType::BF16:
        return ncclBfloat16;
      case DataType::I32:
        return ncclInt32;
      case DataType::I64:
        return ncclInt64;
      case DataType::U8:
        return ncclUint8;
    }
    return ncclUint8;
  }

  // model stream: ... -> record ready_ ->             (next layers' kernels)
  // side stream:          wait ready_ -> ncclAllReduce -> record done_
  class SideStreamSum final : public PendingCollective {
   public:
    SideStreamSum(NcclCommunicator& c, void* data, index_t count, DataType type) : c_(c) {
      for (cudaEvent_t* e : {&ready_, &done_})
        c.check_cuda(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "cudaEventCreate");
      c.check_cuda(cudaEventRecord(ready_, c.stream_), "cudaEventRecord");
      c.check_cuda(cudaStreamWaitEvent(c.side_stream_, ready_, 0), "cudaStreamWaitEvent");
      c.check_nccl(ncclAllReduce(data, data, std::size_t(count), nccl_type(type), ncclSum, c.comm_,
                                 c.side_stream_),
                   "ncclAllReduce");
      c.check_cuda(cudaEventRecord(done_, c.side_stream_), "cudaEventRecord");
    }
    // The all-reduce writes into its buffer until it completes.
    ~SideStreamSum() override {
      try {
        wait();
      } catch (...) {
      }
      cudaEventDestroy(ready_);
      cudaEventDestroy(done_);
    }
    bool progress() override {
      const cudaError_t status = cudaEventQuery(done_);
      if (status != cudaErrorNotReady) c_.check_cuda(status, "all_reduce");
      return status == cudaSuccess;
    }
    void wait() override {
      c_.wait_for("all_reduce", [&] { return cudaEventQuery(done_); });
    }

   private:
    NcclCommunicator& c_;
    cudaEvent_t ready_ = nullptr, done_ = nullptr;
  };

  // Device -> host, the MPI collective on host memory, host -> device:
  // collective(host_in, host_out) reads in_count elements and leaves
  // out_count; an in-place collective (out == in) gets one buffer for both.
  template <class Collective>
  void staged(const void* in, index_t in_count, void* out, index_t out_count, DataType type,
              Collective&& collective) {
    const bool in_place = in == out;
    std::vector<unsigned char> h_in(std::size_t(in_count) * size_of(type)),
        h_out(in_place ? 0 : std::size_t(out_count) * size_of(type));
    unsigned char* h_result = in_place ? h_in.data() : h_out.data();
    check_cuda(cudaMemcpyAsync(h_in.data(), in, h_in.size(), cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    collective(h_in.data(), h_result);
    check_cuda(cudaMemcpyAsync(out, h_result, std::size_t(out_count) * size_of(type),
                               cudaMemcpyHostToDevice, stream_),
               "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  }

  // Polls the model's stream and NCCL's asynchronous error; on timeout
  // aborts the NCCL communicator (so no kernel spins forever) and then the job.
  void wait(const char* what) {
    wait_for(what, [&] { return cudaStreamQuery(stream_); });
  }

  // The same for any query: cudaSuccess when done, cudaErrorNotReady while not.
  template <class Query>
  void wait_for(const char* what, Query&& query) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t status = query();
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) check_cuda(status, what);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) check_nccl(async, what);
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (timeout_s_ > 0 && waited > timeout_s_) {
        std::fprintf(stderr,
                     "nla: rank %d of %d: NCCL %s timed out after %.0f s waiting for the other "
                     "ranks; aborting the job\n",
                     rank(), size(), what, waited);
        std::fflush(stderr);
        ncclCommAbort(comm_);
        comm_ = nullptr;
        MPI_Abort(mpi_->handle(), 3);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  void check_cuda(cudaError_t status, const char* what) const {
    NLA_CHECK(status == cudaSuccess, "NcclCommunicator", "rank {}: {} failed: {}", rank(), what,
              cudaGetErrorString(status));
  }
  void check_nccl(ncclResult_t status, const char* what) const {
    NLA_CHECK(status == ncclSuccess, "NcclCommunicator", "rank {}: {} failed: {}", rank(), what,
              ncclGetErrorString(status));
  }

  MpiCommunicator* mpi_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, side_stream_ = nullptr;
  void* scratch_ = nullptr;
  int device_ = 0;
  bool staged_ = false;
};

}  // namespace nla
