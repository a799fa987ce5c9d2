#pragma once
// The training schedule of a text NLA over an activation dataset, shared by
// the tiny_nla demo and the `nla train` / `nla eval` commands:
//
//   warm start  step s: rows random_rows(batch, N, seed, 1000 + s); the AV
//               learns next-token loss on their summaries, the AR regresses
//               them onto the activations (warm-up + cosine lr, both models)
//   joint RL    step s: rows random_rows(batch, N, seed, 500000 + s), one
//               Autoencoder::step (AV by GRPO, AR by regression), with
//               `anchors` true descriptions (rows 900000 + s) mixed into the
//               AR's batch
//   evaluation  every test row explained once (evaluation sampling); FVE of
//               the explanations, of the true descriptions, and of a
//               shuffled control; on synthetic-world rows, whether the
//               explanation states each attribute its position needs
//
// Every draw is a pure function of (seed, step), so a run resumed from an NLA
// checkpoint at step s continues exactly as if it had never stopped.
//
// Data parallel (Autoencoder::set_data_parallel, which hands it to the
// verbalizer's encoder and the reconstructor's decoder): every rank
// draws the same global batch and trains on its slice (local_rows); the
// records are over all ranks. Evaluation is not split.

#include <algorithm>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/activations/activation_dataset.hpp"
#include "nla/bottleneck/autoencoder.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/explain/world_claims.hpp"
#include "nla/metrics/reconstruction.hpp"
#include "nla/optim/schedule.hpp"
#include "nla/text/bpe_tokenizer.hpp"

namespace nla {

// Rows idx of a dataset as a batch (vectors copied, rows referenced).
inline ActivationBatch batch_of(const ActivationDataset& data, const std::vector<index_t>& idx) {
  ActivationBatch b;
  b.dim = data.d_model();
  for (index_t i : idx) {
    const float* row = &data.vectors(std::size_t(i), 0);
    b.vectors.insert(b.vectors.end(), row, row + b.dim);
    b.rows.push_back(&data.rows[std::size_t(i)]);
  }
  return b;
}

// `count` row indices below n, drawn with replacement from (seed, stream).
inline std::vector<index_t> random_rows(index_t count, index_t n, std::uint64_t seed,
                                        std::uint64_t stream) {
  std::vector<index_t> idx;
  for (index_t i = 0; i < count; ++i) idx.push_back(index_t(random_bits(seed, stream, i) % n));
  return idx;
}

// A summary as a message the AR reads and the AV learns to write:
// " summary" + EOS.
inline Explanation summary_message(const BpeTokenizer& tok, const std::string& text) {
  Explanation e;
  e.tokens = tok.encode(" " + text);
  e.tokens.push_back(tok.eos_id());
  e.stopped = true;
  e.text = text;
  return e;
}

// This rank's part of a global batch of row indices.
inline std::vector<index_t> local_rows(const DataParallel& dp, const std::vector<index_t>& idx) {
  const Partition p = dp.batch_slice(index_t(idx.size()), "local_rows");
  return {idx.begin() + p.first, idx.begin() + p.last};
}

struct NlaPrompts {
  VerbalizerPrompt verbalizer;
  ReconstructorPrompt reconstructor;
};

// The prompts of the demo and of `nla train`: the verbalizer reads
// "<bos> explain<slot>:" and writes; the reconstructor reads
// "<bos> meaning<explanation> ->" at its last token.
inline NlaPrompts default_nla_prompts(const BpeTokenizer& tok) {
  auto with_bos = [&](const std::string& text) {
    std::vector<std::int32_t> p{tok.bos_id()};
    tok.encode_append(text, p);
    return p;
  };
  return {{with_bos(" explain"), tok.encode(":")}, {with_bos(" meaning"), tok.encode(" ->")}};
}

// The settings of a text NLA's encoder and decoder that sampling and RL read:
// G explanations per activation at temperature 1, ended by EOS or failed
// after max_tokens, GRPO with a k1 KL to the reference, constant RL lrs.
struct TextNlaOptions {
  index_t group = 8, max_tokens = 20;
  double kl = 0.01, av_lr = 1e-4, ar_lr = 1e-4;
  std::uint64_t seed = 1;

  VerbalizerEncoderOptions encoder(const BpeTokenizer& tok) const {
    VerbalizerEncoderOptions eo;
    eo.group_size = group;
    eo.sampling.max_new_tokens = max_tokens;
    eo.sampling.stop_tokens = {tok.eos_id()};
    eo.evaluation_sampling = eo.sampling;
    eo.grpo.kl_coef = kl;
    eo.adamw.lr = av_lr;
    eo.seed = seed;
    return eo;
  }
  ReconstructorDecoderOptions decoder() const {
    ReconstructorDecoderOptions dopt;
    dopt.adamw.lr = ar_lr;
    return dopt;
  }
};

struct WarmStartOptions {
  index_t steps = 800, batch = 32;
  double av_lr = 1e-3, ar_lr = 1e-3;  // peaks: warm-up over steps / 10, cosine to a tenth
  std::uint64_t seed = 1;
};

struct WarmStartRecord {
  index_t step = 0;  // 1-based: the steps done
  double av_loss = 0, ar_loss = 0, fve = 0;
};

// Warm-start steps [first_step, options.steps); on_step sees each one. The
// AR's loss depends only on the direction of its output, and a constant high
// lr makes FVE swing: hence warm-up and cosine decay.
template <class B, class T>
void warm_start(VerbalizerEncoder<B, T>& encoder, ReconstructorDecoder<B, T>& decoder,
                const ActivationDataset& train, const std::vector<Explanation>& summaries,
                double fve_baseline, const WarmStartOptions& o, index_t first_step,
                const std::function<void(const WarmStartRecord&)>& on_step) {
  NLA_CHECK(index_t(summaries.size()) == train.size(), "warm_start",
            "{} summaries for {} activations", summaries.size(), train.size());
  const auto warmup = std::max<std::int64_t>(1, o.steps / 10);
  const WarmupCosineSchedule av_schedule{o.av_lr, o.av_lr / 10, warmup, std::int64_t(o.steps)};
  const WarmupCosineSchedule ar_schedule{o.ar_lr, o.ar_lr / 10, warmup, std::int64_t(o.steps)};
  const DataParallel& dp = encoder.data_parallel();
  for (index_t step = first_step; step < o.steps; ++step) {
    const auto idx =
        local_rows(dp, random_rows(o.batch, train.size(), o.seed, 1000 + std::uint64_t(step)));
    const ActivationBatch batch = batch_of(train, idx);
    std::vector<std::vector<std::int32_t>> text;
    std::vector<Explanation> messages;
    for (index_t i : idx) {
      text.push_back(summaries[std::size_t(i)].tokens);
      messages.push_back(summaries[std::size_t(i)]);
    }
    WarmStartRecord r;
    r.step = step + 1;
    r.av_loss = encoder.learn_supervised(batch, text, av_schedule(step));
    decoder.options().adamw.lr = ar_schedule(step);
    decoder.decode(messages, batch.vectors, true);
    decoder.learn();
    r.ar_loss = decoder.stats()["loss"];
    r.fve = fraction_of_variance_explained(r.ar_loss, fve_baseline);
    if (on_step) on_step(r);
  }
}

struct JointRlOptions {
  index_t steps = 200, batch = 8, anchors = 8;
  std::uint64_t seed = 1;
};

// Joint RL steps [first_step, options.steps); on_step sees each one with the
// step's log record (encoder stats, fve, AR loss, seconds per phase).
template <class B, class T>
void joint_rl(
    Autoencoder<VerbalizerEncoder<B, T>, ReconstructorDecoder<B, T>>& nla,
    ReconstructorDecoder<B, T>& decoder, const ActivationDataset& train,
    const std::vector<Explanation>& truth, const JointRlOptions& o, index_t first_step,
    const std::function<void(index_t step, const AutoencoderStep&, nlohmann::json&)>& on_step) {
  NLA_CHECK(o.anchors == 0 || index_t(truth.size()) == train.size(), "joint_rl",
            "{} true descriptions for {} activations", truth.size(), train.size());
  const DataParallel& dp = nla.data_parallel();
  for (index_t step = first_step; step < o.steps; ++step) {
    if (o.anchors > 0) {
      const auto idx = local_rows(
          dp, random_rows(o.anchors, train.size(), o.seed, 900000 + std::uint64_t(step)));
      std::vector<Explanation> m;
      for (index_t i : idx) m.push_back(truth[std::size_t(i)]);
      decoder.set_anchors(std::move(m), batch_of(train, idx).vectors);
    }
    const auto idx =
        local_rows(dp, random_rows(o.batch, train.size(), o.seed, 500000 + std::uint64_t(step)));
    const AutoencoderStep s = nla.step(batch_of(train, idx));
    nlohmann::json rec = s.encoder;
    rec["phase"] = "rl";
    rec["step"] = step + 1;
    rec["fve"] = s.fve;
    rec["ar_loss"] = s.decoder["loss"];
    rec["encode_s"] = s.encode_s;
    rec["decode_s"] = s.decode_s;
    rec["encoder_learn_s"] = s.encoder_learn_s;
    rec["decoder_learn_s"] = s.decoder_learn_s;
    if (on_step) on_step(step + 1, s, rec);
  }
}

struct NlaEvaluation {
  double fve = 0, fve_truth_text = 0, fve_shuffled = 0;
  double attribute_accuracy = 0, withheld_accuracy = 0, rhyme_word_accuracy = 0,
         eval_marker_detection = 0, failure_rate = 0, mean_tokens = 0;
  nlohmann::json per_attribute = nlohmann::json::object();
  std::vector<Explanation> explanations;  // [test rows]
  std::vector<double> errors;             // [test rows], 4 (the worst) for failures

  // The log record, tagged with the phase.
  nlohmann::json record(const std::string& phase) const {
    return {{"phase", phase},
            {"fve", fve},
            {"fve_truth_text", fve_truth_text},
            {"fve_shuffled_control", fve_shuffled},
            {"attribute_accuracy", attribute_accuracy},
            {"per_attribute", per_attribute},
            {"withheld_accuracy", withheld_accuracy},
            {"failure_rate", failure_rate},
            {"explanation_tokens", mean_tokens}};
  }
};

// Explains every row of `test` once and scores it (see the top of this file).
// truth[i] is the true description of row i (its text may be empty on real
// text, where the AR's reading of the truth is then not measured); `withheld`
// names the attribute the warm-start summaries mostly left out.
template <class B, class T>
NlaEvaluation evaluate_nla(VerbalizerEncoder<B, T>& encoder, ReconstructorDecoder<B, T>& decoder,
                           const ActivationDataset& test, const std::vector<Explanation>& truth,
                           double fve_baseline, std::optional<Attribute> withheld = {}) {
  NLA_CHECK(index_t(truth.size()) == test.size(), "evaluate_nla",
            "{} true descriptions for {} activations", truth.size(), test.size());
  const index_t d = test.d_model();
  NlaEvaluation ev;
  std::vector<float> predictions;
  std::map<std::string, std::pair<double, double>> attr;  // name -> hits, count
  double withheld_hits = 0, withheld_n = 0, rhyme_hits = 0, rhyme_n = 0, eval_hits = 0, eval_n = 0,
         truth_err = 0, err = 0, failures = 0, tokens = 0;
  for (index_t first = 0; first < test.size(); first += 128) {
    std::vector<index_t> idx(std::size_t(std::min<index_t>(128, test.size() - first)));
    std::iota(idx.begin(), idx.end(), first);
    const ActivationBatch batch = batch_of(test, idx);
    const auto messages = encoder.encode(batch, false);
    const auto fb = decoder.decode(messages, batch.vectors, false);
    predictions.insert(predictions.end(), fb.predictions.begin(), fb.predictions.end());
    std::vector<Explanation> true_messages(truth.begin() + first,
                                           truth.begin() + first + index_t(idx.size()));
    for (double e : decoder.decode(true_messages, batch.vectors, false).error) truth_err += e;
    for (std::size_t k = 0; k < idx.size(); ++k) {
      const nlohmann::json& row = *batch.rows[k];
      const Explanation& m = messages[k];
      const double e = m.failed() ? 4.0 : fb.error[k];
      err += e;
      failures += m.failed();
      tokens += double(m.tokens.size());
      ev.explanations.push_back(m);
      ev.errors.push_back(e);
      if (!row.contains("needed")) continue;  // real text: no attributes
      for (Attribute at : needed_attributes(row)) {
        const bool ok = !m.failed() && states_attribute_correctly(m.text, at, row);
        auto& [hits, n] = attr[std::string(attribute_name(at))];
        hits += ok, n += 1;
        if (withheld && at == *withheld) withheld_hits += ok, withheld_n += 1;
        if (at == Attribute::Rhyme) rhyme_hits += ok, rhyme_n += 1;
        if (at == Attribute::EvalMarker) eval_hits += ok, eval_n += 1;
      }
    }
  }
  const double n = double(test.size());
  ev.fve = fraction_of_variance_explained(err / n, fve_baseline);
  ev.fve_truth_text = fraction_of_variance_explained(truth_err / n, fve_baseline);
  // Control: the prediction of row (i + n/2) mod n scored against row i.
  double shuffled = 0;
  for (index_t i = 0; i < test.size(); ++i) {
    const index_t j = (i + test.size() / 2) % test.size();
    shuffled += normalized_mse(&predictions[std::size_t(j * d)], &test.vectors(std::size_t(i), 0),
                               std::size_t(d));
  }
  ev.fve_shuffled = fraction_of_variance_explained(shuffled / n, fve_baseline);
  double hits_sum = 0, n_sum = 0;
  for (const auto& [name, hn] : attr) {
    ev.per_attribute[name] = hn.first / hn.second;
    hits_sum += hn.first, n_sum += hn.second;
  }
  ev.attribute_accuracy = n_sum > 0 ? hits_sum / n_sum : 0;
  ev.withheld_accuracy = withheld_n > 0 ? withheld_hits / withheld_n : 0;
  ev.rhyme_word_accuracy = rhyme_n > 0 ? rhyme_hits / rhyme_n : 0;
  ev.eval_marker_detection = eval_n > 0 ? eval_hits / eval_n : 0;
  ev.failure_rate = failures / n;
  ev.mean_tokens = tokens / n;
  return ev;
}

// The FVE baseline B of a dataset (metrics/reconstruction.hpp).
inline double fve_baseline_of(const ActivationDataset& data) {
  FveBaseline baseline{std::size_t(data.d_model())};
  for (index_t i = 0; i < data.size(); ++i) baseline.add(&data.vectors(std::size_t(i), 0));
  return baseline.baseline();
}

}  // namespace nla
