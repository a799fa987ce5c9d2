#pragma once
// An activation dataset: N residual-stream vectors of one model at one layer,
// stored under a path prefix as three files:
//   prefix.npy    float32 [N, d], row i the activation of JSONL row i
//   prefix.jsonl  one JSON object per vector: document id, token position,
//                 token, decoded token and text prefix, and for synthetic-world
//                 documents the attribute record and the ground-truth
//                 description (activations/extract.hpp writes them)
//   prefix.json   the sidecar (ActivationMeta): format "nla.activations.v1",
//                 model hash, layer, d_model, corpus, position policy, seed,
//                 split, N, the mean activation, its mean norm and the
//                 injection scale
//
// ActivationWriter streams vectors and rows to temporary files and keeps only
// running sums, so memory does not grow with N. finish() removes the old
// sidecar, renames the .npy and .jsonl into place, then writes the new sidecar
// atomically. The sidecar is the commit record: an interrupted finish leaves
// either the old complete dataset or files without a sidecar, which load()
// refuses, never a sidecar that describes other vectors.

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <xtensor/xtensor.hpp>

#include "nla/core/error.hpp"
#include "nla/core/host.hpp"
#include "nla/core/shape.hpp"
#include "nla/io/file.hpp"
#include "nla/io/hash.hpp"
#include "nla/io/npy.hpp"
#include "nla/nn/config.hpp"

namespace nla {

inline constexpr char kActivationFormat[] = "nla.activations.v1";

// The scale the verbalizer multiplies an L2-normalised activation by before
// injecting it (DESIGN.md: "after L2 normalisation, times a fixed
// injection_scale"): the smallest s = m * 10^k, m in {1, 2, 2.5, 5}, with
// s >= 1.05 * mean_norm. A little above the mean norm so the injected slot
// has the magnitude of the activations the model produced there; a round
// number so it reads as a fixed hyperparameter, and re-extracting with
// another seed (a slightly different mean) usually gives the same value.
inline double round_injection_scale(double mean_norm) {
  NLA_CHECK(std::isfinite(mean_norm) && mean_norm > 0, "round_injection_scale",
            "mean_norm {} must be positive and finite", mean_norm);
  const double target = 1.05 * mean_norm;
  // Start one decade below, so rounding in log10 cannot skip the answer.
  double decade = std::pow(10.0, std::floor(std::log10(target)) - 1);
  for (;; decade *= 10)
    for (double m : {1.0, 2.0, 2.5, 5.0})
      if (m * decade >= target) return m * decade;
}

// FNV-1a 64 (io/hash.hpp) over the bytes of a model's flat parameter
// buffer, as 16 hex digits: identifies the exact weights a dataset came from.
// Works for any model with parameters() and backend() (TransformerLM).
template <class Model>
std::string parameter_hash(Model& model) {
  const auto values = to_host(model.backend(), model.parameters().values());
  const std::uint64_t h =
      fnv1a64(values.data(), static_cast<std::size_t>(values.size()) * sizeof(*values.data()));
  return fmt::format("{:016x}", h);
}

// The sidecar of an activation dataset.
struct ActivationMeta {
  std::string model_hash;  // parameter_hash of the target model
  index_t layer = 0;       // block K whose output was read
  index_t stream = 1;      // residual stream K + 1 (Hugging Face hidden_states[K + 1])
  index_t d_model = 0;
  index_t n_layers = 0;                           // of the target model
  std::string corpus;                             // "synthetic_world seed=1", a file name, ...
  std::string positions;                          // "marked", "all", "sampled k=4 min=8"
  std::optional<index_t> positions_per_document;  // k for sampled; none for marked/all
  std::uint64_t seed = 0;                         // of the position draws (and the world)
  std::string split;                              // "train", "validation", "test"
  index_t documents = 0;                          // documents read
  index_t count = 0;                              // N vectors
  double mean_norm = 0;                           // mean over rows of ||x||
  double injection_scale = 0;                     // see round_injection_scale
  std::vector<float> mean;                        // [d_model], raw mean activation

  nlohmann::json to_json() const {
    return {
        {"format", kActivationFormat},
        {"model_hash", model_hash},
        {"layer", layer},
        {"stream", stream},
        {"d_model", d_model},
        {"n_layers", n_layers},
        {"corpus", corpus},
        {"positions", positions},
        {"positions_per_document", positions_per_document ? nlohmann::json(*positions_per_document)
                                                          : nlohmann::json(nullptr)},
        {"seed", seed},
        {"split", split},
        {"documents", documents},
        {"count", count},
        {"mean_norm", mean_norm},
        {"injection_scale", injection_scale},
        {"mean", mean}};
  }

  // Parses and checks a sidecar; `path` names it in errors.
  static ActivationMeta from_json(const nlohmann::json& j, const std::string& path) {
    const char* op = "ActivationMeta::from_json";
    constexpr char kNoun[] = "activation sidecar";
    if (!j.is_object()) io::file_error(op, kNoun, path, "not a JSON object");
    const auto format = j.find("format");
    if (format == j.end() || !format->is_string() || *format != kActivationFormat)
      io::file_error(op, kNoun, path, "format is {}, expected \"{}\"",
                     format == j.end() ? "missing" : format->dump(), kActivationFormat);
    ActivationMeta m;
    try {
      m.model_hash = j.at("model_hash").get<std::string>();
      m.layer = j.at("layer").get<index_t>();
      m.stream = j.at("stream").get<index_t>();
      m.d_model = j.at("d_model").get<index_t>();
      m.n_layers = j.at("n_layers").get<index_t>();
      m.corpus = j.at("corpus").get<std::string>();
      m.positions = j.at("positions").get<std::string>();
      const auto& per_document = j.at("positions_per_document");
      if (!per_document.is_null()) m.positions_per_document = per_document.get<index_t>();
      m.seed = j.at("seed").get<std::uint64_t>();
      m.split = j.at("split").get<std::string>();
      m.documents = j.at("documents").get<index_t>();
      m.count = j.at("count").get<index_t>();
      m.mean_norm = j.at("mean_norm").get<double>();
      m.injection_scale = j.at("injection_scale").get<double>();
      m.mean = j.at("mean").get<std::vector<float>>();
    } catch (const nlohmann::json::exception& e) {
      io::file_error(op, kNoun, path, "bad field: {}", e.what());
    }
    if (m.d_model <= 0 || m.count < 0 || m.layer < 0 || m.layer >= m.n_layers ||
        m.stream != m.layer + 1)
      io::file_error(op, kNoun, path,
                     "inconsistent: d_model {}, count {}, layer {}, stream {}, n_layers {} (need "
                     "d_model > 0, 0 <= layer < n_layers, stream = layer + 1)",
                     m.d_model, m.count, m.layer, m.stream, m.n_layers);
    if (index_t(m.mean.size()) != m.d_model)
      io::file_error(op, kNoun, path, "mean has {} values, d_model is {}", m.mean.size(),
                     m.d_model);
    return m;
  }
};

// The three files of a dataset.
struct ActivationPaths {
  std::string npy, jsonl, sidecar;
  explicit ActivationPaths(const std::string& prefix)
      : npy(prefix + ".npy"), jsonl(prefix + ".jsonl"), sidecar(prefix + ".json") {}
};

// Streams vectors and their rows to a dataset (see the top of this file).
// Running statistics, in double, updated per row k = 1..N:
//   mean_k      = mean_{k-1} + (x_k - mean_{k-1}) / k
//   mean_norm_k = mean_norm_{k-1} + (||x_k|| - mean_norm_{k-1}) / k
// (the running-mean form: no sum grows with N, so no precision is lost).
class ActivationWriter {
 public:
  ActivationWriter(const std::string& prefix, index_t d_model)
      : prefix_(prefix),
        paths_(prefix),
        npy_(paths_.npy, static_cast<std::size_t>(check_dim(d_model, prefix))),
        jsonl_("ActivationWriter", "activation rows", paths_.jsonl),
        mean_(static_cast<std::size_t>(d_model), 0.0) {}

  index_t count() const { return count_; }
  index_t d_model() const { return index_t(mean_.size()); }

  // vector: [d_model]; row: the JSONL object describing it.
  void add(const float* vector, const nlohmann::json& row) {
    const std::size_t d = mean_.size();
    double squared = 0;
    for (std::size_t j = 0; j < d; ++j) {
      NLA_CHECK(std::isfinite(vector[j]), "ActivationWriter::add",
                "dataset '{}': row {} ({}) has the non-finite value {} in column {}", prefix_,
                count_, row_label(row), vector[j], j);
      squared += double(vector[j]) * double(vector[j]);
    }
    NLA_CHECK(row.is_object(), "ActivationWriter::add", "dataset '{}': row {} is not an object",
              prefix_, count_);
    // Invalid UTF-8 (a byte-level token can end inside a character) becomes U+FFFD.
    const std::string line =
        row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
    npy_.write_row(vector);
    jsonl_.append(line.data(), line.size());
    ++count_;
    const double k = double(count_);
    for (std::size_t j = 0; j < d; ++j) mean_[j] += (double(vector[j]) - mean_[j]) / k;
    mean_norm_ += (std::sqrt(squared) - mean_norm_) / k;
  }

  // Fills count, d_model, mean and mean_norm of `meta`, and injection_scale
  // when it is 0 (round_injection_scale(mean_norm)); commits the files and
  // returns the sidecar written.
  ActivationMeta finish(ActivationMeta meta) {
    const char* op = "ActivationWriter::finish";
    NLA_CHECK(count_ > 0, op, "dataset '{}': no vectors were added", prefix_);
    meta.count = count_;
    meta.d_model = d_model();
    meta.mean.assign(mean_.begin(), mean_.end());
    meta.mean_norm = mean_norm_;
    if (meta.injection_scale == 0) meta.injection_scale = round_injection_scale(mean_norm_);
    NLA_CHECK(meta.injection_scale > 0 && std::isfinite(meta.injection_scale), op,
              "dataset '{}': injection_scale {} must be positive", prefix_, meta.injection_scale);
    const std::string sidecar = meta.to_json().dump(2) + '\n';
    // The old sidecar goes first: from here until the new one is written the
    // dataset has none, and load() refuses it.
    if (::unlink(paths_.sidecar.c_str()) != 0 && errno != ENOENT) {
      const int err = errno;
      io::file_error(op, "activation sidecar", paths_.sidecar, "cannot remove the old one: {}",
                     io::errno_text(err));
    }
    npy_.finish();
    jsonl_.commit();
    io::write_text_atomically(op, "activation sidecar", paths_.sidecar, sidecar);
    return meta;
  }

 private:
  static index_t check_dim(index_t d_model, const std::string& prefix) {
    NLA_CHECK(d_model > 0, "ActivationWriter", "dataset '{}': d_model {} must be positive", prefix,
              d_model);
    return d_model;
  }
  static std::string row_label(const nlohmann::json& row) {
    if (!row.is_object() || !row.contains("doc") || !row.contains("position")) return "no id";
    return fmt::format("doc {} position {}",
                       row["doc"].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                       row["position"].dump());
  }

  std::string prefix_;
  ActivationPaths paths_;
  io::NpyWriter npy_;
  io::PendingFile jsonl_;
  std::vector<double> mean_;
  double mean_norm_ = 0;
  index_t count_ = 0;
};

// A dataset in memory: vectors [N, d], one row per vector, the sidecar.
struct ActivationDataset {
  std::string prefix;
  xt::xtensor<float, 2> vectors;  // [N, d_model]
  std::vector<nlohmann::json> rows;
  ActivationMeta meta;

  index_t size() const { return index_t(vectors.shape()[0]); }
  index_t d_model() const { return index_t(vectors.shape()[1]); }

  // Loads prefix.{json,npy,jsonl} and checks them against each other: N rows
  // in the .npy, N lines in the JSONL and count N in the sidecar, d ==
  // d_model, every value finite.
  static ActivationDataset load(const std::string& prefix) {
    const char* op = "ActivationDataset::load";
    const ActivationPaths paths(prefix);
    ActivationDataset ds;
    ds.prefix = prefix;
    {
      const std::string text = io::read_file(op, "activation sidecar", paths.sidecar);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        io::file_error(op, "activation sidecar", paths.sidecar, "not valid JSON: {}", e.what());
      }
      ds.meta = ActivationMeta::from_json(j, paths.sidecar);
    }
    ds.vectors = io::load_npy_matrix(paths.npy);
    const index_t n = ds.size(), d = ds.d_model();
    if (n != ds.meta.count || d != ds.meta.d_model)
      io::file_error(op, "npy file", paths.npy,
                     "holds [{}, {}] but the sidecar '{}' says count {} and d_model {}", n, d,
                     paths.sidecar, ds.meta.count, ds.meta.d_model);
    ds.rows = read_rows(op, paths.jsonl);
    if (index_t(ds.rows.size()) != n)
      io::file_error(op, "activation rows", paths.jsonl,
                     "has {} rows but the .npy '{}' has {} vectors", ds.rows.size(), paths.npy, n);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < d; ++j)
        if (!std::isfinite(ds.vectors(i, j)))
          io::file_error(op, "npy file", paths.npy,
                         "row {} ({}) has the non-finite value {} in "
                         "column {}",
                         i, row_text(ds.rows[static_cast<std::size_t>(i)]), ds.vectors(i, j), j);
    return ds;
  }

  // Throws unless a model of `config` read at block `layer` matches the data.
  void check_compatible(const TransformerConfig& config, index_t layer) const {
    const char* op = "ActivationDataset::check_compatible";
    NLA_CHECK(config.d_model == meta.d_model, op,
              "dataset '{}' holds d_model {} activations, the model has d_model {}", prefix,
              meta.d_model, config.d_model);
    NLA_CHECK(layer == meta.layer, op,
              "dataset '{}' was read at layer {} (stream {}), not at layer {}", prefix, meta.layer,
              meta.stream, layer);
  }

 private:
  static std::string row_text(const nlohmann::json& row) {
    return row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  static std::vector<nlohmann::json> read_rows(const char* op, const std::string& path) {
    io::open_regular_file(op, "activation rows", path);  // names a missing file clearly
    std::ifstream in(path, std::ios::binary);
    if (!in) io::file_error(op, "activation rows", path, "cannot open");
    std::vector<nlohmann::json> rows;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
      try {
        rows.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception& e) {
        io::file_error(op, "activation rows", path, "line {} is not valid JSON: {}", number,
                       e.what());
      }
      if (!rows.back().is_object())
        io::file_error(op, "activation rows", path, "line {} is not a JSON object", number);
    }
    if (in.bad()) io::file_error(op, "activation rows", path, "read failed");
    return rows;
  }
};

}  // namespace nla
