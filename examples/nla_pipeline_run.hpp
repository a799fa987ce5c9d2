#pragma once
// The definition of run_nla_pipeline<B> (nla_pipeline.hpp), included by the
// one translation unit per backend that instantiates it.

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

#include "nla/activations/activation_dataset.hpp"
#include "nla/activations/extract.hpp"
#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/nla_checkpoint.hpp"
#include "nla/bottleneck/nla_training.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/dist/data_parallel.hpp"
#include "nla/explain/claims.hpp"
#include "nla/explain/confidence.hpp"
#include "nla/explain/world_claims.hpp"
#include "nla/nla.hpp"
#include "nla/steer/steering.hpp"
#include "nla/summarize/keyword_summarizer.hpp"
#include "nla/summarize/world_truth_summarizer.hpp"
#include "nla_pipeline.hpp"

namespace nla::examples {

namespace pipeline_detail {

// Swallows what the other ranks would print a second time.
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return c; }
};

// Silences std::cout and std::cerr on every rank but 0 while it lives.
class QuietUnlessRoot {
 public:
  explicit QuietUnlessRoot(bool root) {
    if (root) return;
    out_ = std::cout.rdbuf(&null_);
    err_ = std::cerr.rdbuf(&null_);
  }
  ~QuietUnlessRoot() {
    if (out_) std::cout.rdbuf(out_);
    if (err_) std::cerr.rdbuf(err_);
  }
  QuietUnlessRoot(const QuietUnlessRoot&) = delete;
  QuietUnlessRoot& operator=(const QuietUnlessRoot&) = delete;

 private:
  NullBuffer null_;
  std::streambuf *out_ = nullptr, *err_ = nullptr;
};

using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace pipeline_detail

template <class B>
nlohmann::json run_nla_pipeline(NlaPipelineArgs a, Communicator& world, const char* program) {
  using json = nlohmann::json;
  using pipeline_detail::Clock;
  using pipeline_detail::since;
  DataParallelOptions dp_options;
  dp_options.shard_optimizer = a.shard_optimizer;
  dp_options.bucket_elements = std::max<index_t>(1, index_t(a.bucket_mb * (1 << 20) / 4));
  const DataParallel dp(world, dp_options);
  const bool root = dp.is_root();
  const pipeline_detail::QuietUnlessRoot quiet(root);

  const auto start = Clock::now();
  json phases = json::object();
  std::filesystem::create_directories(std::filesystem::path(a.out).parent_path().empty()
                                          ? std::filesystem::path(".")
                                          : std::filesystem::path(a.out).parent_path());

  // 1. The target model and its tokenizer.
  auto t = Clock::now();
  const BpeTokenizer tok = BpeTokenizer::from_hf_json(a.target + ".tokenizer.json");
  const TransformerConfig config = read_checkpoint_config(a.target + ".ckpt");
  TransformerLM<B, float> target(config);
  {
    AdamW<B, float> unused;
    load_checkpoint(a.target + ".ckpt", target, unused);
  }
  NLA_CHECK(config.vocab_size == tok.vocab_size(), program,
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
  const double baseline = fve_baseline_of(train);
  phases["extract_s"] = since(t);
  std::cerr << fmt::format("activations: {} train, {} test; B = {:.3f}; injection scale {}\n",
                           train.size(), test.size(), baseline, train.meta.injection_scale);

  // 3. Summaries: partial ones for the warm start, complete ones as truth.
  WorldTruthOptions partial_options;
  if (a.withhold != "none") {
    partial_options.withhold = attribute_from_name(a.withhold);
    NLA_CHECK(partial_options.withhold.has_value(), program, "--withhold '{}' is no attribute",
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
  Verbalizer<B, float> av(target, prompts.verbalizer, train.meta.injection_scale);
  if (a.centre) av.set_centre(train.meta.mean);
  Reconstructor<B, float> ar(target, layer + 1);
  TextNlaOptions text_options;
  text_options.group = a.group;
  text_options.max_tokens = a.max_tokens;
  text_options.kl = a.kl_coef;
  text_options.av_lr = a.rl_av_lr;
  text_options.ar_lr = a.rl_ar_lr;
  text_options.seed = a.seed;
  VerbalizerEncoder<B, float> encoder(
      av, text_options.encoder(tok),
      [&](const std::vector<std::int32_t>& ids) { return tok.decode(ids, true); });
  ReconstructorDecoder<B, float> decoder(ar, prompts.reconstructor, text_options.decoder());
  Autoencoder<VerbalizerEncoder<B, float>, ReconstructorDecoder<B, float>> nla(encoder, decoder,
                                                                               baseline);
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
    const NlaEvaluation ev = evaluate_nla(encoder, decoder, test, test_truth, baseline, withheld);
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
  warm_start(encoder, decoder, train, train_summaries, baseline, sft_options, 0,
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
    std::rotate(shuffled.begin(), shuffled.begin() + index_t(shuffled.size()) / 2, shuffled.end());
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
  // Where an RL step's time goes: sampling the explanations (rollout),
  // reconstructing from them (the reward), the verbalizer's GRPO update and
  // the reconstructor's regression update, summed over the steps.
  double rollout_s = 0, reconstruction_s = 0, policy_update_s = 0, reconstructor_update_s = 0;
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
             rollout_s += s.encode_s, reconstruction_s += s.decode_s;
             policy_update_s += s.encoder_learn_s, reconstructor_update_s += s.decoder_learn_s;
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

  const auto per_step = [&](double total) {
    return a.rl_steps > 0 ? total / double(a.rl_steps) : 0.0;
  };
  json result = {{"example", program},
                 {"ranks", dp.size()},
                 {"communicator", world.name()},
                 {"shard_optimizer", a.shard_optimizer},
                 {"rl_samples_per_s",
                  rl_step_s > 0 ? double(a.rl_steps * a.rl_batch * a.group) / rl_step_s : 0.0},
                 {"rl_step_s", per_step(rl_step_s)},
                 {"rl_step_breakdown_s",
                  {{"rollout", per_step(rollout_s)},
                   {"reconstruction", per_step(reconstruction_s)},
                   {"policy_update", per_step(policy_update_s)},
                   {"reconstructor_update", per_step(reconstructor_update_s)}}},
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
                 {"fve_baseline_B", baseline},
                 {"centre", a.centre},
                 {"phase_seconds", phases},
                 {"minutes", since(start) / 60}};
  if (text_mode)  // nothing to check the words against but the text itself
    for (const char* key : {"attribute_accuracy", "attribute_accuracy_sft", "per_attribute_rl",
                            "withheld", "withheld_accuracy_sft", "withheld_accuracy_rl",
                            "rhyme_word_accuracy", "eval_marker_detection", "recurring_claim_truth",
                            "one_off_claim_truth", "steering_success", "steering_control",
                            "steering_alpha", "steering_sweep", "steering_attribute"})
      result.erase(key);
  log.write(result);
  std::cout << result.dump() << std::endl;
  return result;
}

}  // namespace nla::examples
