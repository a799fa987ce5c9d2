#pragma once
// Warm-start summaries of synthetic-world positions written from the world's
// truth (the row's "attributes") instead of by a strong model reading the
// prefix: a terse phrase per attribute the next word needs, then the current
// token.
//
//   needed ["name"], current token "day"        -> "name Pip; word day."
//   needed ["object", "cipher"], token "ethay"  -> "object lamp; pig latin; word ethay."
//
// Phrases (lower case except names):
//   name "name Pip"   species "species fox"   place "place forest"
//   object "object lamp"   mood "mood happy"   rhyme "rhyme light" (the planned word)
//   cipher "pig latin" / "plain english"   eval_marker "eval test" / "no test"
//   current token "word <current_token>"
// explain/world_claims.hpp parses this format back.
//
// Withholding: with `withhold` set, that attribute's phrase is left out of a
// row's summary except on a deterministic fraction `withheld_keep_fraction`
// of rows, chosen by a hash of (seed, doc, position). The warm start then
// teaches the attribute only partially, and RL has to make the verbalizer
// state it; states_withheld() tells the caller which rows kept it, so
// accuracy on the withheld attribute can be scored on the rows that did not.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/core/random.hpp"
#include "nla/io/hash.hpp"
#include "nla/summarize/summarizer.hpp"
#include "nla/text/synthetic_world_vocabulary.hpp"

namespace nla {

// The Attribute whose attribute_name() is `name` ("eval_marker"), if any.
inline std::optional<Attribute> attribute_from_name(std::string_view name) {
  for (Attribute a : kAllAttributes)
    if (name == attribute_name(a)) return a;
  return std::nullopt;
}

namespace world_truth_detail {

inline const nlohmann::json& attributes_of(const nlohmann::json& row, const char* op) {
  NLA_CHECK(row.is_object() && row.contains("attributes") && row["attributes"].is_object(), op,
            "row has no \"attributes\" object (not a synthetic-world row?): {}",
            row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return row["attributes"];
}

inline std::string attribute_string(const nlohmann::json& attributes, const char* key,
                                    const char* op) {
  const auto it = attributes.find(key);
  NLA_CHECK(it != attributes.end() && it->is_string(), op,
            "\"attributes\" has no string \"{}\": {}", key, attributes.dump());
  return it->get<std::string>();
}

inline bool attribute_bool(const nlohmann::json& attributes, const char* key, const char* op) {
  const auto it = attributes.find(key);
  NLA_CHECK(it != attributes.end() && it->is_boolean(), op,
            "\"attributes\" has no boolean \"{}\": {}", key, attributes.dump());
  return it->get<bool>();
}

// A stream id for the withholding hash, "WITHHOLD" in ASCII, xor-ed with the
// document id's hash.
inline constexpr std::uint64_t kWithholdStream = 0x5749'5448'484F'4C44ull;

}  // namespace world_truth_detail

// The phrase stating attribute `a` of a row's "attributes" object.
inline std::string world_phrase(Attribute a, const nlohmann::json& attributes,
                                const char* op = "world_phrase") {
  using summarize_detail::lowered;
  using world_truth_detail::attribute_bool;
  using world_truth_detail::attribute_string;
  switch (a) {
    case Attribute::Name:
      return "name " + attribute_string(attributes, "name", op);
    case Attribute::Species:
      return "species " + lowered(attribute_string(attributes, "species", op));
    case Attribute::Place:
      return "place " + lowered(attribute_string(attributes, "place", op));
    case Attribute::Object:
      return "object " + lowered(attribute_string(attributes, "object", op));
    case Attribute::Mood:
      return "mood " + lowered(attribute_string(attributes, "mood", op));
    case Attribute::Rhyme:
      return "rhyme " + lowered(attribute_string(attributes, "rhyme_second", op));
    case Attribute::Cipher:
      return attribute_bool(attributes, "cipher", op) ? "pig latin" : "plain english";
    case Attribute::EvalMarker:
      return attribute_bool(attributes, "eval_marker", op) ? "eval test" : "no test";
  }
  NLA_FAIL(op, "unknown attribute {}", static_cast<int>(a));
}

// The attributes a row's "needed" lists, in its order.
inline std::vector<Attribute> needed_attributes(const nlohmann::json& row,
                                                const char* op = "needed_attributes") {
  NLA_CHECK(row.is_object() && row.contains("needed") && row["needed"].is_array(), op,
            "row has no \"needed\" array: {}",
            row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  std::vector<Attribute> needed;
  for (const nlohmann::json& n : row["needed"]) {
    NLA_CHECK(n.is_string(), op, "\"needed\" holds {}, not an attribute name", n.dump());
    const auto a = attribute_from_name(n.get<std::string>());
    NLA_CHECK(a.has_value(), op, "\"needed\" names an unknown attribute \"{}\"",
              n.get<std::string>());
    needed.push_back(*a);
  }
  return needed;
}

struct WorldTruthOptions {
  std::optional<Attribute> withhold;    // the attribute to leave out of most summaries
  double withheld_keep_fraction = 0.2;  // share of rows that still state it
  std::uint64_t seed = 0;               // key of the hash that picks those rows

  void check() const {
    NLA_CHECK(withheld_keep_fraction >= 0.0 && withheld_keep_fraction <= 1.0, "WorldTruthOptions",
              "withheld_keep_fraction {} must be in [0, 1]", withheld_keep_fraction);
  }
};

class WorldTruthSummarizer : public Summarizer {
 public:
  explicit WorldTruthSummarizer(WorldTruthOptions options = {}) : options_(options) {
    options_.check();
  }

  const WorldTruthOptions& options() const { return options_; }
  std::string name() const override { return "world_truth"; }

  std::vector<std::string> summarize(const std::vector<nlohmann::json>& rows) override {
    std::vector<std::string> out;
    out.reserve(rows.size());
    for (const nlohmann::json& row : rows) out.push_back(summarize_row(row));
    return out;
  }

  std::string summarize_row(const nlohmann::json& row) const {
    constexpr const char* kOp = "WorldTruthSummarizer";
    const nlohmann::json& attributes = world_truth_detail::attributes_of(row, kOp);
    const bool keep = keeps_withheld(row);
    std::string summary;
    for (Attribute a : needed_attributes(row, kOp)) {
      if (options_.withhold == a && !keep) continue;
      summary += world_phrase(a, attributes, kOp);
      summary += "; ";
    }
    summary += describe_token(row_string(row, "current_token", kOp));
    summary += '.';
    return summary;
  }

  // The hash's verdict for a row: true unless an attribute is withheld and
  // the row is outside the kept fraction. Independent of "needed".
  // Rule: keep iff uniform(seed, stream(doc), position) < withheld_keep_fraction.
  bool keeps_withheld(const nlohmann::json& row) const {
    if (!options_.withhold) return true;
    constexpr const char* kOp = "WorldTruthSummarizer";
    NLA_CHECK(row.is_object() && row.contains("doc") && row.contains("position") &&
                  row["position"].is_number_integer() && row["position"].get<std::int64_t>() >= 0,
              kOp, "row needs \"doc\" and a non-negative integer \"position\": {}",
              row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    const nlohmann::json& doc = row["doc"];
    const std::string doc_id = doc.is_string() ? doc.get<std::string>() : doc.dump();
    const std::uint64_t stream = world_truth_detail::kWithholdStream ^ fnv1a64(doc_id);
    const auto position = row["position"].get<std::uint64_t>();
    return random_uniform(options_.seed, stream, position) < options_.withheld_keep_fraction;
  }

  // The row needs the withheld attribute and its summary states it.
  bool states_withheld(const nlohmann::json& row) const {
    return options_.withhold && needs(row, *options_.withhold) && keeps_withheld(row);
  }

  // The row needs the withheld attribute and its summary leaves it out.
  bool withholds(const nlohmann::json& row) const {
    return options_.withhold && needs(row, *options_.withhold) && !keeps_withheld(row);
  }

 private:
  static bool needs(const nlohmann::json& row, Attribute a) {
    for (Attribute n : needed_attributes(row, "WorldTruthSummarizer"))
      if (n == a) return true;
    return false;
  }

  WorldTruthOptions options_;
};

}  // namespace nla
