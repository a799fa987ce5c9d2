#pragma once
// Pig latin, the cipher language of the synthetic world.
//
// A word (a maximal run of ASCII letters) is encoded as
//   vowel first:      word + "way"              owl  -> owlway
//   consonants first: rest + consonants + "ay"  fox  -> oxfay, the -> ethay
// where the leading consonant run is maximal, "qu" travels as one consonant
// (queen -> eenquay) and 'y' is a consonant only as the first letter
// (yes -> esyay, my -> ymay). A capital first letter stays in front
// (Pip -> Ippay); the rest of the word is lower-cased. Everything that is not
// a letter is copied, so encoding text keeps its spaces and punctuation.
//
// Decoding is ambiguous without a word list (oxfay could be "fox" or "xfo"),
// so pig_latin_decodings lists every word that encodes to a given form and
// from_pig_latin picks the one in a lexicon.

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nla {

namespace pig_latin_detail {
inline bool is_letter(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}
inline char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}
inline char upper(char c) {
  return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
}
inline bool is_vowel(char c) {
  c = lower(c);
  return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}
inline std::string lowered(std::string_view word) {
  std::string out(word);
  for (char& c : out) c = lower(c);
  return out;
}
// Applies `encode_word` to every run of letters and copies the rest.
template <class F>
std::string map_words(std::string_view text, F&& encode_word) {
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_letter(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && is_letter(text[j])) ++j;
    out += encode_word(text.substr(i, j - i));
    i = j;
  }
  return out;
}
}  // namespace pig_latin_detail

// One word of ASCII letters; an empty word stays empty.
inline std::string pig_latin_word(std::string_view word) {
  using namespace pig_latin_detail;
  if (word.empty()) return {};
  const bool capital = std::isupper(static_cast<unsigned char>(word[0])) != 0;
  const std::string w = lowered(word);
  std::string out;
  if (is_vowel(w[0])) {
    out = w + "way";
  } else {
    std::size_t n = 1;  // the first letter is a consonant here, 'y' included
    while (n < w.size() && !is_vowel(w[n]) && w[n] != 'y') {
      n += (w[n] == 'q' && n + 1 < w.size() && w[n + 1] == 'u') ? 2 : 1;
    }
    if (n == 1 && w[0] == 'q' && w.size() > 1 && w[1] == 'u') n = 2;
    out = w.substr(n) + w.substr(0, n) + "ay";
  }
  if (capital) out[0] = upper(out[0]);
  return out;
}

// Encodes every word of `text`, keeping everything else.
inline std::string to_pig_latin(std::string_view text) {
  return pig_latin_detail::map_words(text, [](std::string_view w) { return pig_latin_word(w); });
}

// Every word w (lower case, capitalised like `form`) with pig_latin_word(w) ==
// form, in increasing length of the moved consonant run. Empty when `form` is
// not pig latin at all.
inline std::vector<std::string> pig_latin_decodings(std::string_view form) {
  using namespace pig_latin_detail;
  std::vector<std::string> out;
  if (form.size() < 3 || !std::all_of(form.begin(), form.end(), is_letter)) return out;
  const bool capital = std::isupper(static_cast<unsigned char>(form[0])) != 0;
  const std::string f = lowered(form);
  if (f.compare(f.size() - 2, 2, "ay") != 0) return out;
  const std::string stem = f.substr(0, f.size() - 2);
  std::vector<std::string> candidates;
  if (stem.size() >= 2 && stem.back() == 'w') candidates.push_back(stem.substr(0, stem.size() - 1));
  // A consonant-first word moved its first k letters to the end of the stem.
  for (std::size_t k = 1; k <= stem.size(); ++k)
    candidates.push_back(stem.substr(stem.size() - k) + stem.substr(0, stem.size() - k));
  for (std::string& c : candidates) {
    if (pig_latin_word(c) != f) continue;
    if (capital) c[0] = upper(c[0]);
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

// Decodes every word of `text` to the decoding found in `lexicon` (lower-case
// words); nullopt when a word has no decoding there or more than one.
inline std::optional<std::string> from_pig_latin(std::string_view text,
                                                 const std::vector<std::string>& lexicon) {
  using namespace pig_latin_detail;
  bool ok = true;
  std::string out = map_words(text, [&](std::string_view form) {
    std::string found;
    int matches = 0;
    for (const std::string& w : pig_latin_decodings(form)) {
      if (std::find(lexicon.begin(), lexicon.end(), lowered(w)) == lexicon.end()) continue;
      found = w;
      ++matches;
    }
    if (matches != 1) ok = false;
    return found;
  });
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace nla
