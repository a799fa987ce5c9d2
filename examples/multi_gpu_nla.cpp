// multi_gpu_nla: the natural language autoencoder of nla_pipeline.hpp,
// data-parallel over the ranks of `mpirun -np N`. Built with CUDA and NCCL,
// each rank takes one GPU (local rank mod GPUs per node) and the gradients
// are all-reduced by NCCL; ranks that share a GPU stage them through MPI.
// Without CUDA, or with --backend cpu, or where no GPU is usable under the
// default --backend auto, the ranks run the Cpu backend over MPI.
//
//   OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe multi_gpu_nla --target runs/target

#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "nla/dist/mpi_communicator.hpp"
#include "nla_pipeline.hpp"

using namespace nla;
using namespace nla::examples;

int main(int argc, char** argv) {
  MpiCommunicator mpi;
  CLI::App app{
      "Train a natural language autoencoder on the synthetic world's target model, data-parallel "
      "over the ranks of mpirun."};
  NlaPipelineArgs a;
  add_nla_pipeline_options(app, a, true);
  std::string backend = "auto";
  app.add_option("--backend", backend,
                 "auto (cuda where every rank finds a GPU, else cpu), cpu (MPI), or cuda (NCCL)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return mpi.rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 1);
  }
  try {
#ifdef NLA_EXAMPLE_NCCL
    if (backend == "auto") {
      // Every rank must take the same backend.
      std::string why;
      std::int64_t missing = cuda_backend_available(&why) ? 0 : 1;
      all_reduce_sum(mpi, &missing, 1);
      backend = missing == 0 ? "cuda" : "cpu";
      // Rank 0 prints; its own reason only when it is one of those ranks.
      if (mpi.rank() == 0 && missing > 0)
        std::cerr << "multi_gpu_nla: " << missing << " rank(s) found no usable GPU"
                  << (why.empty() ? "" : " (rank 0: " + why + ")")
                  << "; running the Cpu backend over MPI\n";
    }
    if (backend == "cuda") {
      const std::unique_ptr<Communicator> nccl = make_nccl_communicator(mpi);
      run_nla_pipeline<gpu::Cuda>(a, *nccl, "multi_gpu_nla");
      return 0;
    }
#else
    NLA_CHECK(backend != "cuda", "multi_gpu_nla",
              "--backend cuda: this build has no CUDA and NCCL (NLA_ENABLE_CUDA, libnccl-dev)");
#endif
    run_nla_pipeline<Cpu>(a, mpi, "multi_gpu_nla");
  } catch (const std::exception& e) {
    std::cerr << "multi_gpu_nla: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
