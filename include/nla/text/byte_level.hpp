#pragma once
// GPT-2's byte <-> unicode map: how a byte-level vocabulary file spells any
// byte string as printable text.
//
// A byte that is itself a printable Latin-1 character ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF: 188 bytes) stands for itself; the other 68 (controls, space,
// DEL, U+0080..U+00A0, soft hyphen) are moved, in byte order, to U+0100..U+0143:
//
//   to_unicode(b) = b                                   if b is printable
//                 = 0x100 + #{non-printable bytes < b}  otherwise
//
// so space (0x20, the 33rd non-printable byte) becomes U+0120 'Ġ' and newline
// U+010A 'Ċ'. Vocabulary files (encoder.json, vocab.bpe, tokenizer.json) hold
// tokens in this spelling; BpeTokenizer holds raw bytes and converts at the
// file boundary.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "nla/text/unicode.hpp"

namespace nla {

namespace byte_level_detail {

constexpr bool is_printable(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<char32_t, 256> make_byte_to_unicode() {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) table[b] = is_printable(b) ? static_cast<char32_t>(b) : next++;
  return table;
}

inline constexpr std::array<char32_t, 256> kByteToUnicode = make_byte_to_unicode();

// The inverse over U+0000..U+0143; -1 where no byte maps.
constexpr std::array<std::int16_t, 0x144> make_unicode_to_byte() {
  std::array<std::int16_t, 0x144> table{};
  for (auto& b : table) b = -1;
  for (int b = 0; b < 256; ++b) table[kByteToUnicode[b]] = static_cast<std::int16_t>(b);
  return table;
}

inline constexpr std::array<std::int16_t, 0x144> kUnicodeToByte = make_unicode_to_byte();

}  // namespace byte_level_detail

// The code point standing for byte b.
constexpr char32_t byte_to_unicode(std::uint8_t b) {
  return byte_level_detail::kByteToUnicode[b];
}

// The byte a code point stands for, or -1 when it is not in the map's image
// (U+0000..U+0143 minus the 68 moved bytes' own code points).
constexpr int unicode_to_byte(char32_t cp) {
  return cp < byte_level_detail::kUnicodeToByte.size() ? byte_level_detail::kUnicodeToByte[cp] : -1;
}

// Bytes -> their byte-level spelling (UTF-8 text, 1 or 2 bytes per input byte).
inline std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) append_utf8(out, byte_to_unicode(static_cast<std::uint8_t>(c)));
  return out;
}

// Byte-level spelling -> bytes; nullopt when the text is not valid UTF-8 or
// holds a code point outside the map's image (e.g. a special token "€").
inline std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    const Utf8Char c = decode_utf8(text, pos);
    const int b = c.valid ? unicode_to_byte(c.code_point) : -1;
    if (b < 0) return std::nullopt;
    out += static_cast<char>(b);
    pos += static_cast<std::size_t>(c.length);
  }
  return out;
}

}  // namespace nla
