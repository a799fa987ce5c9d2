// tiny_nla: the whole natural language autoencoder in one process
// (nla_pipeline.hpp): on the CPU, or with --backend cuda on one GPU.
//
//   scripts/demo.sh runs train_target, then this program.

#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "nla_pipeline.hpp"

using namespace nla;
using namespace nla::examples;

int main(int argc, char** argv) {
  CLI::App app{"Train a natural language autoencoder on the synthetic world's target model."};
  NlaPipelineArgs a;
  add_nla_pipeline_options(app, a, false);
  std::string backend = "cpu";
#ifdef NLA_EXAMPLE_CUDA
  add_backend_option(app, backend);
#endif
  CLI11_PARSE(app, argc, argv);
  try {
#ifdef NLA_EXAMPLE_CUDA
    if (backend == "cuda") {
      run_nla_pipeline<gpu::Cuda>(a, single_process(), "tiny_nla");
      return 0;
    }
#endif
    run_nla_pipeline<Cpu>(a, single_process(), "tiny_nla");
  } catch (const std::exception& e) {
    std::cerr << "tiny_nla: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
