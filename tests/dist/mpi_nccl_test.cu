// NcclCommunicator against MpiCommunicator on the same values, under
// mpirun (ctest: mpi.nccl_2_ranks). With one GPU for two ranks it takes the
// MPI-staged transport; without a GPU it prints "skipped: no usable GPU".
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "nla/dist/nccl_communicator.cuh"

namespace {

int failures = 0;
void expect(bool ok, const char* what, int rank) {
  if (!ok) {
    std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what);
    ++failures;
  }
}

template <class T>
std::vector<T> round_trip(nla::NcclCommunicator& nccl, const std::vector<T>& host,
                          void (*run)(nla::NcclCommunicator&, T*, nla::index_t)) {
  T* d = nullptr;
  cudaMalloc(&d, host.size() * sizeof(T) + 1);
  cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  run(nccl, d, nla::index_t(host.size()));
  std::vector<T> out(host.size());
  cudaMemcpy(out.data(), d, host.size() * sizeof(T), cudaMemcpyDeviceToHost);
  cudaFree(d);
  return out;
}

}  // namespace

int main() {
  nla::MpiCommunicator mpi;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    if (mpi.rank() == 0) std::printf("skipped: no usable GPU\n");
    return 0;
  }
  try {
    nla::NcclCommunicator nccl(mpi);
    const int w = nccl.size(), me = nccl.rank();
    // Blocking, and started as three buckets in flight at once (gradient
    // buckets during a backward pass) that are waited for in reverse order.
    for (nla::index_t n : {1, 7, 100000, 300000}) {
      std::vector<float> x(static_cast<std::size_t>(n));
      for (nla::index_t i = 0; i < n; ++i) x[i] = float(me + 1) * 0.5f + float(i % 17);
      std::vector<float> expected = x;
      mpi.all_reduce_sum(expected.data(), n, nla::DataType::F32);
      const auto got =
          round_trip<float>(nccl, x, [](nla::NcclCommunicator& c, float* d, nla::index_t m) {
            c.all_reduce_sum(d, m, nla::DataType::F32);
          });
      const auto started =
          round_trip<float>(nccl, x, [](nla::NcclCommunicator& c, float* d, nla::index_t m) {
            std::vector<std::unique_ptr<nla::PendingCollective>> pending;
            const nla::index_t part = (m + 2) / 3;
            for (nla::index_t end = m; end > 0; end -= std::min(end, part)) {
              const nla::index_t first = end > part ? end - part : 0;
              pending.push_back(c.start_all_reduce_sum(d + first, end - first, nla::DataType::F32));
            }
            for (auto it = pending.rbegin(); it != pending.rend(); ++it) (*it)->wait();
          });
      // Sums of small integers and halves are exact in any order.
      expect(got == expected, "all_reduce_sum equals MPI's", me);
      expect(started == expected, "started all-reduces equal MPI's", me);
    }
    std::vector<double> b(9, me == w - 1 ? 3.25 : 0.0);
    const auto got =
        round_trip<double>(nccl, b, [](nla::NcclCommunicator& c, double* d, nla::index_t m) {
          c.broadcast(d, m, nla::DataType::F64, c.size() - 1);
        });
    expect(got == std::vector<double>(9, 3.25), "broadcast from the last rank", me);
    nccl.barrier();
    if (me == 0) std::printf("transport %s, %d ranks\n", nccl.transport(), w);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", mpi.rank(), e.what());
    ++failures;
  }
  std::int64_t total = failures;
  nla::all_reduce_sum(mpi, &total, 1);
  if (mpi.rank() == 0)
    std::printf(total == 0 ? "all NCCL checks passed\n" : "NCCL checks FAILED\n");
  return total == 0 ? 0 : 1;
}
