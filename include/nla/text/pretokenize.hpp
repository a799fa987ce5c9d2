#pragma once
// GPT-2's pre-tokenization: the split of text into pieces that BPE then
// merges within, never across. GPT-2 writes it as one regex, applied
// left to right, the first alternative that matches winning:
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Here it is a hand-written scanner over UTF-8 code points, with no regex
// engine. At each position, in that order:
//   1. an ASCII contraction ('s 't 're 've 'm 'll 'd, lowercase only: "'S"
//      falls through to rule 3 and then rule 2);
//   2. an optional U+0020 space and a maximal run of letters, or
//   3. ... of numbers, or
//   4. ... of "other" code points (neither letter, number nor white space);
//   5. a white-space run: all of it when it ends the text, else all but its
//      last code point (\s+(?!\S) backs off one so that the last space can
//      prefix the next word), or the single code point when the run is one
//      long (the plain \s+ alternative).
// Letter, number and white space are Unicode's L*, N* and White_Space
// (nla/text/unicode.hpp). A byte that is not valid UTF-8 counts as "other",
// so every byte string splits, and the pieces always concatenate back to the
// input.

#include <cstddef>
#include <string_view>
#include <vector>

#include "nla/text/unicode.hpp"

namespace nla {

namespace pretokenize_detail {

// Class and length of the unit at pos; invalid bytes are kOther.
struct Unit {
  CharClass cls;
  std::size_t length;
};

inline Unit unit_at(std::string_view text, std::size_t pos) {
  const unsigned char b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) return {char_class(b), 1};
  const Utf8Char c = decode_utf8(text, pos);
  return {c.valid ? char_class(c.code_point) : CharClass::kOther,
          static_cast<std::size_t>(c.length)};
}

// Length of the ASCII contraction starting at pos, or 0.
inline std::size_t contraction_length(std::string_view text, std::size_t pos) {
  if (text[pos] != '\'' || pos + 1 >= text.size()) return 0;
  const char a = text[pos + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= text.size()) return 0;
  const char b = text[pos + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

}  // namespace pretokenize_detail

// Calls emit(std::string_view piece) for each piece of text, in order.
template <class Emit>
void for_each_pretoken(std::string_view text, Emit&& emit) {
  using pretokenize_detail::unit_at;
  const std::size_t n = text.size();
  std::size_t pos = 0;
  while (pos < n) {
    const std::size_t start = pos;
    if (const std::size_t c = pretokenize_detail::contraction_length(text, pos)) {
      emit(text.substr(start, c));
      pos += c;
      continue;
    }
    // Rules 2-4: " ?" then a run of one class.
    std::size_t body = pos;
    if (text[pos] == ' ' && pos + 1 < n) body = pos + 1;
    const pretokenize_detail::Unit first = unit_at(text, body);
    if (first.cls != CharClass::kSpace) {
      std::size_t end = body + first.length;
      while (end < n) {
        const pretokenize_detail::Unit u = unit_at(text, end);
        if (u.cls != first.cls) break;
        end += u.length;
      }
      emit(text.substr(start, end - start));
      pos = end;
      continue;
    }
    // Rule 5: a white-space run starting at pos.
    std::size_t end = pos, last_start = pos, count = 0;
    while (end < n) {
      const pretokenize_detail::Unit u = unit_at(text, end);
      if (u.cls != CharClass::kSpace) break;
      last_start = end;
      end += u.length;
      ++count;
    }
    if (end < n && count > 1) end = last_start;  // leave the last one to prefix the next piece
    emit(text.substr(start, end - start));
    pos = end;
  }
}

// The pieces of text, as views into it.
inline std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  for_each_pretoken(text, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace nla
