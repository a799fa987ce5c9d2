#pragma once
// The whole natural language autoencoder, end to end, on any backend:
//
//   target model (train_target's checkpoint) -> activations at block K, marked
//   positions of the synthetic world -> summaries (world truth, the planned
//   rhyme word withheld from most) -> warm start: verbalizer (AV) by next-token
//   loss, reconstructor (AR) by normalised MSE -> joint RL: AV by GRPO on
//   -log mse, AR by regression on the same samples (plus true anchors) ->
//   evaluation on the test split -> explain with confidence -> steering.
//
// Every number the method is judged by is printed beside FVE: the truth of
// what the explanations say, how the AR reads *true* descriptions (a falling
// value means RL drifted into a private dialect), and steering success
// against a random-direction control. Ends with one JSON line.
//
// Data-parallel over the ranks of `world` (dist/data_parallel.hpp): rank 0
// extracts the activations and writes every file and log; warm start and RL
// split each global batch over the ranks; evaluation and steering run on
// every rank alike. Each RL step logs its wall time, samples/s and the share
// of it spent in the gradient all-reduce.
//
// Programs: tiny_nla (one process; Cpu, or Cuda with --backend cuda) and
// multi_gpu_nla (mpirun; Cuda over NCCL with one GPU per rank, or Cpu over
// MPI). run_nla_pipeline<B> is compiled once per backend, in
// nla_pipeline_cpu.cpp and nla_pipeline_cuda.cu, and linked into both.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli_options.hpp"
#include "nla/backend/cpu/cpu.hpp"
#include "nla/dist/communicator.hpp"

namespace nla {
namespace gpu {
class Cuda;
}
class MpiCommunicator;

namespace examples {

struct NlaPipelineArgs {
  std::string target = "runs/target", out = "runs/nla", withhold = "rhyme";
  std::string plot_script = "scripts/plot_metrics.sh", text_path;
  index_t text_positions = 4, text_min_position = 8;
  DocumentSeparator text_separator = DocumentSeparator::BlankLine;
  std::uint64_t seed = 1, world_seed = 1;
  index_t train_docs = 1500, test_docs = 200;
  index_t sft_steps = 800, sft_batch = 32;
  double sft_av_lr = 1e-3, sft_ar_lr = 1e-3;
  index_t rl_steps = 200, rl_batch = 8, group = 8, anchors = 8, max_tokens = 20;
  double rl_av_lr = 1e-4, rl_ar_lr = 1e-4, kl_coef = 0.01, keep_fraction = 0.2;
  index_t checkpoint_every = 50;
  std::vector<double> steering_alphas = {0.25, 0.5, 1, 2, 4};
  std::string load_nla, steer_attribute = "place";
  bool centre = false;
  bool shard_optimizer = false;
  double bucket_mb = 16;
};

// The pipeline's options; data_parallel adds --shard-optimizer and --bucket-mb.
void add_nla_pipeline_options(CLI::App& app, NlaPipelineArgs& a, bool data_parallel);

// Runs the pipeline with every model on backend B, data-parallel over world
// (whose memory space must be B's when it has more than one rank); `program`
// names the example in messages and in the summary. Returns the summary line
// (also printed by rank 0). Throws nla::Error on bad input.
template <class B>
nlohmann::json run_nla_pipeline(NlaPipelineArgs a, Communicator& world, const char* program);

extern template nlohmann::json run_nla_pipeline<Cpu>(NlaPipelineArgs, Communicator&, const char*);
extern template nlohmann::json run_nla_pipeline<gpu::Cuda>(NlaPipelineArgs, Communicator&,
                                                           const char*);

// nla_pipeline_cuda.cu: whether the Cuda backend can start here (a GPU, or
// Thrust's host device system), and why not.
bool cuda_backend_available(std::string* why);

// nccl_world.cu: an NcclCommunicator over mpi's ranks (each rank takes its
// GPU here, before any model is built).
std::unique_ptr<Communicator> make_nccl_communicator(MpiCommunicator& mpi);

}  // namespace examples
}  // namespace nla
