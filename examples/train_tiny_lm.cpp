// Trains a tiny byte-level transformer language model on the CPU and shows
// its loss falling and a sample. The text is a small seeded English grammar
// (or any file given with --text); tokens are bytes, so the vocabulary is 256.
//
//   train_tiny_lm --steps 600 --seed 1 --log tiny_lm.jsonl
//   scripts/plot_metrics.sh tiny_lm.jsonl tiny_lm.png
//
// stdout: one JSON line per evaluation, then a final one with the results
// (tokens_per_s, final_loss, val_loss, ...). stderr: a progress line and the
// sample.

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nla/io/jsonl.hpp"
#include "nla/io/progress.hpp"
#include "nla/nla.hpp"
#include "nla/rl/generate.hpp"

namespace {

using namespace nla;
using json = nlohmann::json;

// A seeded toy grammar: "The old man finds a green hat in the garden."
std::string grammar_text(std::uint64_t seed, std::uint64_t stream, index_t bytes) {
  static const std::vector<std::string> subjects = {
      "the cat", "a dog", "my friend", "the old man", "a little bird", "the teacher", "her sister"};
  static const std::vector<std::string> verbs = {"sees",    "likes",  "finds", "follows",
                                                 "carries", "paints", "hides"};
  static const std::vector<std::string> objects = {
      "the red ball", "a green hat", "the small boat", "an apple", "the blue door", "a paper kite"};
  static const std::vector<std::string> endings = {
      " in the garden.", " at night.", " again.", " every morning.", ".", " by the river."};
  std::string text;
  std::uint64_t i = 0;
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& {
    return v[random_bits(seed, stream, i++) % v.size()];
  };
  while (index_t(text.size()) < bytes) {
    std::string s = pick(subjects) + " " + pick(verbs) + " " + pick(objects) + pick(endings);
    s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
    text += s + (random_bits(seed, stream, i++) % 4 == 0 ? "\n" : " ");
  }
  return text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NLA_CHECK(in.good(), "train_tiny_lm", "cannot open text file '{}'", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Fills tokens [batch, t] and next-token targets [batch * t] with windows of
// `text` starting at counter-random offsets (stream, draw index).
void make_batch(const std::string& text, index_t batch, index_t t, std::uint64_t seed,
                std::uint64_t stream, std::uint64_t first_draw, Tensor<std::int32_t, Cpu>& tokens,
                Tensor<std::int32_t, Cpu>& targets) {
  tokens.resize(Shape{batch, t});
  targets.resize(Shape{batch * t});
  const std::uint64_t starts = text.size() - std::size_t(t) - 1;
  for (index_t b = 0; b < batch; ++b) {
    const std::size_t o = random_bits(seed, stream, first_draw + std::uint64_t(b)) % starts;
    for (index_t i = 0; i < t; ++i) {
      tokens.data()[b * t + i] = static_cast<unsigned char>(text[o + i]);
      targets.data()[b * t + i] = static_cast<unsigned char>(text[o + i + 1]);
    }
  }
}

std::string printable(const std::vector<std::int32_t>& bytes) {
  std::string s;
  for (auto b : bytes) s += char(b);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a tiny byte-level transformer LM on the CPU; print its loss and a sample."};
  std::string flavour = "gpt2", text_path, log_path = "train_tiny_lm.jsonl", checkpoint, resume;
  std::uint64_t seed = 1;
  index_t steps = 600, batch = 16, context = 64, d_model = 128, layers = 4, heads = 4;
  index_t eval_every = 100, eval_batches = 8, sample_tokens = 160;
  double lr = 2e-3, temperature = 0.7;
  app.add_option("--flavour", flavour, "gpt2 or llama")->check(CLI::IsMember({"gpt2", "llama"}));
  app.add_option("--steps", steps, "training steps")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--context", context, "tokens per sequence")->check(CLI::Range(2, 4096));
  app.add_option("--d-model", d_model, "residual width")->check(CLI::PositiveNumber);
  app.add_option("--layers", layers, "transformer blocks")->check(CLI::PositiveNumber);
  app.add_option("--heads", heads, "attention heads")->check(CLI::PositiveNumber);
  app.add_option("--lr", lr, "peak learning rate (warm-up, then cosine to lr/10)");
  app.add_option("--seed", seed, "seed of the initialisation, data order and sample");
  app.add_option("--text", text_path, "train on this file's bytes instead of the toy grammar")
      ->check(CLI::ExistingFile);
  app.add_option("--eval-every", eval_every, "steps between validation evaluations")
      ->check(CLI::PositiveNumber);
  app.add_option("--log", log_path, "JSONL metrics log ('' for none)");
  app.add_option("--checkpoint", checkpoint, "write a checkpoint here at each evaluation");
  app.add_option("--resume", resume, "continue from this checkpoint")->check(CLI::ExistingFile);
  app.add_option("--sample-tokens", sample_tokens, "length of the printed sample");
  app.add_option("--temperature", temperature, "sampling temperature of the sample");
  CLI11_PARSE(app, argc, argv);

  try {
    // Data: 90% / 10% of a file, or two grammar streams.
    std::string train_text, val_text;
    if (!text_path.empty()) {
      const std::string all = read_file(text_path);
      NLA_CHECK(index_t(all.size()) > 20 * (context + 1), "train_tiny_lm",
                "'{}' has {} bytes; need at least {}", text_path, all.size(), 20 * (context + 1));
      const std::size_t cut = all.size() * 9 / 10;
      train_text = all.substr(0, cut);
      val_text = all.substr(cut);
    } else {
      train_text = grammar_text(seed, 0, 1 << 20);
      val_text = grammar_text(seed, 1, 1 << 16);
    }

    TransformerConfig config = flavour == "gpt2"
                                   ? TransformerConfig::gpt2(256, context, d_model, layers, heads)
                                   : TransformerConfig::llama(256, context, d_model, layers, heads,
                                                              heads % 2 == 0 ? heads / 2 : heads);
    TransformerLM<Cpu, float> model(config, seed);
    LmTrainerOptions options;
    options.adamw.weight_decay = 0.1;
    options.schedule = {lr, lr / 10, std::min<std::int64_t>(50, steps / 10), steps};
    LmTrainer<Cpu, float> trainer(model, options);
    TrainingState state;
    if (!resume.empty()) {
      state = load_checkpoint(resume, model, trainer.optimizer());
      std::cerr << "resumed from " << resume << " at step " << state.step << "\n";
    }

    JsonlWriter log(log_path, !resume.empty());
    Tensor<std::int32_t, Cpu> tokens, targets;
    auto validate = [&] {
      double sum = 0;
      for (index_t i = 0; i < eval_batches; ++i) {
        make_batch(val_text, batch, context, seed, 2, std::uint64_t(i * batch), tokens, targets);
        sum += trainer.evaluate(tokens.view(), targets.view());
      }
      return sum / double(eval_batches);
    };

    const double tokens_per_step = double(batch * context);
    Progress progress(steps - state.step, "tok");
    double train_loss = 0, val_loss = 0, train_seconds = 0;
    const index_t first = state.step;
    for (index_t step = first; step < steps; ++step) {
      const double t0 = progress.elapsed();
      make_batch(train_text, batch, context, seed, 3, std::uint64_t(step * batch), tokens, targets);
      const LmStepResult r = trainer.step(tokens.view(), targets.view());
      train_seconds += progress.elapsed() - t0;
      train_loss = r.loss;
      state.step = step + 1;
      const double rate = tokens_per_step * double(step + 1 - first) / train_seconds;
      log.write({{"step", state.step},
                 {"train_loss", r.loss},
                 {"grad_norm", r.grad_norm},
                 {"lr", r.lr},
                 {"tokens_per_s", rate}});
      progress.update(step + 1 - first, tokens_per_step * double(step + 1 - first),
                      fmt::format("loss {:.3f}", r.loss));
      if (state.step % eval_every == 0 || state.step == steps) {
        val_loss = validate();
        const json record = {{"step", state.step},
                             {"train_loss", train_loss},
                             {"val_loss", val_loss},
                             {"tokens_per_s", rate}};
        log.write(record);
        std::cout << record.dump() << std::endl;
        if (!checkpoint.empty()) save_checkpoint(checkpoint, model, trainer.optimizer(), state);
      }
    }

    // A sample continuing a short prompt, decoded with the KV cache.
    const std::string prompt = text_path.empty() ? "The " : train_text.substr(0, 8);
    std::vector<std::int32_t> prompt_ids(prompt.begin(), prompt.end());
    SamplingOptions sampling;
    sampling.temperature = temperature;
    sampling.max_new_tokens = std::min(sample_tokens, context - index_t(prompt_ids.size()) + 1);
    Generator<Cpu, float> generator(model);
    GenerateOptions generate_options;
    generate_options.seed = seed;
    const auto sample = generator.generate({prompt_ids}, sampling, generate_options);
    const std::string sample_text = prompt + printable(sample[0].tokens);
    std::cerr << "sample: " << sample_text << "\n";

    const index_t trained = steps - first;
    std::cout << json{{"example", "train_tiny_lm"},
                      {"flavour", flavour},
                      {"seed", seed},
                      {"steps", steps},
                      {"final_loss", train_loss},
                      {"val_loss", val_loss},
                      {"tokens_per_s",
                       trained > 0 ? tokens_per_step * double(trained) / train_seconds : 0.0},
                      {"step_ms", trained > 0 ? 1e3 * train_seconds / double(trained) : 0.0},
                      {"seconds", progress.elapsed()},
                      {"sample", sample_text}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "train_tiny_lm: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
