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
#include <utility>
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

// Llama 3's pre-tokenization (and Qwen2's, which splits numbers into single
// digits where Llama 3 takes up to three):
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// At each position, in that order:
//   1. a contraction, in any case ("'S", "'Ll");
//   2. a letter run, prefixed by one code point that is neither a letter, a
//      number nor CR / LF when one stands before it ("(word", " word", "\tword");
//   3. 1 to max_digits numbers;
//   4. an optional U+0020 space, a run of "other" code points, then any CR / LF;
//   5. a white-space run up to and including its last CR / LF, if it has one;
//   6. otherwise a white-space run as in GPT-2's rule 5.
template <class Emit>
void for_each_pretoken_llama3(std::string_view text, int max_digits, Emit&& emit) {
  using pretokenize_detail::Unit;
  using pretokenize_detail::unit_at;
  const std::size_t n = text.size();
  auto is_newline = [&](std::size_t pos) { return text[pos] == '\r' || text[pos] == '\n'; };
  // End of the run of class `cls` starting at pos (pos itself included).
  auto run_end = [&](std::size_t pos, CharClass cls) {
    while (pos < n) {
      const Unit u = unit_at(text, pos);
      if (u.cls != cls) break;
      pos += u.length;
    }
    return pos;
  };
  auto newlines_end = [&](std::size_t pos) {
    while (pos < n && is_newline(pos)) ++pos;
    return pos;
  };
  std::size_t pos = 0;
  while (pos < n) {
    const std::size_t start = pos;
    auto take = [&](std::size_t end) {
      emit(text.substr(start, end - start));
      pos = end;
    };
    // 1. Contractions, case-insensitively.
    if (text[pos] == '\'' && pos + 1 < n) {
      auto lower = [&](std::size_t i) { return i < n ? char(text[i] | 0x20) : '\0'; };
      const char a = lower(pos + 1), b = lower(pos + 2);
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        take(pos + 2);
        continue;
      }
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
        take(pos + 3);
        continue;
      }
    }
    const Unit first = unit_at(text, pos);
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    if (first.cls == CharClass::kLetter) {
      take(run_end(pos, CharClass::kLetter));
      continue;
    }
    if (first.cls != CharClass::kNumber && !is_newline(pos) && pos + first.length < n &&
        unit_at(text, pos + first.length).cls == CharClass::kLetter) {
      take(run_end(pos + first.length, CharClass::kLetter));
      continue;
    }
    // 3. \p{N}{1,max_digits}
    if (first.cls == CharClass::kNumber) {
      std::size_t end = pos;
      for (int k = 0; k < max_digits && end < n; ++k) {
        const Unit u = unit_at(text, end);
        if (u.cls != CharClass::kNumber) break;
        end += u.length;
      }
      take(end);
      continue;
    }
    // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
    const std::size_t body = text[pos] == ' ' && pos + 1 < n ? pos + 1 : pos;
    if (unit_at(text, body).cls == CharClass::kOther) {
      take(newlines_end(run_end(body, CharClass::kOther)));
      continue;
    }
    // 5 and 6: first is white space.
    std::size_t end = pos, last_start = pos, after_newline = 0;
    int count = 0;
    while (end < n) {
      const Unit u = unit_at(text, end);
      if (u.cls != CharClass::kSpace) break;
      last_start = end;
      end += u.length;
      ++count;
      if (is_newline(last_start)) after_newline = end;
    }
    if (after_newline > 0) {
      take(after_newline);
    } else {
      take(end < n && count > 1 ? last_start : end);
    }
  }
}

// Which pre-tokenizer a tokenizer splits text with.
enum class PretokenPattern { kGpt2, kLlama3, kQwen2 };

// The pattern's regex, as tokenizer.json files spell it.
inline const char* pretoken_regex(PretokenPattern p) {
  switch (p) {
    case PretokenPattern::kLlama3:
      return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
             "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    case PretokenPattern::kQwen2:
      return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
             "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    case PretokenPattern::kGpt2:
      break;
  }
  return "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
}

// Calls emit(piece) for each piece of text under `pattern`.
template <class Emit>
void for_each_pretoken(std::string_view text, PretokenPattern pattern, Emit&& emit) {
  if (pattern == PretokenPattern::kGpt2)
    for_each_pretoken(text, std::forward<Emit>(emit));
  else
    for_each_pretoken_llama3(text, pattern == PretokenPattern::kLlama3 ? 3 : 1,
                             std::forward<Emit>(emit));
}

// The pieces of text, as views into it.
inline std::vector<std::string_view> pretokenize(std::string_view text,
                                                 PretokenPattern pattern = PretokenPattern::kGpt2) {
  std::vector<std::string_view> pieces;
  for_each_pretoken(text, pattern, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace nla
