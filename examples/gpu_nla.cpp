// gpu_nla: the whole natural language autoencoder on one GPU, at a larger
// scale than the CPU demo. It trains a target model of GPT-2-small width
// (d = 768, 12 heads) on the synthetic world (train_target.hpp), then runs
// the NLA pipeline on it (nla_pipeline.hpp: extraction, warm start, joint RL,
// evaluation, steering), every model on the Cuda backend. It ends with the
// pipeline's summary line plus the target's figures under "target"; the RL
// step's time is broken into rollout, reconstruction and the two updates
// (rl_step_breakdown_s).
//
//   gpu_nla --out runs/gpu/nla --seed 1
//
// --backend cpu runs the same programs on the Cpu backend (the backend parity
// test in CI compares the two, on Thrust's OpenMP system, at a toy size).

#include <filesystem>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "nla_pipeline.hpp"
#include "train_target.hpp"

using namespace nla;
using namespace nla::examples;

namespace {

template <class B>
nlohmann::json train_target_then_nla(const TrainTargetArgs& target, const NlaPipelineArgs& nla) {
  const nlohmann::json t = run_train_target<B>(target);
  nlohmann::json result = run_nla_pipeline<B>(nla, single_process(), "gpu_nla");
  result["target"] = {{"d_model", target.d_model},
                      {"layers", target.layers},
                      {"steps", t["steps"]},
                      {"val_loss", t["val_loss"]},
                      {"rhyme_accuracy", t["rhyme_accuracy"]},
                      {"eval_marker_accuracy", t["eval_marker_accuracy"]},
                      {"cipher_accuracy", t["cipher_accuracy"]},
                      {"probe_accuracy", t["probe_accuracy"]},
                      {"tokens_per_s", t["tokens_per_s"]},
                      {"minutes", t["minutes"]}};
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Train a target model of GPT-2-small width on the synthetic world, then a natural "
      "language autoencoder on it, on one GPU."};
  NlaPipelineArgs nla;
  add_nla_pipeline_options(app, nla, false);
  // The target is trained here, on the world of --seed.
  app.remove_option(app.get_option("--target"));
  app.remove_option(app.get_option("--world-seed"));
  TrainTargetArgs target;
  target.d_model = 768;
  target.heads = 12;
  target.layers = 6;
  target.batch = 64;
  target.lr = 6e-4;
  add_train_target_options(app, target, "target-");
  std::string backend = "cuda";
  add_backend_option(app, backend);
  CLI11_PARSE(app, argc, argv);
  target.seed = nla.world_seed = nla.seed;
  target.out = nla.target = nla.out + ".target";
  try {
    // Before anything is written: a machine without a GPU gets the clear error.
    if (backend == "cuda") require_cuda_backend();
    const std::filesystem::path dir = std::filesystem::path(nla.out).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    const nlohmann::json result = backend == "cuda" ? train_target_then_nla<gpu::Cuda>(target, nla)
                                                    : train_target_then_nla<Cpu>(target, nla);
    std::cout << result.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "gpu_nla: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
