#pragma once
// What the subcommands of `nla` share: loading a target model with its
// tokenizer, building the verbalizer / reconstructor stack, summaries, the
// JSON config file format, output conventions and exit statuses.
//
// Output: results go to stdout as JSON lines, messages and progress to
// stderr. Exit status: 0 success, 2 bad usage (unknown option, bad value,
// missing argument), 1 failure (bad file, bad data, anything the library
// refuses).

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "nla/nla.hpp"

namespace nla::cli {

using json = nlohmann::json;

// Bad usage found after parsing (options that do not go together): exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Sampled text may hold invalid UTF-8 (a byte-level token can end inside a
// character): it is written as U+FFFD.
inline void emit(const json& record) {
  std::cout << record.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
}

// A subcommand's action, run after a successful parse.
using Action = std::function<void()>;

// --config FILE.json: a JSON object whose keys are long option names without
// dashes ({"steps": 400, "av-lr": 1e-3}). Its entries are spliced into the
// command line where --config stands (true: the bare flag, false: nothing,
// arrays: the option once per element), so they are checked like typed
// options, unknown keys included, and options typed after --config override
// them (every option keeps its last value).
inline std::vector<std::string> expand_json_config(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], path;
    if (arg == "--config" && i + 1 < argc) {
      path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      path = arg.substr(9);
    } else {
      out.push_back(arg);
      continue;
    }
    json j;
    try {
      j = json::parse(io::read_file("nla", "config file", path));
    } catch (const json::exception& e) {
      throw Error("nla", fmt::format("config file '{}': not valid JSON: {}", path, e.what()));
    }
    if (!j.is_object())
      throw Error("nla", fmt::format("config file '{}': not a JSON object", path));
    auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
    for (const auto& [key, value] : j.items()) {
      if (value.is_boolean()) {
        if (value.get<bool>()) out.push_back("--" + key);
      } else if (value.is_array()) {
        for (const auto& v : value) out.insert(out.end(), {"--" + key, text(v)});
      } else {
        out.insert(out.end(), {"--" + key, text(value)});
      }
    }
  }
  return out;
}

inline void add_json_config_option(CLI::App* app) {
  // Parsed before CLI11 sees the line (expand_json_config); listed for --help.
  app->add_option("--config",
                  "JSON file of option values ({\"steps\": 400, ...}); options "
                  "after it override it");
}

// Creates the directory a file or prefix will be written in.
inline void make_parent_directory(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
}

// A target model and its tokenizer, from a Hugging Face directory
// (config.json, safetensors, tokenizer.json) or a train_target prefix
// (PREFIX.ckpt, PREFIX.tokenizer.json).
struct Target {
  std::unique_ptr<TransformerLM<Cpu, float>> model;
  BpeTokenizer tokenizer;
  std::string id;  // parameter hash
};

inline Target load_target(const std::string& path) {
  namespace fs = std::filesystem;
  Target t;
  if (fs::is_directory(path) && fs::exists(fs::path(path) / "config.json")) {
    t.model = std::make_unique<TransformerLM<Cpu, float>>(hf::load_model<Cpu, float>(path));
    const std::string tok = (fs::path(path) / "tokenizer.json").string();
    if (!fs::exists(tok))
      throw Error("nla", fmt::format("model directory '{}' has no tokenizer.json", path));
    t.tokenizer = BpeTokenizer::from_hf_json(tok);
  } else if (fs::exists(path + ".ckpt")) {
    t.model = std::make_unique<TransformerLM<Cpu, float>>(read_checkpoint_config(path + ".ckpt"));
    AdamW<Cpu, float> unused;
    load_checkpoint(path + ".ckpt", *t.model, unused);
    t.tokenizer = BpeTokenizer::from_hf_json(path + ".tokenizer.json");
  } else {
    throw Error("nla", fmt::format("model '{}' is neither a Hugging Face directory (config.json) "
                                   "nor a train_target prefix ({}.ckpt)",
                                   path, path));
  }
  NLA_CHECK(t.tokenizer.vocab_size() <= t.model->config().vocab_size, "nla",
            "model '{}': the tokenizer has {} tokens, the model's vocabulary only {}", path,
            t.tokenizer.vocab_size(), t.model->config().vocab_size);
  t.id = parameter_hash(*t.model);
  return t;
}

// Verbalizer and reconstructor, and the encoder / decoder that wrap them (one
// object: the wrappers keep pointers to the models).
struct NlaStack {
  Verbalizer<Cpu, float> av;
  Reconstructor<Cpu, float> ar;
  VerbalizerPrompt av_prompt;
  ReconstructorPrompt ar_prompt;
  std::unique_ptr<VerbalizerEncoder<Cpu, float>> encoder;
  std::unique_ptr<ReconstructorDecoder<Cpu, float>> decoder;

  NlaStack(Verbalizer<Cpu, float>&& verbalizer, Reconstructor<Cpu, float>&& reconstructor,
           const NlaPrompts& prompts, const BpeTokenizer& tok, const TextNlaOptions& o)
      : av(std::move(verbalizer)),
        ar(std::move(reconstructor)),
        av_prompt(prompts.verbalizer),
        ar_prompt(prompts.reconstructor) {
    encoder = std::make_unique<VerbalizerEncoder<Cpu, float>>(
        av, o.encoder(tok),
        [&tok](const std::vector<std::int32_t>& ids) { return tok.decode(ids, true); });
    decoder = std::make_unique<ReconstructorDecoder<Cpu, float>>(ar, ar_prompt, o.decoder());
  }
};

// A fresh stack from the target (before the warm start).
inline std::unique_ptr<NlaStack> stack_from_target(const Target& t, const ActivationDataset& data,
                                                   const TextNlaOptions& o, bool centre) {
  const NlaPrompts prompts = default_nla_prompts(t.tokenizer);
  Verbalizer<Cpu, float> av(*t.model, prompts.verbalizer, data.meta.injection_scale);
  if (centre) av.set_centre(data.meta.mean);
  Reconstructor<Cpu, float> ar(*t.model, data.meta.layer + 1);
  return std::make_unique<NlaStack>(std::move(av), std::move(ar), prompts, t.tokenizer, o);
}

// A stack from a release directory (nla_meta.json and the two models).
struct Release {
  NlaReleaseMeta meta;
  BpeTokenizer tokenizer;
  std::unique_ptr<NlaStack> stack;
};

inline Release load_release(const std::string& dir, const TextNlaOptions& o) {
  auto loaded = load_nla_release<Cpu, float>(dir);
  Release r;
  r.meta = loaded.meta;
  r.tokenizer = BpeTokenizer::from_hf_json(
      (std::filesystem::path(dir) / "reconstructor" / "tokenizer.json").string());
  r.stack = std::make_unique<NlaStack>(
      std::move(loaded.verbalizer), std::move(loaded.reconstructor),
      NlaPrompts{r.meta.verbalizer_prompt, r.meta.reconstructor_prompt}, r.tokenizer, o);
  return r;
}

// Summaries of a dataset's rows, as messages: "world" (the synthetic world's
// truth, `withhold` left out of most), "keywords" (TF-IDF over the rows'
// prefixes), or a JSONL file with one {"summary": ...} per row.
inline std::vector<Explanation> summaries_of(const ActivationDataset& data, const BpeTokenizer& tok,
                                             const std::string& source,
                                             const WorldTruthOptions& world = {}) {
  std::vector<std::string> texts;
  if (source == "world") {
    NLA_CHECK(data.rows.front().contains("attributes"), "nla",
              "dataset '{}' is not from the synthetic world: use --summaries keywords or a file",
              data.prefix);
    texts = WorldTruthSummarizer(world).summarize(data.rows);
  } else if (source == "keywords") {
    std::vector<std::string> prefixes;
    for (const auto& row : data.rows) {
      NLA_CHECK(row.contains("prefix"), "nla",
                "dataset '{}': rows have no \"prefix\" text to take keywords from (imported "
                "activations?): give --summaries FILE.jsonl",
                data.prefix);
      prefixes.push_back(row["prefix"].get<std::string>());
    }
    KeywordSummarizer keywords;
    keywords.fit(prefixes);
    texts = keywords.summarize(data.rows);
  } else {
    std::ifstream in(source);
    NLA_CHECK(in.good(), "nla", "cannot open summaries file '{}'", source);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      json row;
      try {
        row = json::parse(line);
      } catch (const json::exception& e) {
        NLA_FAIL("nla", "summaries file '{}', line {}: {}", source, texts.size() + 1, e.what());
      }
      NLA_CHECK(row.contains("summary") && row["summary"].is_string(), "nla",
                "summaries file '{}', line {}: no \"summary\" string", source, texts.size() + 1);
      texts.push_back(row["summary"].get<std::string>());
    }
    NLA_CHECK(index_t(texts.size()) == data.size(), "nla",
              "summaries file '{}' has {} summaries for the {} rows of '{}'", source, texts.size(),
              data.size(), data.prefix);
  }
  std::vector<Explanation> out;
  for (const std::string& s : texts) out.push_back(summary_message(tok, s));
  return out;
}

inline std::string default_summaries(const ActivationDataset& data) {
  return data.rows.front().contains("attributes") ? "world" : "keywords";
}

}  // namespace nla::cli
