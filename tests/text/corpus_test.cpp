#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/text/corpus.hpp>

#include "support/error_of.hpp"

using namespace nla;
using nla::testing::contains;
using nla::testing::error_of;

namespace {

std::filesystem::path data(const char* name) {
  return std::filesystem::path(NLA_TEST_DATA_DIR) / "corpus" / name;
}

}  // namespace

TEST_CASE("corpus: blank lines separate paragraphs", "[text]") {
  const auto docs = read_text_file(data("paragraphs.txt"));
  REQUIRE(docs.size() == 4);
  REQUIRE(docs[0].text ==
          "The kettle had been singing for a full minute before anyone noticed it.\n"
          "By then the kitchen windows were grey with steam, and the cat had moved\n"
          "from the sill to the warmer patch of floor beside the oven.");
  // A line of spaces separates like an empty one, and the leading spaces of
  // the next paragraph are trimmed; multi-byte characters pass through.
  REQUIRE(docs[2].text ==
          "A small caf\xC3\xA9 on the corner sold pastries that were na\xC3\xAFve about butter:\n"
          "they used far too much of it \xE2\x80\x94 and nobody ever complained.");
  REQUIRE(docs[3].text == "Rain arrived late in the afternoon and stayed until morning.");
  const std::size_t lines[] = {1, 6, 10, 13};
  for (std::size_t i = 0; i < docs.size(); ++i) {
    REQUIRE(docs[i].index == i);
    REQUIRE(docs[i].line == lines[i]);
    REQUIRE(docs[i].source == data("paragraphs.txt").string());
  }
}

TEST_CASE("corpus: fortune files split on '%' lines", "[text]") {
  CorpusOptions options;
  options.separator = DocumentSeparator::PercentLine;
  const auto docs = read_text_file(data("sayings.fortune"), options);
  // Five entries: the empty one between "%" and "%" is dropped, and the blank
  // line inside an entry stays in it.
  REQUIRE(docs.size() == 5);
  REQUIRE(docs[0].text == "A map is a promise that somebody else has already been lost here.");
  REQUIRE(docs[2].text ==
          "Measure twice, cut once, and keep the offcuts for the next mistake.\n\n"
          "\t\t-- a carpenter's apprentice");
  REQUIRE(docs[4].text == "If the answer fits on one line, check the question again.");
  REQUIRE(docs[4].line == 12);
  for (const auto& doc : docs) REQUIRE_FALSE(contains(doc.text, "%"));

  // As blank-line paragraphs the same file reads differently.
  const auto paragraphs = read_text_file(data("sayings.fortune"));
  REQUIRE(paragraphs.size() == 2);
}

TEST_CASE("corpus: line and whole-file separators, trimming, BOM and CRLF", "[text]") {
  const std::string text = "\xEF\xBB\xBF  first line \r\nsecond line\r\n\r\n   \r\nthird\r\n";
  CorpusOptions options;
  options.separator = DocumentSeparator::Line;
  auto docs = split_documents(text, "memory", options);
  REQUIRE(docs.size() == 3);
  REQUIRE(docs[0].text == "first line");
  REQUIRE(docs[1].text == "second line");
  REQUIRE(docs[2].text == "third");
  REQUIRE(docs[2].line == 5);

  options.separator = DocumentSeparator::WholeFile;
  docs = split_documents(text, "memory", options);
  REQUIRE(docs.size() == 1);
  REQUIRE(docs[0].text == "first line \nsecond line\n\n   \nthird");

  options.trim = false;
  options.separator = DocumentSeparator::BlankLine;
  docs = split_documents(text, "memory", options);
  REQUIRE(docs.size() == 2);
  REQUIRE(docs[0].text == "  first line \nsecond line");
  REQUIRE(docs[1].text == "third");

  REQUIRE(split_documents("", "empty").empty());
  REQUIRE(split_documents(" \n\n \t\n", "blank").empty());
}

TEST_CASE("corpus: long documents are cut at whitespace", "[text]") {
  CorpusOptions options;
  options.max_document_bytes = 60;
  const auto whole = read_text_file(data("paragraphs.txt"));
  const auto docs = read_text_file(data("paragraphs.txt"), options);
  REQUIRE(docs.size() > whole.size());
  // Pieces fit, end on no whitespace, and put back together (whitespace
  // runs collapsed) give the original paragraphs.
  auto squeeze = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      const bool space = c == ' ' || c == '\n' || c == '\t';
      if (space && (out.empty() || out.back() == ' ')) continue;
      out.push_back(space ? ' ' : c);
    }
    return out;
  };
  std::string joined_pieces, joined_whole;
  for (const auto& doc : docs) {
    REQUIRE(doc.text.size() <= 60);
    REQUIRE_FALSE(doc.text.empty());
    REQUIRE(doc.text.front() != ' ');
    REQUIRE(doc.text.back() != ' ');
    REQUIRE_FALSE(find_invalid_utf8(doc.text).has_value());
    joined_pieces += doc.text + " ";
  }
  for (const auto& doc : whole) joined_whole += doc.text + " ";
  REQUIRE(squeeze(joined_pieces) == squeeze(joined_whole));
  for (std::size_t i = 0; i < docs.size(); ++i) REQUIRE(docs[i].index == i);
  // Each piece's line number points at the line where its first word is.
  std::vector<std::string> file_lines;
  {
    std::ifstream in(data("paragraphs.txt"));
    for (std::string line; std::getline(in, line);) file_lines.push_back(line);
  }
  for (const auto& doc : docs) {
    REQUIRE(doc.line >= 1);
    REQUIRE(doc.line <= file_lines.size());
    const std::string first_word = doc.text.substr(0, doc.text.find_first_of(" \n"));
    REQUIRE(contains(file_lines[doc.line - 1], first_word));
  }

  // A word longer than the limit is cut at a character boundary, never
  // inside a multi-byte character.
  std::string word;
  for (int i = 0; i < 10; ++i) word += "ab\xC3\xA9";  // "abé" x 10, 40 bytes
  options.max_document_bytes = 8;
  const auto pieces = split_documents(word, "word", options);
  std::string rebuilt;
  for (const auto& p : pieces) {
    REQUIRE(p.text.size() <= 8);
    REQUIRE_FALSE(find_invalid_utf8(p.text).has_value());
    rebuilt += p.text;
  }
  REQUIRE(rebuilt == word);

  options.max_document_bytes = 3;
  REQUIRE_THROWS_AS(split_documents(word, "word", options), Error);
}

TEST_CASE("corpus: invalid UTF-8 names the file and the byte offset", "[text]") {
  const auto path = data("invalid_utf8.txt");
  const std::string message = error_of([&] { read_text_file(path); });
  INFO(message);
  REQUIRE(contains(message, path.string()));
  REQUIRE(contains(message, "invalid UTF-8 at byte offset 51"));
  REQUIRE(contains(message, "line 2"));
  REQUIRE(contains(message, "0xff"));

  CorpusOptions options;
  options.invalid_utf8 = InvalidUtf8Policy::Replace;
  const auto docs = read_text_file(path, options);
  REQUIRE(docs.size() == 1);
  REQUIRE(contains(docs[0].text, "bad byte here: \xEF\xBF\xBD and then"));

  // In-memory text is checked too.
  REQUIRE(contains(error_of([] { split_documents("ok \xC3", "memory"); }), "byte offset 3"));
}

TEST_CASE("corpus: UTF-8 validation follows the Unicode well-formedness table", "[text]") {
  REQUIRE_FALSE(find_invalid_utf8("plain ASCII").has_value());
  REQUIRE_FALSE(
      find_invalid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF").has_value());
  REQUIRE(find_invalid_utf8("ab\x80") == 2u);            // lone continuation byte
  REQUIRE(find_invalid_utf8("\xC0\xAF") == 0u);          // overlong '/'
  REQUIRE(find_invalid_utf8("\xE0\x80\xAF") == 0u);      // overlong, three bytes
  REQUIRE(find_invalid_utf8("\xED\xA0\x80") == 0u);      // surrogate U+D800
  REQUIRE(find_invalid_utf8("\xF4\x90\x80\x80") == 0u);  // above U+10FFFF
  REQUIRE(find_invalid_utf8("x\xE2\x82") == 1u);         // truncated
  REQUIRE(find_invalid_utf8("\xFF") == 0u);
  // One U+FFFD per maximal subpart: a truncated sequence is one, bytes that
  // can never start a sequence are one each.
  const std::string r = "\xEF\xBF\xBD";
  const std::string truncated = std::string("a\xE2\x82") + "b";
  REQUIRE(replace_invalid_utf8(truncated) == "a" + r + "b");
  REQUIRE(replace_invalid_utf8("\xC0\xAF") == r + r);
  REQUIRE(replace_invalid_utf8("\xF0\x9F\x98") == r);
  REQUIRE(replace_invalid_utf8("\xED\xA0\x80") == r + r + r);
  REQUIRE(replace_invalid_utf8("ok \xC3\xA9") == "ok \xC3\xA9");
}

TEST_CASE("corpus: a missing file or a directory is a clear error", "[text]") {
  const auto missing = data("no_such_file.txt");
  const std::string message = error_of([&] { read_text_file(missing); });
  REQUIRE(contains(message, missing.string()));
  REQUIRE(contains(message, "no such file"));
  REQUIRE(contains(error_of([] {
                     read_corpus({data("paragraphs.txt"), data("absent.txt")});
                   }),
                   "absent.txt"));
  REQUIRE(contains(error_of([] { read_text_file(data("")); }), "is a directory"));
}

TEST_CASE("corpus: several files, and a deterministic split by index", "[text]") {
  CorpusOptions options;
  options.separator = DocumentSeparator::Line;
  const auto docs = read_corpus({data("paragraphs.txt"), data("sayings.fortune")}, options);
  REQUIRE(docs.size() == 9 + 12);  // non-blank lines; "%" lines are text here
  for (std::size_t i = 0; i < docs.size(); ++i) REQUIRE(docs[i].index == i);
  REQUIRE(docs[8].source == data("paragraphs.txt").string());
  REQUIRE(docs[9].source == data("sayings.fortune").string());

  // Many documents: the split is a function of (seed, index), the three
  // splits partition the corpus, and the fractions are about right.
  std::string big;
  for (int i = 0; i < 5000; ++i) big += "document number " + std::to_string(i) + "\n";
  const auto many = split_documents(big, "many", options);
  REQUIRE(many.size() == 5000);
  const SplitFractions fractions;  // 0.1 validation, 0.1 test
  std::size_t total = 0;
  for (Split split : {Split::Train, Split::Validation, Split::Test}) {
    const auto part = select_split(many, split, 42, fractions);
    total += part.size();
    const double expected = fractions.fraction(split);
    REQUIRE(double(part.size()) / 5000 ==
            Approx(expected).margin(5 * std::sqrt(expected * (1 - expected) / 5000)));
    for (const auto& doc : part) {
      REQUIRE(corpus_split(doc, 42, fractions) == split);
      REQUIRE(corpus_split(doc, 42, fractions) == corpus_split(doc, 42, fractions));
    }
  }
  REQUIRE(total == many.size());
  int moved = 0;
  for (const auto& doc : many) moved += corpus_split(doc, 42) != corpus_split(doc, 43) ? 1 : 0;
  REQUIRE(moved > 500);  // another seed, another split
  SplitFractions bad;
  bad.validation = 0.7;
  bad.test = 0.4;
  REQUIRE_THROWS_AS(select_split(many, Split::Train, 42, bad), Error);
}

TEST_CASE("corpus: Debian's fortunes as real English", "[text]") {
  // fortunes-min (scripts/install-deps.sh) installs this file.
  const std::filesystem::path path = "/usr/share/games/fortunes/fortunes";
  if (!std::filesystem::exists(path)) {
    WARN("skipped: " << path << " is missing; install Debian's fortunes-min");
    SUCCEED();
    return;
  }
  CorpusOptions options;
  options.separator = DocumentSeparator::PercentLine;
  options.max_document_bytes = 220;
  const auto docs = read_text_file(path, options);
  REQUIRE(docs.size() > 300);
  std::set<std::string> texts;
  for (const auto& doc : docs) {
    REQUIRE_FALSE(doc.text.empty());
    REQUIRE(doc.text.size() <= 220);
    REQUIRE_FALSE(contains("\n" + doc.text + "\n", "\n%\n"));
    REQUIRE_FALSE(find_invalid_utf8(doc.text).has_value());
    texts.insert(doc.text);
  }
  REQUIRE(texts.size() > 300);
  REQUIRE(select_split(docs, Split::Test, 0).size() > 10);
}
