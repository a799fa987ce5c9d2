// train_target: the target model of a natural language autoencoder
// (train_target.hpp says what it learns and how it is checked).
//
//   train_target --seed 1 --out runs/target

#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "train_target.hpp"

using namespace nla;
using namespace nla::examples;

int main(int argc, char** argv) {
  TrainTargetArgs a;
  CLI::App app{"Train the target model on the synthetic world and prove what it learned."};
  add_train_target_options(app, a);
  std::string backend = "cpu";
#ifdef NLA_EXAMPLE_CUDA
  add_backend_option(app, backend);
#endif
  CLI11_PARSE(app, argc, argv);
  try {
#ifdef NLA_EXAMPLE_CUDA
    if (backend == "cuda") {
      run_train_target<gpu::Cuda>(a);
      return 0;
    }
#endif
    run_train_target<Cpu>(a);
  } catch (const std::exception& e) {
    std::cerr << "train_target: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
