#pragma once
// Activations extracted elsewhere (a PyTorch forward hook, say) made into a
// dataset: a float32 [N, d] .npy, with optional JSONL rows, gets the sidecar
// and rows an ActivationDataset needs, so `nla explain` and the rest read it.
// The other direction needs nothing: prefix.npy is a plain NumPy file
// (np.load) and prefix.json its description.
//
// What the .npy cannot say is asked for: the layer (block index: the vectors
// are hidden_states[layer + 1] of transformers), the model's depth, and an
// identifier of the model. Rows default to {"doc": "<npy file>", "position":
// i}. The statistics (mean, mean norm, injection scale) are computed here, as
// for an extraction.

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/activations/activation_dataset.hpp"
#include "nla/io/npy.hpp"

namespace nla {

struct ActivationImport {
  index_t layer = 0, n_layers = 0;
  std::string model;       // an identifier of the model (hash, hub name); "unknown" if empty
  std::string corpus;      // what the activations were read on
  std::string rows_jsonl;  // optional: one JSON object per vector
};

inline ActivationMeta import_activations(const std::string& npy_path, const std::string& prefix,
                                         const ActivationImport& o) {
  const char* op = "import_activations";
  NLA_CHECK(o.layer >= 0 && o.layer < o.n_layers, op,
            "layer {} is outside [0, n_layers = {}) for '{}'", o.layer, o.n_layers, npy_path);
  const xt::xtensor<float, 2> vectors = io::load_npy_matrix(npy_path);
  const index_t n = index_t(vectors.shape()[0]), d = index_t(vectors.shape()[1]);
  NLA_CHECK(n > 0 && d > 0, op, "'{}' holds no vectors (shape [{}, {}])", npy_path, n, d);
  std::vector<nlohmann::json> rows;
  if (!o.rows_jsonl.empty()) {
    std::ifstream in(o.rows_jsonl);
    NLA_CHECK(in.good(), op, "cannot open rows file '{}'", o.rows_jsonl);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      try {
        rows.push_back(nlohmann::json::parse(line));
      } catch (const nlohmann::json::exception& e) {
        NLA_FAIL(op, "rows file '{}', line {}: {}", o.rows_jsonl, rows.size() + 1, e.what());
      }
    }
    NLA_CHECK(index_t(rows.size()) == n, op,
              "rows file '{}' has {} rows for the {} vectors of '{}'", o.rows_jsonl, rows.size(), n,
              npy_path);
  }
  ActivationWriter writer(prefix, d);
  for (index_t i = 0; i < n; ++i)
    writer.add(&vectors(std::size_t(i), 0),
               rows.empty() ? nlohmann::json{{"doc", npy_path}, {"position", i}} : rows[i]);
  ActivationMeta meta;
  meta.model_hash = o.model.empty() ? "unknown" : o.model;
  meta.layer = o.layer;
  meta.stream = o.layer + 1;
  meta.n_layers = o.n_layers;
  meta.corpus = o.corpus.empty() ? "imported from " + npy_path : o.corpus;
  meta.positions = "imported";
  meta.split = "imported";
  meta.documents = n;
  return writer.finish(meta);
}

}  // namespace nla
