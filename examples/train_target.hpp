#pragma once
// train_target: trains the target model of a natural language autoencoder,
// a small transformer that has learned the synthetic world (characters, places,
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
//
// run_train_target<B> is compiled once per backend (programs_cpu.cpp,
// programs_cuda.cu) and linked into train_target and gpu_nla.

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli_options.hpp"
#include "nla/backend/cpu/cpu.hpp"
#include "nla/core/shape.hpp"

namespace nla {
namespace gpu {
class Cuda;
}

namespace examples {

struct TrainTargetArgs {
  std::string flavour = "llama", out = "runs/target", text_path, load;
  DocumentSeparator text_separator = DocumentSeparator::BlankLine;
  std::uint64_t seed = 1;
  index_t steps = 2500, batch = 32, vocab = 512, context = 64, d_model = 128, layers = 4, heads = 4;
  index_t eval_every = 250, val_docs = 256, test_docs = 400, probe_train_docs = 2000;
  index_t tokenizer_docs = 4000;
  double lr = 2e-3, text_fraction = 0.0, max_minutes = 0;
};

// train_target's options. With a prefix ("target-": --target-steps, ...) for
// a program that trains the target on the way: the model and training
// options only, its --seed and --out being the program's own.
inline void add_train_target_options(CLI::App& app, TrainTargetArgs& a,
                                     const std::string& prefix = "") {
  const auto name = [&](const char* option) { return "--" + prefix + option; };
  app.add_option(name("flavour"), a.flavour, "gpt2 or llama")
      ->check(CLI::IsMember({"gpt2", "llama"}));
  app.add_option(name("steps"), a.steps, "training steps")->check(CLI::PositiveNumber);
  app.add_option(name("batch"), a.batch, "documents per step")->check(CLI::PositiveNumber);
  app.add_option(name("vocab"), a.vocab, "BPE vocabulary size (incl. 256 bytes and 3 specials)")
      ->check(CLI::Range(260, 65536));
  app.add_option(name("context"), a.context, "context length")->check(CLI::Range(16, 4096));
  app.add_option(name("d-model"), a.d_model, "residual width")->check(CLI::PositiveNumber);
  app.add_option(name("layers"), a.layers, "transformer blocks")->check(CLI::PositiveNumber);
  app.add_option(name("heads"), a.heads, "attention heads")->check(CLI::PositiveNumber);
  app.add_option(name("lr"), a.lr, "peak learning rate (warm-up, then cosine to lr/10)");
  app.add_option(name("eval-every"), a.eval_every, "steps between validations")
      ->check(CLI::PositiveNumber);
  app.add_option(name("test-docs"), a.test_docs,
                 "test documents for the behaviour checks and probes")
      ->check(CLI::PositiveNumber);
  app.add_option(name("probe-train-docs"), a.probe_train_docs, "training documents for the probes")
      ->check(CLI::PositiveNumber);
  app.add_option(name("max-minutes"), a.max_minutes, "stop training after this long (0: no limit)");
  if (!prefix.empty()) return;
  app.add_option("--seed", a.seed, "seed of the world, initialisation and data order");
  app.add_option("--out", a.out, "output prefix: .ckpt, .tokenizer.json, .jsonl");
  app.add_option("--text", a.text_path, "mix documents of this UTF-8 text file into training")
      ->check(CLI::ExistingFile);
  app.add_option("--text-fraction", a.text_fraction, "share of training documents from --text")
      ->check(CLI::Range(0.0, 0.9));
  add_text_separator_option(app, a.text_separator);
  app.add_option("--load", a.load,
                 "evaluate this checkpoint (trained with the same --seed) instead of training")
      ->check(CLI::ExistingFile);
}

// Trains (or, with a.load, evaluates) the target model with every tensor on
// backend B; writes a.out + .ckpt, .tokenizer.json, .jsonl and returns the
// summary line (also printed). Throws nla::Error on bad input.
template <class B>
nlohmann::json run_train_target(const TrainTargetArgs& a);

extern template nlohmann::json run_train_target<Cpu>(const TrainTargetArgs&);
extern template nlohmann::json run_train_target<gpu::Cuda>(const TrainTargetArgs&);

}  // namespace examples
}  // namespace nla
