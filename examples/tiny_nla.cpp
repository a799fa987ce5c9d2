// tiny_nla: the whole natural language autoencoder on the CPU, end to end.
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
//   scripts/demo.sh runs train_target, then this program.
//
// Built a second time as multi_gpu_nla (NLA_EXAMPLE_MPI): the same pipeline
// data-parallel under `mpirun -np N` (dist/data_parallel.hpp). Rank 0
// extracts the activations and writes every file and log; warm start and RL
// split each global batch over the ranks; evaluation and steering run on
// every rank alike. Each RL step logs its wall time, samples/s and the share
// of it spent in the gradient all-reduce.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli_options.hpp"
#include "nla/activations/activation_dataset.hpp"
#include "nla/activations/extract.hpp"
#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/nla_checkpoint.hpp"
#include "nla/bottleneck/nla_training.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/dist/data_parallel.hpp"
#ifdef NLA_EXAMPLE_MPI
#include "nla/dist/mpi_communicator.hpp"
#endif
#include "nla/explain/claims.hpp"
#include "nla/explain/confidence.hpp"
#include "nla/explain/world_claims.hpp"
#include "nla/nla.hpp"
#include "nla/steer/steering.hpp"
#include "nla/summarize/keyword_summarizer.hpp"
#include "nla/summarize/world_truth_summarizer.hpp"

using namespace nla;
using json = nlohmann::json;

namespace {

struct Args {
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

#ifdef NLA_EXAMPLE_MPI
constexpr const char* kProgram = "multi_gpu_nla";
#else
constexpr const char* kProgram = "tiny_nla";
#endif

// Swallows what the other ranks would print a second time.
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return c; }
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NLA_EXAMPLE_MPI
  MpiCommunicator world;
  CLI::App app{
      "Train a natural language autoencoder on the synthetic world's target model, data-parallel "
      "over the ranks of mpirun."};
#else
  Communicator& world = single_process();
  CLI::App app{"Train a natural language autoencoder on the synthetic world's target model."};
#endif
  Args a;
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
  examples::add_text_separator_option(app, a.text_separator);
#ifdef NLA_EXAMPLE_MPI
  app.add_flag("--shard-optimizer", a.shard_optimizer,
               "ZeRO stage 1: each rank keeps the AdamW state of 1/N of the parameters");
  app.add_option("--bucket-mb", a.bucket_mb, "gradient all-reduce bucket size (MB)")
      ->check(CLI::PositiveNumber);
#endif
  CLI11_PARSE(app, argc, argv);
  DataParallelOptions dp_options;
  dp_options.shard_optimizer = a.shard_optimizer;
  dp_options.bucket_elements = std::max<index_t>(1, index_t(a.bucket_mb * (1 << 20) / 4));
  const DataParallel dp(world, dp_options);
  const bool root = dp.is_root();
  static NullBuffer null_buffer;  // outlives the streams' last flush
  if (!root) {
    std::cout.rdbuf(&null_buffer);
    std::cerr.rdbuf(&null_buffer);
  }

  try {
    const auto start = Clock::now();
    json phases = json::object();
    std::filesystem::create_directories(std::filesystem::path(a.out).parent_path().empty()
                                            ? std::filesystem::path(".")
                                            : std::filesystem::path(a.out).parent_path());

    // 1. The target model and its tokenizer.
    auto t = Clock::now();
    const BpeTokenizer tok = BpeTokenizer::from_hf_json(a.target + ".tokenizer.json");
    const TransformerConfig config = read_checkpoint_config(a.target + ".ckpt");
    TransformerLM<Cpu, float> target(config);
    {
      AdamW<Cpu, float> unused;
      load_checkpoint(a.target + ".ckpt", target, unused);
    }
    NLA_CHECK(config.vocab_size == tok.vocab_size(), kProgram,
              "checkpoint vocabulary {} != tokenizer's {}", config.vocab_size, tok.vocab_size());
    const index_t layer = default_extraction_layer(config.n_layers), d = config.d_model;
    std::cerr << fmt::format("target: {} layers, d = {}, extraction after block {}\n",
                             config.n_layers, d, layer);

    // 2. Activations at the marked positions of the train and test splits.
    WorldOptions wo;
    wo.seed = a.world_seed;
    const SyntheticWorld synthetic(wo);
    const bool text_mode = !a.text_path.empty();
    std::vector<CorpusDocument> corpus;
    if (text_mode) {
      CorpusOptions co;
      co.max_document_bytes = std::size_t(config.context_length) * 3;
      co.separator = a.text_separator;
      corpus = read_corpus({a.text_path}, co);
    }
    auto extract = [&](Split split, index_t docs, const std::string& name) {
      ExtractionOptions eo;
      eo.seed = a.seed;
      eo.split = name;
      if (text_mode) {
        // Positions sampled from index 8 on, so a prefix holds some text.
        eo.corpus = a.text_path;
        eo.positions = PositionPolicy::sampled(a.text_positions, a.text_min_position);
        auto part = select_split(corpus, split, a.world_seed);
        if (index_t(part.size()) > docs) part.resize(std::size_t(docs));
        dp.on_root("extract", [&] {
          extract_activations(target, tok, layer,
                              text_extraction_documents(part, tok, config.context_length), eo,
                              a.out + "." + name);
        });
      } else {
        eo.corpus = fmt::format("synthetic_world seed={}", a.world_seed);
        dp.on_root("extract", [&] {
          extract_activations(
              target, tok, layer,
              world_extraction_documents(synthetic, tok, split, docs, config.context_length), eo,
              a.out + "." + name);
        });
      }
      ActivationDataset data = ActivationDataset::load(a.out + "." + name);
      data.check_compatible(config, layer);
      return data;
    };
    const ActivationDataset train = extract(Split::Train, a.train_docs, "train");
    const ActivationDataset test = extract(Split::Test, a.test_docs, "test");
    const double B = fve_baseline_of(train);
    phases["extract_s"] = since(t);
    std::cerr << fmt::format("activations: {} train, {} test; B = {:.3f}; injection scale {}\n",
                             train.size(), test.size(), B, train.meta.injection_scale);

    // 3. Summaries: partial ones for the warm start, complete ones as truth.
    WorldTruthOptions partial_options;
    if (a.withhold != "none") {
      partial_options.withhold = attribute_from_name(a.withhold);
      NLA_CHECK(partial_options.withhold.has_value(), kProgram, "--withhold '{}' is no attribute",
                a.withhold);
      partial_options.withheld_keep_fraction = a.keep_fraction;
      partial_options.seed = a.seed;
    }
    // Real text has no truth beyond its words: the keyword summary is both.
    WorldTruthSummarizer partial(partial_options), complete;
    KeywordSummarizer keywords;
    if (text_mode) {
      std::vector<std::string> prefixes;
      for (const auto& row : train.rows) prefixes.push_back(row["prefix"].get<std::string>());
      keywords.fit(prefixes);
    }
    Summarizer& warm_start_summaries = text_mode ? static_cast<Summarizer&>(keywords) : partial;
    Summarizer& true_summaries = text_mode ? static_cast<Summarizer&>(keywords) : complete;
    std::vector<Explanation> train_summaries, train_truth, test_truth;
    for (const std::string& s : warm_start_summaries.summarize(train.rows))
      train_summaries.push_back(summary_message(tok, s));
    for (const std::string& s : true_summaries.summarize(train.rows))
      train_truth.push_back(summary_message(tok, s));
    for (const std::string& s : true_summaries.summarize(test.rows))
      test_truth.push_back(summary_message(tok, s));

    // 4. The two models, as encoder and decoder of the generic autoencoder.
    const NlaPrompts prompts = default_nla_prompts(tok);
    Verbalizer<Cpu, float> av(target, prompts.verbalizer, train.meta.injection_scale);
    if (a.centre) av.set_centre(train.meta.mean);
    Reconstructor<Cpu, float> ar(target, layer + 1);
    TextNlaOptions text_options;
    text_options.group = a.group;
    text_options.max_tokens = a.max_tokens;
    text_options.kl = a.kl_coef;
    text_options.av_lr = a.rl_av_lr;
    text_options.ar_lr = a.rl_ar_lr;
    text_options.seed = a.seed;
    VerbalizerEncoder<Cpu, float> encoder(
        av, text_options.encoder(tok),
        [&](const std::vector<std::int32_t>& ids) { return tok.decode(ids, true); });
    ReconstructorDecoder<Cpu, float> decoder(ar, prompts.reconstructor, text_options.decoder());
    Autoencoder<VerbalizerEncoder<Cpu, float>, ReconstructorDecoder<Cpu, float>> nla(encoder,
                                                                                     decoder, B);
    nla.set_data_parallel(dp);

    // Rank 0 alone writes the logs.
    JsonlWriter log(root ? a.out + ".jsonl" : "");
    JsonlWriter explanations_log(root ? a.out + ".explanations.jsonl" : "");
    if (!a.load_nla.empty()) {
      const NlaCheckpointState loaded = load_nla_checkpoint(a.load_nla, encoder, decoder);
      std::cerr << fmt::format("loaded the NLA of RL step {} from {}\n", loaded.step, a.load_nla);
      a.sft_steps = a.rl_steps = 0;
    }
    const std::optional<Attribute> withheld = partial_options.withhold;

    // Evaluation on the test split (bottleneck/nla_training.hpp), logged with
    // every explanation beside the truth.
    auto evaluate = [&](const char* tag) {
      const NlaEvaluation ev = evaluate_nla(encoder, decoder, test, test_truth, B, withheld);
      for (index_t i = 0; i < test.size(); ++i) {
        const json& row = test.rows[std::size_t(i)];
        const Explanation& m = ev.explanations[std::size_t(i)];
        explanations_log.write({{"phase", tag},
                                {"doc", row["doc"]},
                                {"position", row["position"]},
                                {"truth", test_truth[std::size_t(i)].text},
                                {"said", m.text},
                                {"failed", m.failed()},
                                {"error", ev.errors[std::size_t(i)]}});
      }
      const json rec = ev.record(tag);
      log.write(rec);
      std::cout << rec.dump() << std::endl;
      for (index_t i = 0; i < 4; ++i) {
        const std::size_t k = std::size_t(i * (test.size() / 4));
        std::cerr << fmt::format("  [{}] truth: {}\n       said:  {}\n", tag, test_truth[k].text,
                                 ev.explanations[k].text);
      }
      return ev;
    };

    // 5. Warm start, with warm-up and cosine decay: the AR's loss depends only
    // on the direction of its output, and a constant high lr makes FVE swing.
    t = Clock::now();
    WarmStartOptions sft_options;
    sft_options.steps = a.sft_steps;
    sft_options.batch = a.sft_batch;
    sft_options.av_lr = a.sft_av_lr;
    sft_options.ar_lr = a.sft_ar_lr;
    sft_options.seed = a.seed;
    Progress sft_progress(a.sft_steps, "ex");
    warm_start(encoder, decoder, train, train_summaries, B, sft_options, 0,
               [&](const WarmStartRecord& r) {
                 if (r.step % 10 == 0)
                   log.write({{"phase", "sft"},
                              {"step", r.step},
                              {"av_loss", r.av_loss},
                              {"ar_loss", r.ar_loss},
                              {"fve", r.fve}});
                 if (root)
                   sft_progress.update(r.step, double(r.step * a.sft_batch),
                                       fmt::format("AV {:.3f} AR FVE {:.3f}", r.av_loss, r.fve));
               });
    phases["sft_s"] = since(t);

    // The shuffled-activation control: the AV's loss on test summaries with
    // each activation replaced by another must be clearly worse.
    double av_loss_true = 0, av_loss_shuffled = 0;
    {
      std::vector<index_t> idx(std::size_t(std::min<index_t>(256, test.size())));
      std::iota(idx.begin(), idx.end(), 0);
      std::vector<index_t> shuffled(idx);
      std::rotate(shuffled.begin(), shuffled.begin() + index_t(shuffled.size()) / 2,
                  shuffled.end());
      std::vector<std::vector<std::int32_t>> text;
      for (index_t i : idx) text.push_back(test_truth[std::size_t(i)].tokens);
      av_loss_true = encoder.supervised_loss(batch_of(test, idx), text);
      av_loss_shuffled = encoder.supervised_loss(batch_of(test, shuffled), text);
    }
    std::cerr << fmt::format("AV loss on test summaries: {:.3f} true, {:.3f} shuffled\n",
                             av_loss_true, av_loss_shuffled);
    t = Clock::now();
    const NlaEvaluation sft = evaluate("after_sft");
    phases["eval_sft_s"] = since(t);

    // 6. Joint RL. The KL reference is the warm-started AV.
    t = Clock::now();
    encoder.reset_reference();
    Progress rl_progress(a.rl_steps, "ex");
    // Per step: wall time, samples (activations x G) per second over all
    // ranks, and the share of the step in gradient collectives.
    auto step_start = Clock::now();
    double rl_comm_s = 0, rl_step_s = 0;
    dp.reset_communication();
    JointRlOptions rl_options;
    rl_options.steps = a.rl_steps;
    rl_options.batch = a.rl_batch;
    rl_options.anchors = a.anchors;
    rl_options.seed = a.seed;
    joint_rl(nla, decoder, train, train_truth, rl_options, 0,
             [&](index_t step, const AutoencoderStep& s, json& rec) {
               const double step_s = since(step_start), comm_s = dp.communication().seconds;
               rec["step_s"] = step_s;
               rec["samples_per_s"] = double(a.rl_batch * a.group) / step_s;
               rec["allreduce_s"] = comm_s;
               rec["allreduce_share"] = comm_s / step_s;
               rl_comm_s += comm_s, rl_step_s += step_s;
               log.write(rec);
               if (a.checkpoint_every > 0 && (step % a.checkpoint_every == 0 || step == a.rl_steps))
                 save_nla_checkpoint(a.out + ".rl", encoder, decoder, step,
                                     {{"world_seed", a.world_seed}, {"seed", a.seed}});
               if (root)
                 rl_progress.update(
                     step, double(step * a.rl_batch * a.group),
                     fmt::format("FVE {:.3f} reward {:.3f} KL {:.4f} all-reduce "
                                 "{:.0f}%",
                                 s.fve, s.encoder["reward_mean"].get<double>(),
                                 s.encoder["kl"].get<double>(), 100 * comm_s / step_s));
               dp.reset_communication();
               step_start = Clock::now();
             });
    phases["rl_s"] = since(t);
    t = Clock::now();
    const NlaEvaluation rl = evaluate("after_rl");
    phases["eval_rl_s"] = since(t);

    // 7. Explain with confidence: n samples per activation; is a claim that
    // recurs in most samples more often true than a one-off?
    t = Clock::now();
    double recurring_true = 0, recurring_n = 0, oneoff_true = 0, oneoff_n = 0;
    {
      std::vector<index_t> idx;
      for (index_t i = 0; i < std::min<index_t>(text_mode ? 0 : 64, test.size()); ++i)
        idx.push_back(i);
      const ActivationBatch batch = text_mode ? ActivationBatch{} : batch_of(test, idx);
      const auto explained =
          text_mode ? std::vector<ConfidentExplanation>{} : explain_with_confidence(encoder, batch);
      for (std::size_t k = 0; k < explained.size(); ++k) {
        for (const ClaimSupport& c : explained[k].claims) {
          const WorldClaim claim = parse_world_claim(c.claim);
          if (claim.kind == WorldClaimKind::Unrecognised) continue;
          const bool ok = claim_is_true(claim, *batch.rows[k]);
          if (c.fraction >= 0.5) recurring_true += ok, recurring_n += 1;
          if (c.count == 1) oneoff_true += ok, oneoff_n += 1;
        }
      }
    }
    phases["confidence_s"] = since(t);

    // 8. Steering at the position before the place or the mood is named
    // ("In the| forest", "and Pip was| happy"): the AR turns "place forest" ->
    // "place castle" into a direction; the target's next word should become
    // the new value. Control: a random direction, same alpha.
    // Every alpha is tried on every prompt; the alpha that does best (success
    // minus control) on the even prompts is reported on the odd ones.
    t = Clock::now();
    const std::size_t n_alpha = a.steering_alphas.size();
    std::vector<double> steer_hits(2 * n_alpha), control_hits(2 * n_alpha), steer_n(2);
    {
      SamplingOptions greedy;
      greedy.temperature = 0;
      greedy.max_new_tokens = 1;
      index_t used = 0;
      std::vector<std::string> values;
      if (a.steer_attribute == "place")
        values.assign(kWorldPlaces.begin(), kWorldPlaces.end());
      else
        values.assign(kWorldMoods.begin(), kWorldMoods.end());
      for (index_t i = 0; i < test.size() && used < 120; ++i) {
        const json& row = test.rows[std::size_t(i)];
        if (row.value("target", "") != a.steer_attribute) continue;
        const std::size_t half = std::size_t(used++ % 2);
        const std::string mood = row["attributes"][a.steer_attribute];
        const auto it = std::find(values.begin(), values.end(), mood);
        const std::string edited_mood(
            values[std::size_t((it - values.begin() + 1 + i) % index_t(values.size()))]);
        const std::string original = complete.summarize_row(row);
        std::string edited = original;
        const std::string key = a.steer_attribute + " ";
        edited.replace(edited.find(key + mood), key.size() + mood.size(), key + edited_mood);
        const std::vector<float> p =
            decoder.reconstruct({summary_message(tok, original), summary_message(tok, edited)});
        const std::vector<float> p0(p.begin(), p.begin() + d), p1(p.begin() + d, p.end());
        const std::vector<double> delta = steering_delta(p0, p1);
        std::vector<double> control(static_cast<std::size_t>(d));
        for (index_t j = 0; j < d; ++j)
          control[std::size_t(j)] = random_normal(a.seed, 777, std::uint64_t(i * d + j));
        std::vector<std::int32_t> prompt{tok.bos_id()};
        tok.encode_append(row["prefix"].get<std::string>(), prompt);
        SteeringOptions so;
        so.stream = layer + 1;
        so.positions = SteeringPositions::at({index_t(prompt.size()) - 1});
        const auto says_edit = [&](const std::vector<double>& dir) {
          const auto g = steered_generate(target, {prompt}, dir, so, greedy);
          return tok.decode(g[0].tokens, true) == " " + edited_mood;
        };
        for (std::size_t k = 0; k < n_alpha; ++k) {
          so.alpha = a.steering_alphas[k];
          steer_hits[half * n_alpha + k] += says_edit(delta);
          control_hits[half * n_alpha + k] += says_edit(control);
        }
        steer_n[half] += 1;
      }
    }
    std::size_t best = 0;
    json steering_sweep = json::array();
    for (std::size_t k = 0; k < n_alpha; ++k) {
      const double margin = steer_hits[k] - control_hits[k];
      if (margin > steer_hits[best] - control_hits[best]) best = k;
      const double n = steer_n[0] + steer_n[1];
      steering_sweep.push_back({{"alpha", a.steering_alphas[k]},
                                {"success", (steer_hits[k] + steer_hits[n_alpha + k]) / n},
                                {"control", (control_hits[k] + control_hits[n_alpha + k]) / n}});
    }
    const double steering_success = steer_n[1] > 0 ? steer_hits[n_alpha + best] / steer_n[1] : 0;
    const double steering_control = steer_n[1] > 0 ? control_hits[n_alpha + best] / steer_n[1] : 0;
    phases["steering_s"] = since(t);

    if (root && !a.plot_script.empty()) {
      for (const auto& [png, keys] : std::vector<std::pair<std::string, std::string>>{
               {".fve.png", "fve"}, {".reward.png", "reward_mean kl"}}) {
        const std::string cmd = fmt::format("bash '{}' '{}.jsonl' '{}{}' {} > /dev/null",
                                            a.plot_script, a.out, a.out, png, keys);
        if (std::system(cmd.c_str()) != 0) std::cerr << "plot failed: " << cmd << "\n";
      }
    }

    json result = {{"example", kProgram},
                   {"ranks", dp.size()},
                   {"communicator", world.name()},
                   {"shard_optimizer", a.shard_optimizer},
                   {"rl_samples_per_s",
                    rl_step_s > 0 ? double(a.rl_steps * a.rl_batch * a.group) / rl_step_s : 0.0},
                   {"rl_step_s", a.rl_steps > 0 ? rl_step_s / double(a.rl_steps) : 0.0},
                   {"allreduce_share", rl_step_s > 0 ? rl_comm_s / rl_step_s : 0.0},
                   {"corpus", text_mode ? a.text_path : std::string("synthetic_world")},
                   {"seed", a.seed},
                   {"fve_sft", sft.fve},
                   {"fve_rl", rl.fve},
                   {"fve_shuffled_control", sft.fve_shuffled},
                   {"fve_shuffled_control_rl", rl.fve_shuffled},
                   {"fve_truth_text_sft", sft.fve_truth_text},
                   {"fve_truth_text_rl", rl.fve_truth_text},
                   {"av_loss_true", av_loss_true},
                   {"av_loss_shuffled", av_loss_shuffled},
                   {"attribute_accuracy", rl.attribute_accuracy},
                   {"attribute_accuracy_sft", sft.attribute_accuracy},
                   {"per_attribute_rl", rl.per_attribute},
                   {"withheld", a.withhold},
                   {"withheld_accuracy_sft", sft.withheld_accuracy},
                   {"withheld_accuracy_rl", rl.withheld_accuracy},
                   {"rhyme_word_accuracy", rl.rhyme_word_accuracy},
                   {"eval_marker_detection", rl.eval_marker_detection},
                   {"failure_rate_rl", rl.failure_rate},
                   {"recurring_claim_truth", recurring_n > 0 ? recurring_true / recurring_n : 0.0},
                   {"one_off_claim_truth", oneoff_n > 0 ? oneoff_true / oneoff_n : 0.0},
                   {"steering_success", steering_success},
                   {"steering_attribute", a.steer_attribute},
                   {"steering_control", steering_control},
                   {"steering_alpha", a.steering_alphas[best]},
                   {"steering_sweep", steering_sweep},
                   {"fve_baseline_B", B},
                   {"centre", a.centre},
                   {"phase_seconds", phases},
                   {"minutes", since(start) / 60}};
    if (text_mode)  // nothing to check the words against but the text itself
      for (const char* key :
           {"attribute_accuracy", "attribute_accuracy_sft", "per_attribute_rl", "withheld",
            "withheld_accuracy_sft", "withheld_accuracy_rl", "rhyme_word_accuracy",
            "eval_marker_detection", "recurring_claim_truth", "one_off_claim_truth",
            "steering_success", "steering_control", "steering_alpha", "steering_sweep",
            "steering_attribute"})
        result.erase(key);
    log.write(result);
    std::cout << result.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << kProgram << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
