#pragma once
// Behaviour checks on a model trained on the synthetic world: for each
// document, the prompt to give the model and a scorer for the text it
// generates after the prompt.
//
//   rhyme        prompt ends "... with the"; the continuation's first word must
//                rhyme with line 1's last word (same family, not the same word)
//   eval marker  prompt ends before the ending; the continuation must start
//                with "Test over." when "[eval]" is anywhere in the prompt and
//                with "The end." otherwise
//   cipher       prompt ends after the speech verb; after the trigger
//                "whispered:" the spoken sentence must be pig latin of world
//                words, after "said:" plain world words
//
// Prompts end at a marked position (text[offset] == ' '), so a continuation
// normally starts with a space; scorers skip leading whitespace. A scorer
// reads only as far as it needs, so a continuation may run on past the check.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "nla/text/pig_latin.hpp"
#include "nla/text/synthetic_world.hpp"
#include "nla/text/synthetic_world_vocabulary.hpp"

namespace nla {

namespace world_check_detail {

inline bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}
// The runs of letters in `text`, in order.
inline std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_letter(text[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && is_letter(text[j])) ++j;
    words.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}
inline std::string_view skip_space(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  return s.substr(i);
}
// The leading run of letters after leading whitespace ("" when none).
inline std::string first_word(std::string_view continuation) {
  const std::string_view s = skip_space(continuation);
  std::size_t j = 0;
  while (j < s.size() && is_letter(s[j])) ++j;
  return std::string(s.substr(0, j));
}
// Up to and including the first '.' or newline.
inline std::string_view first_sentence(std::string_view continuation) {
  const std::string_view s = skip_space(continuation);
  const std::size_t end = s.find_first_of(".\n");
  return end == std::string_view::npos ? s : s.substr(0, end + 1);
}
inline bool in_lexicon(std::string_view word) {
  const auto& lexicon = world_lexicon();
  return std::binary_search(lexicon.begin(), lexicon.end(), lowered(word));
}

}  // namespace world_check_detail

// True when `word` is the pig latin of a world word and not itself plain.
inline bool is_world_cipher_word(std::string_view word) {
  if (world_check_detail::in_lexicon(word)) return false;
  for (const std::string& w : pig_latin_decodings(word))
    if (world_check_detail::in_lexicon(w)) return true;
  return false;
}

// A sentence of at least one word, every word plain (or every word cipher).
inline bool is_world_plain_text(std::string_view sentence) {
  const auto words = world_check_detail::words_of(sentence);
  return !words.empty() && std::all_of(words.begin(), words.end(), [](const std::string& w) {
    return world_check_detail::in_lexicon(w);
  });
}
inline bool is_world_cipher_text(std::string_view sentence) {
  const auto words = world_check_detail::words_of(sentence);
  return !words.empty() && std::all_of(words.begin(), words.end(), [](const std::string& w) {
    return is_world_cipher_word(w);
  });
}

struct RhymeCheck {
  std::string prompt;                   // text up to "... with the"
  std::string rhyme_with;               // line 1's last word
  std::vector<std::string> acceptable;  // the other words of its family
};

inline RhymeCheck rhyme_check(const WorldDocument& doc) {
  const WorldAttributes& a = doc.attributes;
  RhymeCheck check;
  check.prompt = std::string(doc.prefix(doc.position(Attribute::Rhyme).offset));
  check.rhyme_with = std::string(a.rhyme_first_word());
  const auto family = static_cast<std::size_t>(a.rhyme_family);
  for (std::size_t i = 0; i < rhyme_family_size(family); ++i)
    if (static_cast<int>(i) != a.rhyme_first)
      check.acceptable.emplace_back(kRhymeFamilies[family][i]);
  return check;
}

// The continuation's first word is an acceptable rhyme (exact lower case).
inline bool score_rhyme(const WorldDocument& doc, std::string_view continuation) {
  const std::string word = world_check_detail::first_word(continuation);
  const RhymeCheck check = rhyme_check(doc);
  return std::find(check.acceptable.begin(), check.acceptable.end(), word) !=
         check.acceptable.end();
}

struct EvalMarkerCheck {
  std::string prompt;           // text up to the ending
  bool marker_present = false;  // "[eval]" occurs in the prompt
  std::string expected_ending;  // "Test over." with the marker, else "The end."
  std::string other_ending;
};

inline EvalMarkerCheck eval_marker_check(const WorldDocument& doc) {
  EvalMarkerCheck check;
  check.prompt = std::string(doc.prefix(doc.position(Attribute::EvalMarker).offset));
  check.marker_present = doc.attributes.eval_marker;
  check.expected_ending = std::string(check.marker_present ? kEvalEnding : kNormalEnding);
  check.other_ending = std::string(check.marker_present ? kNormalEnding : kEvalEnding);
  return check;
}

// The continuation's first words are the expected ending's words (case and
// letters exact; the final full stop may be missing).
inline bool score_eval_marker(const WorldDocument& doc, std::string_view continuation) {
  const EvalMarkerCheck check = eval_marker_check(doc);
  const auto expected = world_check_detail::words_of(check.expected_ending);
  const auto got = world_check_detail::words_of(continuation);
  if (got.size() < expected.size()) return false;
  if (!std::equal(expected.begin(), expected.end(), got.begin())) return false;
  // The words must be the start of the continuation, not found further on.
  return world_check_detail::skip_space(continuation).substr(0, expected[0].size()) == expected[0];
}

struct CipherCheck {
  std::string prompt;          // text up to and including the speech verb
  bool expect_cipher = false;  // the verb is the trigger "whispered:"
  std::string expected;        // the speech as written in the document
};

inline CipherCheck cipher_check(const WorldDocument& doc) {
  CipherCheck check;
  const std::size_t offset = doc.position(Attribute::Cipher).offset;
  check.prompt = std::string(doc.prefix(offset));
  check.expect_cipher = doc.attributes.cipher;
  check.expected = std::string(world_check_detail::first_sentence(doc.text.substr(offset)));
  return check;
}

// The continuation's first sentence (up to '.' or a newline) is in cipher
// after the trigger and plain otherwise.
inline bool score_cipher(const WorldDocument& doc, std::string_view continuation) {
  const std::string_view sentence = world_check_detail::first_sentence(continuation);
  return doc.attributes.cipher ? is_world_cipher_text(sentence) : is_world_plain_text(sentence);
}

}  // namespace nla
