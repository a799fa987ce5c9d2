// The NLA pipeline (nla_pipeline.hpp) on the Cpu backend, and its options.
#include "nla_pipeline_run.hpp"

namespace nla::examples {

void add_nla_pipeline_options(CLI::App& app, NlaPipelineArgs& a, bool data_parallel) {
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

template nlohmann::json run_nla_pipeline<Cpu>(NlaPipelineArgs, Communicator&, const char*);

}  // namespace nla::examples
