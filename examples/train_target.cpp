// Trains the target model of a natural language autoencoder: a small
// transformer that has learned the synthetic world (characters, places,
// moods, a planned rhyme, an evaluation marker and a cipher), so that its
// activations hold known facts worth explaining.
//
//   train_target --seed 1 --out runs/target
//
// writes runs/target.ckpt (model), runs/target.tokenizer.json and
// runs/target.jsonl (metrics), then proves on the test split that the model
// learned the world:
//   rhyme_accuracy        greedy continuation of "... with the" rhymes
//   eval_marker_accuracy  the ending is "Test over." iff "[eval]" is in the text
//   cipher_accuracy       speech after "whispered:" is pig latin, after "said:" plain
//   probe_accuracy        per attribute, a linear probe on the residual stream at
//                         the extraction layer (~2/3 depth), at the marked
//                         positions that need that attribute: what an
//                         explanation of those activations can truthfully say
// and ends with one JSON line holding those, val_loss and minutes.
//
// The defaults (Llama flavour, 2,500 steps) meet every target for every seed
// measured: the rhyme and the object copy both need attention to "the word
// after X", a relative-position pattern that rotary embeddings give almost
// for free. The GPT-2 flavour must learn it from absolute positions and
// stalls on a plateau for a seed-dependent number of steps (README).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <deque>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_options.hpp"
#include "nla/metrics/linear_probe.hpp"
#include "nla/nla.hpp"
#include "nla/text/world_tokens.hpp"
#include "nla/train/lm_batch.hpp"

namespace {

using namespace nla;
using json = nlohmann::json;
using Tokens = std::vector<std::int32_t>;

struct Args {
  std::string flavour = "llama", out = "runs/target", text_path, load;
  DocumentSeparator text_separator = DocumentSeparator::BlankLine;
  std::uint64_t seed = 1;
  index_t steps = 2500, batch = 32, vocab = 512, context = 64, d_model = 128, layers = 4, heads = 4;
  index_t eval_every = 250, val_docs = 256, test_docs = 400, probe_train_docs = 2000;
  index_t tokenizer_docs = 4000;
  double lr = 2e-3, text_fraction = 0.0, max_minutes = 0;
};

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
std::vector<std::string> continue_greedy(Generator<Cpu, float>& gen, const BpeTokenizer& tok,
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

ProbeData collect_probe_data(TransformerLM<Cpu, float>& model, WorldData& data, Split split,
                             index_t count, index_t stream, std::int32_t pad_id) {
  ProbeData pd;
  LmActivations<float, Cpu> acts;
  LmBatch<Cpu> batch;
  const index_t d = model.config().d_model, chunk = 64;
  for (index_t first = 0; first < count; first += chunk) {
    std::vector<const Tokens*> seqs;
    const index_t n = std::min(chunk, count - first);
    for (index_t i = 0; i < n; ++i) seqs.push_back(&data.tokens(split, first + i).tokens);
    pack_lm_batch(model.backend(), seqs, pad_id, batch);
    auto x = model.forward_stream(batch.tokens.view(), stream, acts);
    const index_t t = x.shape()[1];
    const auto h = to_host(model.backend(), ConstView<float, Cpu>(x));
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

xt::xtensor<float, 2> stack(const std::vector<std::vector<float>>& rows) {
  xt::xtensor<float, 2> x = xt::xtensor<float, 2>::from_shape({rows.size(), rows[0].size()});
  for (std::size_t i = 0; i < rows.size(); ++i) std::copy(rows[i].begin(), rows[i].end(), &x(i, 0));
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Train the target model on the synthetic world and prove what it learned."};
  app.add_option("--flavour", a.flavour, "gpt2 or llama")->check(CLI::IsMember({"gpt2", "llama"}));
  app.add_option("--steps", a.steps, "training steps")->check(CLI::PositiveNumber);
  app.add_option("--batch", a.batch, "documents per step")->check(CLI::PositiveNumber);
  app.add_option("--vocab", a.vocab, "BPE vocabulary size (incl. 256 bytes and 3 specials)")
      ->check(CLI::Range(260, 65536));
  app.add_option("--context", a.context, "context length")->check(CLI::Range(16, 4096));
  app.add_option("--d-model", a.d_model, "residual width")->check(CLI::PositiveNumber);
  app.add_option("--layers", a.layers, "transformer blocks")->check(CLI::PositiveNumber);
  app.add_option("--heads", a.heads, "attention heads")->check(CLI::PositiveNumber);
  app.add_option("--lr", a.lr, "peak learning rate (warm-up, then cosine to lr/10)");
  app.add_option("--seed", a.seed, "seed of the world, initialisation and data order");
  app.add_option("--out", a.out, "output prefix: .ckpt, .tokenizer.json, .jsonl");
  app.add_option("--text", a.text_path, "mix documents of this UTF-8 text file into training")
      ->check(CLI::ExistingFile);
  app.add_option("--text-fraction", a.text_fraction, "share of training documents from --text")
      ->check(CLI::Range(0.0, 0.9));
  examples::add_text_separator_option(app, a.text_separator);
  app.add_option("--eval-every", a.eval_every, "steps between validations")
      ->check(CLI::PositiveNumber);
  app.add_option("--test-docs", a.test_docs, "test documents for the behaviour checks and probes")
      ->check(CLI::PositiveNumber);
  app.add_option("--probe-train-docs", a.probe_train_docs, "training documents for the probes")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-minutes", a.max_minutes, "stop training after this long (0: no limit)");
  app.add_option("--load", a.load,
                 "evaluate this checkpoint (trained with the same --seed) instead of training")
      ->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);

  try {
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
    const auto config =
        !a.load.empty() ? read_checkpoint_config(a.load)
        : a.flavour == "gpt2"
            ? TransformerConfig::gpt2(vocab, a.context, a.d_model, a.layers, a.heads)
            : TransformerConfig::llama(vocab, a.context, a.d_model, a.layers, a.heads,
                                       a.heads % 2 == 0 ? a.heads / 2 : a.heads);
    NLA_CHECK(config.vocab_size == vocab && config.context_length == a.context, "train_target",
              "checkpoint '{}' has vocabulary {} and context {}, but --seed {} gives a "
              "tokenizer of {} tokens and --context is {}",
              a.load, config.vocab_size, config.context_length, a.seed, vocab, a.context);
    TransformerLM<Cpu, float> model(config, a.seed);
    LmTrainerOptions options;
    options.adamw.weight_decay = 0.1;
    options.schedule = {a.lr, a.lr / 10, std::min<std::int64_t>(100, a.steps / 10), a.steps};
    LmTrainer<Cpu, float> trainer(model, options);
    JsonlWriter log(a.out + ".jsonl");
    LmBatch<Cpu> batch;

    auto validate = [&] {
      double sum = 0, count = 0;
      for (index_t first = 0; first < a.val_docs; first += a.batch) {
        std::vector<const Tokens*> seqs;
        for (index_t i = first; i < std::min(a.val_docs, first + a.batch); ++i)
          seqs.push_back(&data.tokens(Split::Validation, std::uint64_t(i)).tokens);
        pack_lm_batch(model.backend(), seqs, tokenizer.pad_id(), batch);
        sum += trainer.evaluate(batch.tokens.view(), batch.targets.view()) *
               double(batch.target_count);
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
    Generator<Cpu, float> gen(model);
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
    double rhyme_hits = 0, eval_hits = 0, cipher_hits = 0, marked = 0, marked_hits = 0,
           ciphered = 0, ciphered_hits = 0;
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

    const json result = {
        {"example", "train_target"},
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
  } catch (const std::exception& e) {
    std::cerr << "train_target: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
