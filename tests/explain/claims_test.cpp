#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <nla/bottleneck/explanation.hpp>
#include <nla/explain/claims.hpp>
#include <nla/explain/confidence.hpp>
#include <nla/explain/world_claims.hpp>
#include <nla/summarize/world_truth_summarizer.hpp>
#include <nla/text/synthetic_world.hpp>
#include <nlohmann/json.hpp>

#include "support/world_rows.hpp"

using namespace nla;
using nla::testing::world_row;
using nla::testing::world_rows;
using nlohmann::json;

namespace {

// Another value of the same table, as a claim value.
template <class Table>
std::string other(const Table& table, std::string_view value) {
  for (std::string_view w : table)
    if (!w.empty() && w != value) return summarize_detail::lowered(w);
  return {};
}

}  // namespace

TEST_CASE("claims: split on ';', line breaks and sentence ends", "[explain]") {
  CHECK(split_claims("Name Pip;  word day.") == std::vector<std::string>{"name pip", "word day"});
  CHECK(split_claims("The cat sat. It was 0.5 m long!  Why?\tok") ==
        std::vector<std::string>{"the cat sat", "it was 0.5 m long", "why", "ok"});
  CHECK(split_claims("no test; word ..") == std::vector<std::string>{"no test", "word ."});
  CHECK(split_claims("first line\n  second   LINE  ") ==
        std::vector<std::string>{"first line", "second line"});
  CHECK(split_claims(" ;; . \n ; ").empty());
  CHECK(split_claims("").empty());
  CHECK(normalize_claim("  A\t B \n") == "a b");
}

TEST_CASE("claims: ranked by how many samples state them", "[explain]") {
  const std::vector<std::string> samples = {
      "name Pip; word day.",
      "Name pip; mood sad.",
      "word day; name Pip; name Pip.",  // repeated within a sample: counted once
      "species fox. mood sad",
  };
  const std::vector<ClaimSupport> ranked = rank_claims(samples);
  REQUIRE(ranked.size() == 4);
  CHECK(ranked[0].claim == "name pip");
  CHECK(ranked[0].count == 3);
  CHECK(ranked[0].fraction == Approx(0.75));
  // Ties in order of first appearance: "word day" (sample 0) before
  // "mood sad" (sample 1); "species fox" last with one sample.
  CHECK(ranked[1].claim == "word day");
  CHECK(ranked[1].count == 2);
  CHECK(ranked[2].claim == "mood sad");
  CHECK(ranked[2].count == 2);
  CHECK(ranked[3].claim == "species fox");
  CHECK(ranked[3].count == 1);
  CHECK(ranked[3].fraction == Approx(0.25));
  CHECK(rank_claims({}).empty());
  CHECK(rank_claims({"", ";"}).empty());
}

TEST_CASE("world claims: phrases parse tolerantly", "[explain]") {
  const std::vector<WorldClaim> claims = parse_world_claims(
      "Name Pip; species dragon; rhyme -ight; pig latin; no test; the fox is hungry; word :.");
  REQUIRE(claims.size() == 7);
  CHECK(claims[0].kind == WorldClaimKind::Attribute);
  CHECK(claims[0].attribute == Attribute::Name);
  CHECK(claims[0].value == "pip");
  CHECK(claims[1].attribute == Attribute::Species);  // unknown value, still a species claim
  CHECK(claims[1].value == "dragon");
  CHECK(claims[2].attribute == Attribute::Rhyme);
  CHECK(claims[2].value == "-ight");
  CHECK(claims[3].attribute == Attribute::Cipher);
  CHECK(claims[3].value == "present");
  CHECK(claims[4].attribute == Attribute::EvalMarker);
  CHECK(claims[4].value == "absent");
  CHECK(claims[5].kind == WorldClaimKind::Unrecognised);
  CHECK(claims[5].text == "the fox is hungry");
  CHECK(claims[6].kind == WorldClaimKind::Word);
  CHECK(claims[6].value == ":");
  CHECK(parse_world_claim("mood very happy").kind == WorldClaimKind::Unrecognised);
  CHECK(parse_world_claim("mood").kind == WorldClaimKind::Unrecognised);
  CHECK(parse_world_claim("colour red").kind == WorldClaimKind::Unrecognised);
}

TEST_CASE("world claims: wrong values and contradictions are detected on real documents",
          "[explain]") {
  const SyntheticWorld world;
  int rhyme_rows = 0;
  for (std::uint64_t index = 0; index < 60; ++index) {
    const WorldDocument doc = world.generate(Split::Train, index);
    const WorldAttributes& a = doc.attributes;
    for (const MarkedPosition& m : doc.marked) {
      const json row = world_row(doc, m);
      INFO(row.dump());
      const auto is_true = [&row](const std::string& claim) {
        return claim_is_true(parse_world_claim(claim), row);
      };
      // Right values, any case.
      CHECK(is_true(fmt::format("name {}", a.name_word())));
      CHECK(is_true(fmt::format("NAME {}", summarize_detail::lowered(a.name_word()))));
      CHECK(is_true(fmt::format("species {}", a.species_word())));
      CHECK(is_true(fmt::format("place {}", a.place_word())));
      CHECK(is_true(fmt::format("object {}", a.object_word())));
      CHECK(is_true(fmt::format("mood {}", a.mood_word())));
      CHECK(is_true(a.cipher ? "pig latin" : "plain english"));
      CHECK(is_true(a.eval_marker ? "eval test" : "no test"));
      CHECK(is_true(fmt::format("word {}", m.current_token)));
      // Wrong values.
      CHECK_FALSE(is_true(fmt::format("name {}", other(kWorldNames, a.name_word()))));
      CHECK_FALSE(is_true(fmt::format("species {}", other(kWorldSpecies, a.species_word()))));
      CHECK_FALSE(is_true(fmt::format("place {}", other(kWorldPlaces, a.place_word()))));
      CHECK_FALSE(is_true(fmt::format("object {}", other(kWorldObjects, a.object_word()))));
      CHECK_FALSE(is_true(fmt::format("mood {}", other(kWorldMoods, a.mood_word()))));
      CHECK_FALSE(is_true(a.cipher ? "plain english" : "pig latin"));
      CHECK_FALSE(is_true(a.eval_marker ? "no test" : "eval test"));
      CHECK_FALSE(is_true(fmt::format("word {}x", m.current_token)));
      CHECK_FALSE(is_true("species dragon"));
      CHECK_FALSE(is_true("the fox is hungry"));

      // Rhyme: the planned word, any other rhyme of line 1, or the family;
      // not line 1's own word, not another family.
      const auto family = static_cast<std::size_t>(a.rhyme_family);
      CHECK(is_true(fmt::format("rhyme {}", a.rhyme_second_word())));
      CHECK(is_true(fmt::format("rhyme {}", kRhymeFamilyNames[family])));
      for (std::size_t i = 0; i < rhyme_family_size(family); ++i)
        CHECK(is_true(fmt::format("rhyme {}", kRhymeFamilies[family][i])) ==
              (static_cast<int>(i) != a.rhyme_first));
      const std::size_t other_family = (family + 1) % kRhymeFamilyCount;
      CHECK_FALSE(is_true(fmt::format("rhyme {}", kRhymeFamilies[other_family][0])));
      CHECK_FALSE(is_true(fmt::format("rhyme {}", kRhymeFamilyNames[other_family])));

      // states_attribute_correctly: right, wrong, missing, contradicted.
      const std::string right = fmt::format("name {}", a.name_word());
      const std::string wrong = fmt::format("name {}", other(kWorldNames, a.name_word()));
      CHECK(states_attribute_correctly(right + "; word x.", Attribute::Name, row));
      CHECK_FALSE(states_attribute_correctly(wrong + "; word x.", Attribute::Name, row));
      CHECK_FALSE(states_attribute_correctly("word x.", Attribute::Name, row));
      CHECK_FALSE(states_attribute_correctly(right + "; " + wrong, Attribute::Name, row));
      CHECK_FALSE(states_attribute_correctly("pig latin; plain english", Attribute::Cipher, row));
      CHECK(states_attribute("mood sad", Attribute::Mood));
      CHECK_FALSE(states_attribute("mood sad", Attribute::Name));
      rhyme_rows += m.target == Attribute::Rhyme;
    }
  }
  CHECK(rhyme_rows == 60);
}

TEST_CASE("world claims: recurring claims of sampled explanations are scored for truth",
          "[explain]") {
  // Five "sampled explanations" of one real position: the true name recurs,
  // a wrong mood is a one-off. Recurring claims should be the true ones.
  const SyntheticWorld world;
  const WorldDocument doc = world.generate(Split::Train, 3);
  const MarkedPosition& m = doc.position(Attribute::Name);
  const json row = world_row(doc, m);
  const std::string name(doc.attributes.name_word());
  const std::string wrong_mood = other(kWorldMoods, doc.attributes.mood_word());
  const std::vector<std::string> samples = {
      fmt::format("name {}; word {}.", name, m.current_token),
      fmt::format("name {}; mood {}; word {}.", name, wrong_mood, m.current_token),
      fmt::format("name {}.", name),
      fmt::format("word {}; name {}.", m.current_token, name),
      "the story is long.",
  };
  const std::vector<ClaimSupport> ranked = rank_claims(samples);
  REQUIRE(ranked.size() == 4);
  double recurring_true = 0, recurring = 0, one_off_true = 0, one_off = 0;
  for (const ClaimSupport& c : ranked) {
    const bool truth = claim_is_true(parse_world_claim(c.claim), row);
    if (c.count >= 2) {
      recurring += 1;
      recurring_true += truth;
    } else {
      one_off += 1;
      one_off_true += truth;
    }
  }
  CHECK(ranked[0].claim == summarize_detail::lowered("name " + name));
  CHECK(ranked[0].count == 4);
  CHECK(recurring == 2);
  CHECK(recurring_true == 2);
  CHECK(one_off == 2);
  CHECK(one_off_true == 0);
}

TEST_CASE("explain_with_confidence ranks each activation's claims over its own samples",
          "[explain]") {
  // An encoder that says "a; b" / "a; c" / "a" for activation 0 and "d" for 1.
  struct Scripted {
    index_t samples_per_activation() const { return 3; }
    std::vector<Explanation> encode(const ActivationBatch&, bool) {
      std::vector<Explanation> m(6);
      const char* said[] = {"a; b", "a; c", "a", "d", "d", "e"};
      for (int i = 0; i < 6; ++i) m[std::size_t(i)].text = said[i];
      return m;
    }
  } encoder;
  ActivationBatch batch;
  batch.dim = 2;
  batch.vectors = {1, 0, 0, 1};
  const auto out = explain_with_confidence(encoder, batch);
  REQUIRE(out.size() == 2);
  REQUIRE(out[0].samples == std::vector<std::string>{"a; b", "a; c", "a"});
  REQUIRE(out[0].claims[0].claim == "a");
  REQUIRE(out[0].claims[0].count == 3);
  REQUIRE(out[0].claims[1].fraction == Approx(1.0 / 3));
  REQUIRE(out[1].claims[0].claim == "d");
  REQUIRE(out[1].claims[0].count == 2);
}
