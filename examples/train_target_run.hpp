#pragma once
// The definition of run_train_target<B> (train_target.hpp), included by the
// one translation unit per backend that instantiates it.

#include <algorithm>
#include <cmath>
#include <deque>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "nla/metrics/linear_probe.hpp"
#include "nla/nla.hpp"
#include "nla/text/world_tokens.hpp"
#include "nla/train/lm_batch.hpp"
#include "train_target.hpp"

namespace nla::examples {

namespace train_target_detail {

using Tokens = std::vector<std::int32_t>;

// Documents of a split, tokenized on demand and kept (they are small).
class WorldData {
 public:
  WorldData(const SyntheticWorld& world, const BpeTokenizer& tokenizer, index_t context)
      : world_(&world), tokenizer_(&tokenizer), context_(context) {}

  const WorldDocument& document(Split s, std::uint64_t i) { return entry(s, i).doc; }
  const TokenizedDocument& tokens(Split s, std::uint64_t i) { return entry(s, i).tokens; }

 private:
  struct Entry {
    WorldDocument doc;
    TokenizedDocument tokens;
  };
  Entry& entry(Split s, std::uint64_t i) {
    auto& v = cache_[int(s)];
    while (v.size() <= i) {
      Entry e{world_->generate(s, v.size()), {}};
      e.tokens = tokenize_world_document(*tokenizer_, e.doc);
      NLA_CHECK(index_t(e.tokens.tokens.size()) <= context_ + 1, "train_target",
                "{} document {} has {} tokens, more than context {} + 1", split_name(s), v.size(),
                e.tokens.tokens.size(), context_);
      v.push_back(std::move(e));
    }
    return v[i];
  }
  const SyntheticWorld* world_;
  const BpeTokenizer* tokenizer_;
  index_t context_;
  std::deque<Entry> cache_[3];  // a deque: references stay valid as it grows
};

// Greedy continuations of `prompts` (text), max_new tokens each, decoded.
template <class B>
std::vector<std::string> continue_greedy(Generator<B, float>& gen, const BpeTokenizer& tok,
                                         const std::vector<std::string>& prompts, index_t max_new) {
  std::vector<std::string> out;
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = max_new;
  greedy.stop_tokens = {tok.eos_id()};
  const std::size_t chunk = 64;
  for (std::size_t first = 0; first < prompts.size(); first += chunk) {
    std::vector<Tokens> ids;
    for (std::size_t i = first; i < std::min(prompts.size(), first + chunk); ++i) {
      ids.push_back({tok.bos_id()});
      tok.encode_append(prompts[i], ids.back());
    }
    for (const Generation& g : gen.generate(ids, greedy))
      out.push_back(tok.decode(g.tokens, /*skip_special=*/true));
  }
  return out;
}

// The residual stream at `stream` for every marked position of `count`
// documents of a split, grouped by the attribute the probe reads.
struct ProbeData {
  std::vector<std::vector<float>> rows[kAllAttributes.size()];
  std::vector<int> labels[kAllAttributes.size()];
};

template <class B>
ProbeData collect_probe_data(TransformerLM<B, float>& model, WorldData& data, Split split,
                             index_t count, index_t stream, std::int32_t pad_id) {
  ProbeData pd;
  LmActivations<float, B> acts;
  LmBatch<B> batch;
  const index_t d = model.config().d_model, chunk = 64;
  for (index_t first = 0; first < count; first += chunk) {
    std::vector<const Tokens*> seqs;
    const index_t n = std::min(chunk, count - first);
    for (index_t i = 0; i < n; ++i) seqs.push_back(&data.tokens(split, first + i).tokens);
    pack_lm_batch(model.backend(), seqs, pad_id, batch);
    auto x = model.forward_stream(batch.tokens.view(), stream, acts);
    const index_t t = x.shape()[1];
    const auto h = to_host(model.backend(), ConstView<float, B>(x));
    for (index_t i = 0; i < n; ++i) {
      const WorldDocument& doc = data.document(split, first + i);
      const TokenizedDocument& td = data.tokens(split, first + i);
      for (std::size_t m = 0; m < doc.marked.size(); ++m) {
        const float* row = h.data() + (i * t + td.marked[m]) * d;
        for (std::size_t a = 0; a < kAllAttributes.size(); ++a) {
          if (!doc.marked[m].needs(kAllAttributes[a])) continue;
          pd.rows[a].emplace_back(row, row + d);
          pd.labels[a].push_back(doc.attributes.value(kAllAttributes[a]));
        }
      }
    }
  }
  return pd;
}

inline xt::xtensor<float, 2> stack(const std::vector<std::vector<float>>& rows) {
  xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({rows.size(), rows[0].size()});
  for (std::size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), &x(i, 0));
  return x;
}

}  // namespace train_target_detail

template <class B>
nlohmann::json run_train_target(const TrainTargetArgs& a) {
  using json = nlohmann::json;
  using namespace train_target_detail;
  Progress clock(1, "");
  // The world and a tokenizer trained on its training split (plus text).
  WorldOptions wo;
  wo.seed = a.seed;
  SyntheticWorld world(wo);
  std::vector<std::string> text_docs;
  if (!a.text_path.empty() && a.text_fraction > 0) {
    CorpusOptions co;
    co.max_document_bytes = std::size_t(a.context) * 3;
    co.separator = a.text_separator;
    for (auto& d : select_split(read_corpus({a.text_path}, co), Split::Train, a.seed))
      text_docs.push_back(std::move(d.text));
    NLA_CHECK(!text_docs.empty(), "train_target", "'{}' has no training documents", a.text_path);
  }
  std::vector<std::string> tokenizer_corpus;
  for (index_t i = 0; i < a.tokenizer_docs; ++i)
    tokenizer_corpus.push_back(world.generate(Split::Train, std::uint64_t(i)).text);
  for (std::size_t i = 0; i < text_docs.size() && i < std::size_t(a.tokenizer_docs); ++i)
    tokenizer_corpus.push_back(text_docs[i]);
  BpeTrainOptions bo;
  bo.vocab_size = std::int32_t(a.vocab);
  const BpeTokenizer tokenizer = BpeTokenizer::train(tokenizer_corpus, bo);
  tokenizer.save_hf_json(a.out + ".tokenizer.json");
  std::cerr << "tokenizer: " << tokenizer.vocab_size() << " tokens, " << tokenizer.merge_count()
            << " merges\n";
  WorldData data(world, tokenizer, a.context);
  std::vector<Tokens> text_tokens;
  for (const auto& t : text_docs) {
    Tokens ids{tokenizer.bos_id()};
    tokenizer.encode_append(t, ids);
    ids.resize(std::min(ids.size(), std::size_t(a.context)));
    ids.push_back(tokenizer.eos_id());
    text_tokens.push_back(std::move(ids));
  }

  // The model: vocab is the tokenizer's (training may stop below --vocab).
  const index_t vocab = tokenizer.vocab_size();
  const auto config = !a.load.empty() ? read_checkpoint_config(a.load)
                      : a.flavour == "gpt2"
                          ? TransformerConfig::gpt2(vocab, a.context, a.d_model, a.layers, a.heads)
                          : TransformerConfig::llama(vocab, a.context, a.d_model, a.layers, a.heads,
                                                     a.heads % 2 == 0 ? a.heads / 2 : a.heads);
  NLA_CHECK(config.vocab_size == vocab && config.context_length == a.context, "train_target",
            "checkpoint '{}' has vocabulary {} and context {}, but --seed {} gives a "
            "tokenizer of {} tokens and --context is {}",
            a.load, config.vocab_size, config.context_length, a.seed, vocab, a.context);
  TransformerLM<B, float> model(config, a.seed);
  LmTrainerOptions options;
  options.adamw.weight_decay = 0.1;
  options.schedule = {a.lr, a.lr / 10, std::min<std::int64_t>(100, a.steps / 10), a.steps};
  LmTrainer<B, float> trainer(model, options);
  JsonlWriter log(a.out + ".jsonl");
  LmBatch<B> batch;

  auto validate = [&] {
    double sum = 0, count = 0;
    for (index_t first = 0; first < a.val_docs; first += a.batch) {
      std::vector<const Tokens*> seqs;
      for (index_t i = first; i < std::min(a.val_docs, first + a.batch); ++i)
        seqs.push_back(&data.tokens(Split::Validation, std::uint64_t(i)).tokens);
      pack_lm_batch(model.backend(), seqs, tokenizer.pad_id(), batch);
      sum +=
          trainer.evaluate(batch.tokens.view(), batch.targets.view()) * double(batch.target_count);
      count += double(batch.target_count);
    }
    return sum / count;
  };

  // Training: document i of step s is world document s * batch + i, or a
  // text document with probability text_fraction (counter RNG, stream 7).
  Progress progress(a.steps, "tok");
  double train_loss = 0, val_loss = 0, tokens_seen = 0, train_seconds = 0;
  index_t steps_done = 0;
  TrainingState state;
  if (!a.load.empty()) {
    state = load_checkpoint(a.load, model, trainer.optimizer());
    steps_done = state.step;
    val_loss = validate();
  }
  for (index_t step = 0; a.load.empty() && step < a.steps; ++step) {
    if (a.max_minutes > 0 && progress.elapsed() > 60 * a.max_minutes) break;
    std::vector<const Tokens*> seqs;
    for (index_t i = 0; i < a.batch; ++i) {
      const std::uint64_t k = std::uint64_t(step * a.batch + i);
      if (!text_tokens.empty() && random_uniform(a.seed, 7, k) < a.text_fraction)
        seqs.push_back(&text_tokens[random_bits(a.seed, 8, k) % text_tokens.size()]);
      else
        seqs.push_back(&data.tokens(Split::Train, k).tokens);
    }
    pack_lm_batch(model.backend(), seqs, tokenizer.pad_id(), batch);
    const double t0 = progress.elapsed();
    const LmStepResult r = trainer.step(batch.tokens.view(), batch.targets.view());
    train_seconds += progress.elapsed() - t0;
    train_loss = r.loss;
    tokens_seen += double(batch.tokens.size());
    steps_done = state.step = step + 1;
    if (state.step % 10 == 0)
      log.write({{"step", state.step},
                 {"train_loss", r.loss},
                 {"grad_norm", r.grad_norm},
                 {"lr", r.lr},
                 {"tokens_per_s", tokens_seen / train_seconds}});
    progress.update(state.step, tokens_seen, fmt::format("loss {:.3f}", r.loss));
    if (state.step % a.eval_every == 0 || state.step == a.steps) {
      val_loss = validate();
      const json rec = {{"step", state.step},
                        {"train_loss", train_loss},
                        {"val_loss", val_loss},
                        {"tokens_per_s", tokens_seen / train_seconds}};
      log.write(rec);
      std::cout << rec.dump() << std::endl;
      save_checkpoint(a.out + ".ckpt", model, trainer.optimizer(), state);
    }
  }
  if (a.load.empty() && steps_done % a.eval_every != 0 && steps_done != a.steps) {
    val_loss = validate();
    save_checkpoint(a.out + ".ckpt", model, trainer.optimizer(), state);
  }

  // Samples from BOS.
  Generator<B, float> gen(model);
  SamplingOptions sampling;
  sampling.temperature = 0.8;
  sampling.max_new_tokens = a.context;
  sampling.stop_tokens = {tokenizer.eos_id()};
  GenerateOptions go;
  go.seed = a.seed;
  for (const Generation& g :
       gen.generate({{tokenizer.bos_id()}, {tokenizer.bos_id()}}, sampling, go))
    std::cerr << "sample:\n" << tokenizer.decode(g.tokens, true) << "\n\n";

  // Behaviour checks on the test split.
  std::vector<std::string> rhyme_prompts, eval_prompts, cipher_prompts;
  for (index_t i = 0; i < a.test_docs; ++i) {
    const WorldDocument& doc = data.document(Split::Test, std::uint64_t(i));
    rhyme_prompts.push_back(rhyme_check(doc).prompt);
    eval_prompts.push_back(eval_marker_check(doc).prompt);
    cipher_prompts.push_back(cipher_check(doc).prompt);
  }
  const auto rhymes = continue_greedy(gen, tokenizer, rhyme_prompts, 4);
  const auto endings = continue_greedy(gen, tokenizer, eval_prompts, 6);
  const auto speech = continue_greedy(gen, tokenizer, cipher_prompts, 16);
  double rhyme_hits = 0, eval_hits = 0, cipher_hits = 0, marked = 0, marked_hits = 0, ciphered = 0,
         ciphered_hits = 0;
  for (index_t i = 0; i < a.test_docs; ++i) {
    const WorldDocument& doc = data.document(Split::Test, std::uint64_t(i));
    rhyme_hits += score_rhyme(doc, rhymes[i]);
    const bool e = score_eval_marker(doc, endings[i]), c = score_cipher(doc, speech[i]);
    eval_hits += e;
    cipher_hits += c;
    marked += doc.attributes.eval_marker;
    marked_hits += doc.attributes.eval_marker && e;
    ciphered += doc.attributes.cipher;
    ciphered_hits += doc.attributes.cipher && c;
  }
  const double n_test = double(a.test_docs);

  // Linear probes at every stream; the extraction layer's are the result.
  const index_t extraction_stream = (2 * config.n_layers + 2) / 3;
  auto probe_stream = [&](index_t stream) {
    const ProbeData train_pd = collect_probe_data(model, data, Split::Train, a.probe_train_docs,
                                                  stream, tokenizer.pad_id());
    const ProbeData test_pd =
        collect_probe_data(model, data, Split::Test, a.test_docs, stream, tokenizer.pad_id());
    json probes = json::object();
    for (std::size_t k = 0; k < kAllAttributes.size(); ++k) {
      if (train_pd.rows[k].empty() || test_pd.rows[k].empty()) continue;
      const int classes = attribute_class_count(kAllAttributes[k]);
      const auto probe = LinearProbe::fit(stack(train_pd.rows[k]), train_pd.labels[k], classes);
      probes[attribute_name(kAllAttributes[k])] =
          probe.accuracy(stack(test_pd.rows[k]), test_pd.labels[k]);
    }
    return probes;
  };
  json probes_by_stream = json::object();
  for (index_t stream = 1; stream <= config.n_layers; ++stream) {
    probes_by_stream[std::to_string(stream)] = probe_stream(stream);
    std::cerr << "probes at stream " << stream << " (output of block " << stream - 1
              << "): " << probes_by_stream[std::to_string(stream)].dump() << "\n";
  }
  const json probes = probes_by_stream[std::to_string(extraction_stream)];

  json result = {{"example", "train_target"},
                 {"flavour", a.flavour},
                 {"seed", a.seed},
                 {"steps", steps_done},
                 {"final_loss", train_loss},
                 {"val_loss", val_loss},
                 {"rhyme_accuracy", rhyme_hits / n_test},
                 {"eval_marker_accuracy", eval_hits / n_test},
                 {"eval_marker_accuracy_marked", marked > 0 ? marked_hits / marked : 0.0},
                 {"cipher_accuracy", cipher_hits / n_test},
                 {"cipher_accuracy_triggered", ciphered > 0 ? ciphered_hits / ciphered : 0.0},
                 {"probe_accuracy", probes},
                 {"probe_stream", extraction_stream},
                 {"probe_accuracy_by_stream", probes_by_stream},
                 {"test_docs", a.test_docs},
                 {"tokens_per_s", train_seconds > 0 ? tokens_seen / train_seconds : 0.0},
                 {"minutes", clock.elapsed() / 60}};
  log.write(result);
  std::cout << result.dump() << std::endl;
  return result;
}

}  // namespace nla::examples
