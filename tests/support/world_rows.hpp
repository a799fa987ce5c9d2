#pragma once
// Activation-dataset rows (the JSONL format of activations/extract.hpp) for
// the marked positions of synthetic-world documents, without a tokenizer or
// a model: "position" is the byte offset and "token" is 0.

#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nla/activations/extract.hpp"
#include "nla/text/synthetic_world.hpp"

namespace nla::testing {

inline nlohmann::json world_row(const WorldDocument& doc, const MarkedPosition& m) {
  const std::string prefix(doc.prefix(m.offset));
  const std::size_t token_begin = prefix.size() - m.current_token.size();
  const bool spaced = token_begin > 0 && prefix[token_begin - 1] == ' ';
  nlohmann::json row = {{"doc", fmt::format("world-{}-{}", split_name(doc.split), doc.index)},
                        {"position", m.offset},
                        {"token", 0},
                        {"token_text", (spaced ? " " : "") + m.current_token},
                        {"prefix", prefix},
                        {"attributes", world_attributes_json(doc.attributes)}};
  row.update(world_position_json(m));
  return row;
}

// Every marked position of the first n training documents.
inline std::vector<nlohmann::json> world_rows(int n, std::uint64_t seed = 0) {
  WorldOptions options;
  options.seed = seed;
  const SyntheticWorld world(options);
  std::vector<nlohmann::json> rows;
  for (int i = 0; i < n; ++i) {
    const WorldDocument doc = world.generate(Split::Train, static_cast<std::uint64_t>(i));
    for (const MarkedPosition& m : doc.marked) rows.push_back(world_row(doc, m));
  }
  return rows;
}

}  // namespace nla::testing
