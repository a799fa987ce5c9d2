#pragma once
// UTF-8 decoding and the three code point classes GPT-2's pre-tokenizer asks
// about: letter (\p{L}), number (\p{N}) and white space (\s).
//
// Text reaching a byte-level tokenizer may be any byte string, so decoding
// never fails: a byte that does not start a well-formed sequence (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF) is reported as a
// one-byte invalid unit, and the next call resumes at the byte after it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "nla/text/unicode_table.hpp"

namespace nla {

enum class CharClass : std::uint8_t { kOther, kLetter, kNumber, kSpace };

// The class of one code point. ASCII is answered without the table; the rest
// by binary search over the generated ranges (about 800 of them).
inline CharClass char_class(char32_t code_point) {
  if (code_point < 0x80) {
    const char32_t c = code_point;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::kLetter;
    if (c >= '0' && c <= '9') return CharClass::kNumber;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  using unicode_detail::kRanges;
  const auto* end = kRanges + unicode_detail::kRangeCount;
  // The last range whose first code point is <= code_point.
  const auto* it = std::upper_bound(
      kRanges, end, code_point,
      [](char32_t cp, const unicode_detail::CodePointRange& r) { return cp < r.first; });
  if (it == kRanges) return CharClass::kOther;
  --it;
  if (code_point > it->last) return CharClass::kOther;
  switch (it->cls) {
    case 'L':
      return CharClass::kLetter;
    case 'N':
      return CharClass::kNumber;
    default:
      return CharClass::kSpace;
  }
}

// One decoded unit of a byte string.
struct Utf8Char {
  char32_t code_point;  // U+FFFD when !valid
  int length;           // bytes consumed, 1 to 4
  bool valid;
};

// Decodes the unit starting at text[pos] (pos < text.size()).
inline Utf8Char decode_utf8(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1, true};
  constexpr Utf8Char kInvalid{0xFFFD, 1, false};
  int length = 0;
  char32_t cp = 0, min = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return kInvalid;  // continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if (pos + static_cast<std::size_t>(length) > text.size()) return kInvalid;
  for (int i = 1; i < length; ++i) {
    const unsigned char b = byte(pos + static_cast<std::size_t>(i));
    if ((b & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  return {cp, length, true};
}

// Appends the UTF-8 form of a code point (<= U+10FFFF, not a surrogate).
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline bool is_valid_utf8(std::string_view text) {
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    if (!c.valid) return false;
    pos += static_cast<std::size_t>(c.length);
  }
  return true;
}

}  // namespace nla
