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
// MPI), and gpu_nla (train_target and this on one GPU). run_nla_pipeline<B> is
// compiled once per backend (programs_cpu.cpp, programs_cuda.cu).

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
inline void add_nla_pipeline_options(CLI::App& app, NlaPipelineArgs& a, bool data_parallel) {
  app.add_option("--target", a.target, "train_target's output prefix (.ckpt, .tokenizer.json)");
  app.add_option("--out", a.out, "output prefix: activations, .jsonl logs, .png plots");
  app.add_option("--seed", a.seed, "seed of sampling, batches and initialisation");
  app.add_option("--world-seed", a.world_seed, "the --seed train_target was run with");
  app.add_option("--train-docs", a.train_docs, "training documents to extract")
      ->check(CLI::PositiveNumber);
  app.add_option("--test-docs", a.test_docs, "test documents to evaluate on")
      ->check(CLI::PositiveNumber);
  app.add_option("--sft-steps", a.sft_steps, "warm-start steps")->check(CLI::NonNegativeNumber);
  app.add_option("--sft-batch", a.sft_batch, "warm-start batch")->check(CLI::PositiveNumber);
  app.add_option("--sft-av-lr", a.sft_av_lr, "warm-start peak lr of the verbalizer");
  app.add_option("--sft-ar-lr", a.sft_ar_lr, "warm-start peak lr of the reconstructor");
  app.add_option("--rl-steps", a.rl_steps, "joint RL steps")->check(CLI::NonNegativeNumber);
  app.add_option("--rl-batch", a.rl_batch, "activations per RL step")->check(CLI::PositiveNumber);
  app.add_option("--group", a.group, "explanations per activation (G)")->check(CLI::Range(2, 64));
  app.add_option("--rl-av-lr", a.rl_av_lr, "RL lr of the verbalizer (constant)");
  app.add_option("--rl-ar-lr", a.rl_ar_lr, "RL lr of the reconstructor (constant)");
  app.add_option("--kl", a.kl_coef, "k1 KL coefficient to the warm-started verbalizer");
  app.add_option("--anchors", a.anchors,
                 "true descriptions mixed into each RL step of the reconstructor (0: none)");
  app.add_option("--max-tokens", a.max_tokens, "longest explanation; longer ones fail")
      ->check(CLI::Range(2, 40));
  app.add_option("--withhold", a.withhold, "attribute left out of most summaries, or 'none'");
  app.add_option("--keep-fraction", a.keep_fraction, "share of summaries that keep it")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--steering-alphas", a.steering_alphas,
                 "steering strengths to sweep (units of |h|); the best on half the prompts is "
                 "reported on the other half")
      ->delimiter(',');
  app.add_flag("--centre", a.centre, "subtract the mean activation before injection");
  app.add_option("--steer", a.steer_attribute, "attribute whose edit steers: place or mood")
      ->check(CLI::IsMember({"place", "mood"}));
  app.add_option("--load-nla", a.load_nla,
                 "evaluate a trained NLA (an <out>.rl directory) instead of training: no warm "
                 "start, no RL; both evaluations are of the loaded models")
      ->check(CLI::ExistingDirectory);
  app.add_option("--checkpoint-every", a.checkpoint_every,
                 "RL steps between NLA checkpoints in <out>.rl/ (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--plot-script", a.plot_script, "JSONL -> PNG script ('' to skip plots)");
  app.add_option("--text", a.text_path,
                 "real-text mode: explain activations of this UTF-8 corpus, summarised by TF-IDF "
                 "keywords; reports FVE only")
      ->check(CLI::ExistingFile);
  app.add_option("--text-positions", a.text_positions, "positions sampled per text document");
  add_text_separator_option(app, a.text_separator);
  if (!data_parallel) return;
  app.add_flag("--shard-optimizer", a.shard_optimizer,
               "ZeRO stage 1: each rank keeps the AdamW state of 1/N of the parameters");
  app.add_option("--bucket-mb", a.bucket_mb, "gradient all-reduce bucket size (MB)")
      ->check(CLI::PositiveNumber);
}

// Runs the pipeline with every model on backend B, data-parallel over world
// (whose memory space must be B's when it has more than one rank); `program`
// names the example in messages and in the summary. Returns the summary line
// (also printed by rank 0). Throws nla::Error on bad input.
template <class B>
nlohmann::json run_nla_pipeline(NlaPipelineArgs a, Communicator& world, const char* program);

extern template nlohmann::json run_nla_pipeline<Cpu>(NlaPipelineArgs, Communicator&, const char*);
extern template nlohmann::json run_nla_pipeline<gpu::Cuda>(NlaPipelineArgs, Communicator&,
                                                           const char*);

// programs_cuda.cu: whether the Cuda backend can start here (a GPU, or
// Thrust's host device system), and why not; require_cuda_backend throws the
// backend's own "Cuda: no usable GPU: ..." error instead.
bool cuda_backend_available(std::string* why);
void require_cuda_backend();

// nccl_world.cu: an NcclCommunicator over mpi's ranks (each rank takes its
// GPU here, before any model is built).
std::unique_ptr<Communicator> make_nccl_communicator(MpiCommunicator& mpi);

}  // namespace examples
}  // namespace nla
