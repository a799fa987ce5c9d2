#pragma once
// Reading explanations written in the world-truth format
// (summarize/world_truth_summarizer.hpp) back into claims about the latent
// state, and checking them against a row's truth. Used to score attribute
// accuracy, accuracy on the withheld attribute, and whether recurring claims
// are truer than one-offs.
//
// Recognised claims (after split_claims' normalisation):
//   "<key> <value>"  key one of name, species, place, object, mood, rhyme;
//                    any single-word value ("species dragon" is a species
//                    claim, and false)
//   "pig latin" / "plain english"   cipher present / absent
//   "eval test" / "no test"         eval marker present / absent
//   "word <token>"                  the current token
// Anything else is returned as Unrecognised, never an error: a verbalizer in
// RL drifts from the format, and its drift is data, not a bug.
//
// Truth. Names and words compare case-insensitively. A rhyme claim is true
// when it names the planned word (rhyme_second), another word that rhymes
// with line 1 (same family, not line 1's own word: at that position the
// family is determined and the particular word is not), or the family
// itself ("rhyme -ight").

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/explain/claims.hpp"
#include "nla/summarize/summarizer.hpp"
#include "nla/summarize/world_truth_summarizer.hpp"
#include "nla/text/synthetic_world_vocabulary.hpp"

namespace nla {

enum class WorldClaimKind { Attribute, Word, Unrecognised };

struct WorldClaim {
  WorldClaimKind kind = WorldClaimKind::Unrecognised;
  Attribute attribute = Attribute::Name;  // meaningful when kind == Attribute
  // Attribute: the value word ("pip", "fox", "light", "-ight"), or
  // "present"/"absent" for cipher and eval marker; Word: the token.
  std::string value;
  std::string text;  // the normalised claim
};

// One claim, normalised first (normalize_claim).
inline WorldClaim parse_world_claim(std::string_view claim) {
  WorldClaim c;
  c.text = normalize_claim(claim);
  const std::string& t = c.text;
  const auto binary = [&c](Attribute a, bool present) {
    c.kind = WorldClaimKind::Attribute;
    c.attribute = a;
    c.value = present ? "present" : "absent";
    return c;
  };
  if (t == "pig latin") return binary(Attribute::Cipher, true);
  if (t == "plain english") return binary(Attribute::Cipher, false);
  if (t == "eval test") return binary(Attribute::EvalMarker, true);
  if (t == "no test") return binary(Attribute::EvalMarker, false);
  const std::size_t space = t.find(' ');
  if (space == std::string::npos) return c;
  const std::string key = t.substr(0, space);
  const std::string value = t.substr(space + 1);
  if (key == "word") {
    c.kind = WorldClaimKind::Word;
    c.value = value;
    return c;
  }
  if (value.find(' ') != std::string::npos) return c;
  for (Attribute a : {Attribute::Name, Attribute::Species, Attribute::Place, Attribute::Object,
                      Attribute::Mood, Attribute::Rhyme})
    if (key == attribute_name(a)) {
      c.kind = WorldClaimKind::Attribute;
      c.attribute = a;
      c.value = value;
      return c;
    }
  return c;
}

// The claims of an explanation, in order, recognised or not.
inline std::vector<WorldClaim> parse_world_claims(std::string_view text) {
  std::vector<WorldClaim> claims;
  for (const std::string& claim : split_claims(text)) claims.push_back(parse_world_claim(claim));
  return claims;
}

// True when the claim holds for the row (its "attributes" and
// "current_token"); an unrecognised claim is never true.
inline bool claim_is_true(const WorldClaim& claim, const nlohmann::json& row) {
  constexpr const char* kOp = "claim_is_true";
  using summarize_detail::lowered;
  if (claim.kind == WorldClaimKind::Unrecognised) return false;
  if (claim.kind == WorldClaimKind::Word) {
    // The same spelling the summarizer writes, so "word newline" matches "\n".
    const char* key =
        row.is_object() && !row.contains("current_token") ? "token_text" : "current_token";
    return claim.value == normalize_claim(describe_token(row_string(row, key, kOp)).substr(5));
  }
  const nlohmann::json& attributes = world_truth_detail::attributes_of(row, kOp);
  const auto text = [&](const char* key) {
    return lowered(world_truth_detail::attribute_string(attributes, key, kOp));
  };
  const auto flag = [&](const char* key) {
    return world_truth_detail::attribute_bool(attributes, key, kOp) ? "present" : "absent";
  };
  switch (claim.attribute) {
    case Attribute::Name:
      return claim.value == text("name");
    case Attribute::Species:
      return claim.value == text("species");
    case Attribute::Place:
      return claim.value == text("place");
    case Attribute::Object:
      return claim.value == text("object");
    case Attribute::Mood:
      return claim.value == text("mood");
    case Attribute::Rhyme: {
      const std::string first = text("rhyme_first");
      if (claim.value == text("rhyme_second")) return true;
      if (attributes.contains("rhyme_family") && attributes["rhyme_family"].is_string() &&
          claim.value == text("rhyme_family"))
        return true;
      const int family = rhyme_family_of(first);
      if (family >= 0 && claim.value == kRhymeFamilyNames[static_cast<std::size_t>(family)])
        return true;
      return family >= 0 && claim.value != first && rhyme_family_of(claim.value) == family;
    }
    case Attribute::Cipher:
      return claim.value == flag("cipher");
    case Attribute::EvalMarker:
      return claim.value == flag("eval_marker");
  }
  return false;
}

// The explanation states attribute `a` correctly: at least one claim about
// `a` is true and none is false (a right and a wrong value together count as
// a contradiction, not as knowing the attribute).
inline bool states_attribute_correctly(std::string_view text, Attribute a,
                                       const nlohmann::json& row) {
  bool right = false;
  for (const WorldClaim& claim : parse_world_claims(text)) {
    if (claim.kind != WorldClaimKind::Attribute || claim.attribute != a) continue;
    if (!claim_is_true(claim, row)) return false;
    right = true;
  }
  return right;
}

// The explanation makes at least one claim about attribute `a`.
inline bool states_attribute(std::string_view text, Attribute a) {
  for (const WorldClaim& claim : parse_world_claims(text))
    if (claim.kind == WorldClaimKind::Attribute && claim.attribute == a) return true;
  return false;
}

}  // namespace nla
