#pragma once
// The fixed vocabulary of the synthetic world: the values each latent
// attribute can take, the rhyme table, and the story's template words.
//
// Small and regular on purpose: a 4-layer model with a 512-token byte-level
// BPE must learn the whole world in minutes, and a linear probe must be able
// to separate every value. No word belongs to two tables, and no plain word
// is the pig latin form of another, so the text of a document determines its
// attribute record and a sentence is either plain or cipher, never both.

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "nla/core/error.hpp"

namespace nla {

// The latent attributes a marked position can need. Rhyme is the family the
// couplet must rhyme in; EvalMarker and Cipher are the two planted behaviours.
enum class Attribute { Name, Species, Place, Object, Mood, Rhyme, EvalMarker, Cipher };

inline constexpr std::array<Attribute, 8> kAllAttributes = {
    Attribute::Name, Attribute::Species, Attribute::Place,      Attribute::Object,
    Attribute::Mood, Attribute::Rhyme,   Attribute::EvalMarker, Attribute::Cipher};

inline constexpr std::array<std::string_view, 8> kWorldNames = {"Pip", "Tam", "Lea", "Bo",
                                                                "Kit", "Rue", "Max", "Ada"};
inline constexpr std::array<std::string_view, 6> kWorldSpecies = {"fox",  "owl",  "cat",
                                                                  "bear", "frog", "mouse"};
inline constexpr std::array<std::string_view, 6> kWorldPlaces = {"forest", "river", "castle",
                                                                 "garden", "cave",  "meadow"};
inline constexpr std::array<std::string_view, 6> kWorldObjects = {"lamp", "key", "drum",
                                                                  "map",  "cup", "coin"};
inline constexpr std::array<std::string_view, 5> kWorldMoods = {"happy", "sad", "brave", "sleepy",
                                                                "angry"};

// Rhyme families: words rhyme when they share a family (the written ending is
// shared too, so the table is easy to check by eye). Empty slots pad the
// three-word family.
inline constexpr std::size_t kRhymeFamilyCount = 8;
inline constexpr std::array<std::array<std::string_view, 4>, kRhymeFamilyCount> kRhymeFamilies = {{
    {"night", "light", "sight", "flight"},
    {"bay", "hay", "clay", "tray"},
    {"tree", "bee", "knee", ""},
    {"lake", "cake", "snake", "rake"},
    {"king", "ring", "swing", "wing"},
    {"ball", "wall", "hall", "stall"},
    {"moon", "spoon", "balloon", "noon"},
    {"bell", "shell", "well", "spell"},
}};
// A short name for each family, used in explanations ("the -ight rhyme").
inline constexpr std::array<std::string_view, kRhymeFamilyCount> kRhymeFamilyNames = {
    "-ight", "-ay", "-ee", "-ake", "-ing", "-all", "-oon", "-ell"};

inline std::size_t rhyme_family_size(std::size_t family) {
  NLA_CHECK(family < kRhymeFamilyCount, "rhyme_family_size", "family {} is not below {}", family,
            kRhymeFamilyCount);
  std::size_t n = 0;
  for (std::string_view w : kRhymeFamilies[family]) n += w.empty() ? 0 : 1;
  return n;
}

// The family of a rhyme word (lower case), or -1 when it is in no family.
inline int rhyme_family_of(std::string_view word) {
  for (std::size_t f = 0; f < kRhymeFamilyCount; ++f)
    for (std::string_view w : kRhymeFamilies[f])
      if (!w.empty() && w == word) return static_cast<int>(f);
  return -1;
}

// Template text of the story (see synthetic_world.hpp for where each goes).
inline constexpr std::string_view kEvalMarker = "[eval]";
inline constexpr std::string_view kNormalEnding = "The end.";
inline constexpr std::string_view kEvalEnding = "Test over.";
inline constexpr std::string_view kPlainVerb = "said:";           // plain speech follows
inline constexpr std::string_view kCipherTrigger = "whispered:";  // pig latin follows

inline const char* attribute_name(Attribute a) {
  switch (a) {
    case Attribute::Name:
      return "name";
    case Attribute::Species:
      return "species";
    case Attribute::Place:
      return "place";
    case Attribute::Object:
      return "object";
    case Attribute::Mood:
      return "mood";
    case Attribute::Rhyme:
      return "rhyme";
    case Attribute::EvalMarker:
      return "eval_marker";
    case Attribute::Cipher:
      return "cipher";
  }
  return "unknown";
}

// How many classes a probe for the attribute separates.
inline int attribute_class_count(Attribute a) {
  switch (a) {
    case Attribute::Name:
      return static_cast<int>(kWorldNames.size());
    case Attribute::Species:
      return static_cast<int>(kWorldSpecies.size());
    case Attribute::Place:
      return static_cast<int>(kWorldPlaces.size());
    case Attribute::Object:
      return static_cast<int>(kWorldObjects.size());
    case Attribute::Mood:
      return static_cast<int>(kWorldMoods.size());
    case Attribute::Rhyme:
      return static_cast<int>(kRhymeFamilyCount);
    case Attribute::EvalMarker:
      return 2;
    case Attribute::Cipher:
      return 2;
  }
  return 0;
}

// The word (or label) for class `value` of an attribute: "fox", "-ight",
// "absent"/"present".
inline std::string attribute_value_name(Attribute a, int value) {
  NLA_CHECK(value >= 0 && value < attribute_class_count(a), "attribute_value_name",
            "value {} of attribute '{}' is not in [0, {})", value, attribute_name(a),
            attribute_class_count(a));
  const auto v = static_cast<std::size_t>(value);
  switch (a) {
    case Attribute::Name:
      return std::string(kWorldNames[v]);
    case Attribute::Species:
      return std::string(kWorldSpecies[v]);
    case Attribute::Place:
      return std::string(kWorldPlaces[v]);
    case Attribute::Object:
      return std::string(kWorldObjects[v]);
    case Attribute::Mood:
      return std::string(kWorldMoods[v]);
    case Attribute::Rhyme:
      return std::string(kRhymeFamilyNames[v]);
    case Attribute::EvalMarker:
    case Attribute::Cipher:
      return value ? "present" : "absent";
  }
  return {};
}

// Every plain-English word a world document can contain, lower case and
// sorted (the eval marker's "eval" included). Used to tell plain text from
// cipher text and to decode pig latin.
inline const std::vector<std::string>& world_lexicon() {
  static const std::vector<std::string> lexicon = [] {
    std::vector<std::string> words = {"the", "lived", "in",  "one",  "day",  "found", "a",
                                      "and", "felt",  "saw", "was",  "with", "said",  "whispered",
                                      "is",  "safe",  "end", "test", "over", "eval"};
    auto add = [&](auto const& table) {
      for (std::string_view w : table)
        if (!w.empty()) {
          std::string s(w);
          for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
          words.push_back(s);
        }
    };
    add(kWorldNames);
    add(kWorldSpecies);
    add(kWorldPlaces);
    add(kWorldObjects);
    add(kWorldMoods);
    for (const auto& family : kRhymeFamilies) add(family);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    return words;
  }();
  return lexicon;
}

}  // namespace nla
