#pragma once
// Real text: documents from any UTF-8 text files.
//
// A file is read whole, checked to be UTF-8 (strictly: no overlong forms, no
// surrogates, nothing above U+10FFFF), stripped of a leading byte-order mark,
// and its line ends normalised ("\r\n" -> "\n"). It is then cut into
// documents by a separator:
//   BlankLine    paragraphs: runs of lines that are not blank
//   PercentLine  fortune(6) files: entries between lines that are only "%"
//   Line         one document per line (a verse per line, a JSONL-free list)
//   WholeFile    the file is one document
// Each document is trimmed of surrounding whitespace (optional), dropped when
// empty, and cut into pieces of at most max_document_bytes at whitespace
// (at a character boundary when a piece holds no whitespace). Document i of
// the corpus (files in the order given) goes to the split
// assign_split(seed, i, fractions), so a split is fixed by (files, options,
// seed) and does not depend on how the caller iterates.

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nla/core/error.hpp"
#include "nla/text/split.hpp"

namespace nla {

enum class DocumentSeparator { BlankLine, PercentLine, Line, WholeFile };

// What to do with bytes that are not UTF-8: throw naming file and offset, or
// substitute U+FFFD for each maximal invalid subpart (Unicode 15, section 3.9).
enum class InvalidUtf8Policy { Throw, Replace };

struct CorpusOptions {
  DocumentSeparator separator = DocumentSeparator::BlankLine;
  std::size_t max_document_bytes = 0;  // 0: no limit; else at least 4 (one code point)
  InvalidUtf8Policy invalid_utf8 = InvalidUtf8Policy::Throw;
  bool trim = true;  // strip whitespace at both ends of each document

  void check(const char* op) const {
    NLA_CHECK(max_document_bytes == 0 || max_document_bytes >= 4, op,
              "max_document_bytes {} must be 0 (no limit) or at least 4, the longest UTF-8 "
              "character",
              max_document_bytes);
  }
};

struct CorpusDocument {
  std::string text;
  std::string source;     // the file (or the name given to split_documents)
  std::size_t line = 0;   // 1-based line where the document starts in its source
  std::size_t index = 0;  // position in the corpus: the key of the split hash
};

namespace corpus_detail {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline bool in(unsigned char c, unsigned lo, unsigned hi) {
  return c >= lo && c <= hi;
}

// The length of the well-formed UTF-8 sequence at s[i], or 0 when there is
// none; `subpart` is then the length of the maximal subpart to replace (>= 1).
// Ranges of Unicode Table 3-7: the second byte's range depends on the first.
inline std::size_t sequence_length(std::string_view s, std::size_t i, std::size_t& subpart) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b0 = byte(0);
  subpart = 1;
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // range of the second byte
  if (in(b0, 0xC2, 0xDF))
    n = 2;
  else if (b0 == 0xE0)
    n = 3, lo = 0xA0;
  else if (in(b0, 0xE1, 0xEC) || in(b0, 0xEE, 0xEF))
    n = 3;
  else if (b0 == 0xED)
    n = 3, hi = 0x9F;  // no surrogates
  else if (b0 == 0xF0)
    n = 4, lo = 0x90;
  else if (in(b0, 0xF1, 0xF3))
    n = 4;
  else if (b0 == 0xF4)
    n = 4, hi = 0x8F;  // nothing above U+10FFFF
  else
    return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const bool ok = k == 1 ? in(byte(k), lo, hi) : in(byte(k), 0x80, 0xBF);
    if (!ok) return 0;
    subpart = k + 1;
  }
  return n;
}

}  // namespace corpus_detail

// Byte offset of the first byte that does not start a well-formed UTF-8
// sequence, or nullopt when all of `bytes` is UTF-8.
inline std::optional<std::size_t> find_invalid_utf8(std::string_view bytes) {
  std::size_t i = 0, subpart = 0;
  while (i < bytes.size()) {
    const std::size_t n = corpus_detail::sequence_length(bytes, i, subpart);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

// `bytes` with every maximal invalid subpart replaced by U+FFFD.
inline std::string replace_invalid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0, subpart = 0;
  while (i < bytes.size()) {
    const std::size_t n = corpus_detail::sequence_length(bytes, i, subpart);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      i += subpart;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

namespace corpus_detail {

struct Span {
  std::size_t begin, end;
};

// The line spans [begin, end) of `t`, without their '\n'.
inline std::vector<Span> lines_of(std::string_view t) {
  std::vector<Span> lines;
  std::size_t begin = 0;
  while (begin <= t.size()) {
    std::size_t end = t.find('\n', begin);
    if (end == std::string_view::npos) end = t.size();
    lines.push_back({begin, end});
    begin = end + 1;
  }
  return lines;
}

inline bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), is_space);
}

inline bool is_percent_line(std::string_view line) {
  std::size_t end = line.size();
  while (end > 0 && is_space(line[end - 1])) --end;
  return end == 1 && line[0] == '%';
}

// Document spans of `t` before trimming.
inline std::vector<Span> document_spans(std::string_view t, DocumentSeparator separator) {
  std::vector<Span> spans;
  if (separator == DocumentSeparator::WholeFile) {
    spans.push_back({0, t.size()});
    return spans;
  }
  const std::vector<Span> lines = lines_of(t);
  if (separator == DocumentSeparator::Line) return lines;
  // Blank lines (or "%" lines) close the open document; the next kept line
  // opens one. A document spans from its first line to its last, so blank
  // lines inside a fortune stay in it.
  std::optional<Span> open;
  for (const Span& line : lines) {
    const std::string_view text = t.substr(line.begin, line.end - line.begin);
    const bool separates =
        separator == DocumentSeparator::BlankLine ? is_blank(text) : is_percent_line(text);
    if (separates) {
      if (open) spans.push_back(*open);
      open.reset();
    } else if (open) {
      open->end = line.end;
    } else {
      open = line;
    }
  }
  if (open) spans.push_back(*open);
  return spans;
}

// Cuts [begin, end) into pieces of at most `max` bytes at whitespace, else at
// a character boundary; whitespace at a cut is dropped.
inline std::vector<Span> cut(std::string_view t, Span s, std::size_t max) {
  std::vector<Span> pieces;
  std::size_t b = s.begin;
  while (b < s.end) {
    if (max == 0 || s.end - b <= max) {
      pieces.push_back({b, s.end});
      break;
    }
    // Last whitespace byte p in (b, b + max]: the piece [b, p) fits.
    std::size_t p = b + max;
    while (p > b && !is_space(t[p])) --p;
    std::size_t next = p;
    if (p == b) {  // no whitespace: cut before the character that would not fit
      p = b + max;
      while (p > b && (static_cast<unsigned char>(t[p]) & 0xC0) == 0x80) --p;
      next = p;
    }
    std::size_t piece_end = p;
    while (piece_end > b && is_space(t[piece_end - 1])) --piece_end;
    if (piece_end > b) pieces.push_back({b, piece_end});
    b = next;
    while (b < s.end && is_space(t[b])) ++b;
  }
  return pieces;
}

}  // namespace corpus_detail

// Documents of already-decoded text (valid UTF-8 is checked). `source` names
// the text in documents and errors; indices count from `first_index`.
inline std::vector<CorpusDocument> split_documents(std::string_view text, const std::string& source,
                                                   const CorpusOptions& options = {},
                                                   std::size_t first_index = 0) {
  using namespace corpus_detail;
  options.check("split_documents");
  if (const auto bad = find_invalid_utf8(text))
    NLA_FAIL("split_documents", "'{}': invalid UTF-8 at byte offset {} (byte 0x{:02x})", source,
             *bad, static_cast<unsigned char>(text[*bad]));
  std::string t;
  t.reserve(text.size());
  std::size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  for (; i < text.size(); ++i)
    if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) t.push_back(text[i]);

  // Line starts, to give each document its 1-based line number.
  std::vector<std::size_t> line_starts{0};
  for (std::size_t k = 0; k < t.size(); ++k)
    if (t[k] == '\n') line_starts.push_back(k + 1);
  auto line_of = [&](std::size_t offset) {
    return static_cast<std::size_t>(
        std::upper_bound(line_starts.begin(), line_starts.end(), offset) - line_starts.begin());
  };

  std::vector<CorpusDocument> docs;
  for (Span s : document_spans(t, options.separator)) {
    if (options.trim || is_blank(std::string_view(t).substr(s.begin, s.end - s.begin))) {
      while (s.begin < s.end && is_space(t[s.begin])) ++s.begin;
      while (s.end > s.begin && is_space(t[s.end - 1])) --s.end;
    }
    if (s.begin == s.end) continue;
    for (const Span& piece : cut(t, s, options.max_document_bytes)) {
      CorpusDocument doc;
      doc.text = t.substr(piece.begin, piece.end - piece.begin);
      doc.source = source;
      doc.line = line_of(piece.begin);
      doc.index = first_index + docs.size();
      docs.push_back(std::move(doc));
    }
  }
  return docs;
}

// The documents of one file. Throws nla::Error naming the file when it is
// missing, unreadable or (with InvalidUtf8Policy::Throw) not UTF-8.
inline std::vector<CorpusDocument> read_text_file(const std::filesystem::path& path,
                                                  const CorpusOptions& options = {},
                                                  std::size_t first_index = 0) {
  const std::string name = path.string();
  std::error_code ec;
  NLA_CHECK(std::filesystem::exists(path, ec), "read_text_file", "'{}': no such file", name);
  NLA_CHECK(!std::filesystem::is_directory(path, ec), "read_text_file",
            "'{}' is a directory; pass the text files in it", name);
  std::ifstream in(path, std::ios::binary);
  NLA_CHECK(in.good(), "read_text_file", "'{}' cannot be opened for reading: {}", name,
            std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  NLA_CHECK(!in.bad(), "read_text_file", "reading '{}' failed: {}", name, std::strerror(errno));
  if (const auto bad = find_invalid_utf8(bytes)) {
    if (options.invalid_utf8 == InvalidUtf8Policy::Throw) {
      const auto line =
          1 + std::count(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(*bad), '\n');
      NLA_FAIL("read_text_file",
               "'{}': invalid UTF-8 at byte offset {} (line {}, byte 0x{:02x}); use "
               "InvalidUtf8Policy::Replace to substitute U+FFFD",
               name, *bad, line, static_cast<unsigned char>(bytes[*bad]));
    }
    bytes = replace_invalid_utf8(bytes);
  }
  return split_documents(bytes, name, options, first_index);
}

// The documents of several files, indexed in the order the files are given.
inline std::vector<CorpusDocument> read_corpus(const std::vector<std::filesystem::path>& files,
                                               const CorpusOptions& options = {}) {
  std::vector<CorpusDocument> docs;
  for (const auto& file : files) {
    std::vector<CorpusDocument> more = read_text_file(file, options, docs.size());
    docs.insert(docs.end(), std::make_move_iterator(more.begin()),
                std::make_move_iterator(more.end()));
  }
  return docs;
}

// The split of a document: a keyed hash of its corpus index.
inline Split corpus_split(const CorpusDocument& doc, std::uint64_t seed,
                          const SplitFractions& fractions = {}) {
  fractions.check("corpus_split");
  return assign_split(seed, doc.index, fractions);
}

// The documents of one split, in corpus order.
inline std::vector<CorpusDocument> select_split(const std::vector<CorpusDocument>& docs,
                                                Split split, std::uint64_t seed,
                                                const SplitFractions& fractions = {}) {
  fractions.check("select_split");
  std::vector<CorpusDocument> out;
  for (const CorpusDocument& doc : docs)
    if (assign_split(seed, doc.index, fractions) == split) out.push_back(doc);
  return out;
}

}  // namespace nla
