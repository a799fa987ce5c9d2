#pragma once
// An extractive warm-start summarizer for arbitrary text: the prefix's top-k
// words by TF-IDF, then the current token.
//
//   "keywords lord, israel, king; word the."
//
// It needs no model, so a run on real text has a warm start without a strong
// LLM to call; the features it gives are the ones a short summary would most
// likely name (words the prefix repeats and the corpus rarely uses).
//
// Words: maximal runs of ASCII letters, digits and non-ASCII bytes (so
// "café" is one word); a run is a word when it holds an ASCII letter, no
// digit, and at least min_word_bytes bytes; ASCII is lower-cased. Stop words
// (English function words) are skipped.
//
// Score of word w in a prefix of n words, fitted on N texts:
//   idf(w)   = ln((1 + N) / (1 + df(w))) + 1       (smoothed; unseen words rank as rarest)
//   score(w) = tf(w) * idf(w) * (1 + recency_boost * (last(w) + 1) / n)
// where last(w) is the index of w's last occurrence among the prefix's words.
// The recency factor is a mild boost (at most 1 + recency_boost) toward
// words near the token being explained, which is what its activation is most
// about. Equal scores are ordered by the later last occurrence (two words
// never share one), so the result is a pure function of (fit, prefix).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/summarize/summarizer.hpp"

namespace nla {

struct KeywordOptions {
  std::size_t top_k = 3;           // keywords per summary (fewer when the prefix has fewer)
  double recency_boost = 0.25;     // the last word of a prefix scores up to 1.25x
  std::size_t min_word_bytes = 2;  // shorter runs are not words

  void check() const {
    NLA_CHECK(top_k >= 1, "KeywordOptions", "top_k must be at least 1, got {}", top_k);
    NLA_CHECK(recency_boost >= 0.0 && std::isfinite(recency_boost), "KeywordOptions",
              "recency_boost {} must be finite and >= 0", recency_boost);
  }
};

namespace keyword_detail {

inline bool is_ascii_letter(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
inline bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

inline const std::unordered_set<std::string>& stop_words() {
  static const std::unordered_set<std::string> words = {
      "a",       "about",   "above",    "after",      "again",  "against",   "all",        "also",
      "am",      "an",      "and",      "any",        "are",    "as",        "at",         "be",
      "because", "been",    "before",   "being",      "below",  "between",   "both",       "but",
      "by",      "can",     "could",    "did",        "do",     "does",      "doing",      "down",
      "during",  "each",    "even",     "ever",       "every",  "few",       "for",        "from",
      "further", "had",     "has",      "have",       "having", "he",        "her",        "here",
      "hers",    "herself", "him",      "himself",    "his",    "how",       "if",         "in",
      "into",    "is",      "it",       "its",        "itself", "just",      "may",        "me",
      "might",   "more",    "most",     "much",       "must",   "my",        "myself",     "no",
      "nor",     "not",     "now",      "of",         "off",    "on",        "once",       "only",
      "or",      "other",   "ought",    "our",        "ours",   "ourselves", "out",        "over",
      "own",     "same",    "shall",    "she",        "should", "so",        "some",       "such",
      "than",    "that",    "the",      "their",      "theirs", "them",      "themselves", "then",
      "there",   "these",   "they",     "this",       "those",  "through",   "thus",       "to",
      "too",     "under",   "until",    "up",         "upon",   "us",        "very",       "was",
      "we",      "were",    "what",     "when",       "where",  "which",     "while",      "who",
      "whom",    "whose",   "why",      "will",       "with",   "would",     "yet",        "you",
      "your",    "yours",   "yourself", "yourselves", "unto",   "thee",      "thou",       "thy",
      "ye",      "hath",    "shalt",    "let",        "said",   "says",      "say"};
  return words;
}

}  // namespace keyword_detail

// The words of `text` as KeywordSummarizer counts them (stop words included).
inline std::vector<std::string> keyword_words(std::string_view text,
                                              std::size_t min_word_bytes = 2) {
  using keyword_detail::is_ascii_letter;
  using keyword_detail::is_digit;
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (!(is_ascii_letter(c) || is_digit(c) || c >= 0x80)) {
      ++i;
      continue;
    }
    std::size_t j = i;
    bool letter = false, digit = false;
    for (; j < text.size(); ++j) {
      const auto d = static_cast<unsigned char>(text[j]);
      if (!(is_ascii_letter(d) || is_digit(d) || d >= 0x80)) break;
      letter = letter || is_ascii_letter(d);
      digit = digit || is_digit(d);
    }
    if (letter && !digit && j - i >= min_word_bytes)
      words.push_back(summarize_detail::lowered(text.substr(i, j - i)));
    i = j;
  }
  return words;
}

class KeywordSummarizer : public Summarizer {
 public:
  explicit KeywordSummarizer(KeywordOptions options = {}) : options_(options) { options_.check(); }

  std::string name() const override { return "keyword"; }
  const KeywordOptions& options() const { return options_; }

  // Fits document frequencies on `texts` (training prefixes or documents),
  // replacing any earlier fit.
  void fit(const std::vector<std::string>& texts) {
    document_frequency_.clear();
    for (const std::string& text : texts) {
      std::vector<std::string> words = keyword_words(text, options_.min_word_bytes);
      std::sort(words.begin(), words.end());
      words.erase(std::unique(words.begin(), words.end()), words.end());
      for (std::string& w : words) ++document_frequency_[std::move(w)];
    }
    text_count_ = texts.size();
    fitted_ = true;
  }

  bool fitted() const { return fitted_; }
  std::size_t text_count() const { return text_count_; }
  // df(w): the number of fitted texts that contain w.
  std::size_t document_frequency(const std::string& word) const {
    const auto it = document_frequency_.find(word);
    return it == document_frequency_.end() ? 0 : it->second;
  }

  // The prefix's top_k keywords, best first (see the score at the top).
  std::vector<std::string> keywords(std::string_view prefix) const {
    NLA_CHECK(fitted_, "KeywordSummarizer",
              "not fitted: call fit() with the training prefixes before summarising");
    const std::vector<std::string> words = keyword_words(prefix, options_.min_word_bytes);
    struct Candidate {
      std::string word;
      std::size_t count = 0;
      std::size_t last = 0;
      double score = 0.0;
    };
    std::unordered_map<std::string, std::size_t> index;
    std::vector<Candidate> candidates;
    const auto& stop = keyword_detail::stop_words();
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (stop.count(words[i])) continue;
      const auto [it, inserted] = index.emplace(words[i], candidates.size());
      if (inserted) candidates.push_back({words[i], 0, 0, 0.0});
      Candidate& c = candidates[it->second];
      ++c.count;
      c.last = i;
    }
    const double n = static_cast<double>(words.size());
    for (Candidate& c : candidates) {
      const double idf = std::log((1.0 + static_cast<double>(text_count_)) /
                                  (1.0 + static_cast<double>(document_frequency(c.word)))) +
                         1.0;
      const double recency = 1.0 + options_.recency_boost * (static_cast<double>(c.last) + 1.0) / n;
      c.score = static_cast<double>(c.count) * idf * recency;
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.score != b.score) return a.score > b.score;
      return a.last > b.last;
    });
    std::vector<std::string> out;
    for (std::size_t i = 0; i < candidates.size() && i < options_.top_k; ++i)
      out.push_back(std::move(candidates[i].word));
    return out;
  }

  // "keywords a, b, c; word <token>." ("word <token>." alone when the prefix
  // has no keyword). The token is the row's "token_text", else its
  // "current_token".
  std::string summarize_row(const nlohmann::json& row) const {
    constexpr const char* kOp = "KeywordSummarizer";
    const std::string prefix = row_string(row, "prefix", kOp);
    const char* token_key =
        row.is_object() && !row.contains("token_text") && row.contains("current_token")
            ? "current_token"
            : "token_text";
    const std::string token = row_string(row, token_key, kOp);
    std::string summary;
    const std::vector<std::string> words = keywords(prefix);
    for (std::size_t i = 0; i < words.size(); ++i)
      summary += (i == 0 ? "keywords " : ", ") + words[i];
    if (!summary.empty()) summary += "; ";
    summary += describe_token(token);
    summary += '.';
    return summary;
  }

  std::vector<std::string> summarize(const std::vector<nlohmann::json>& rows) override {
    std::vector<std::string> out;
    out.reserve(rows.size());
    for (const nlohmann::json& row : rows) out.push_back(summarize_row(row));
    return out;
  }

 private:
  KeywordOptions options_;
  std::unordered_map<std::string, std::size_t> document_frequency_;
  std::size_t text_count_ = 0;
  bool fitted_ = false;
};

}  // namespace nla
