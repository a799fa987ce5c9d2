#pragma once
// A summarizer writes the warm-start explanation of each activation in a
// dataset: the text the verbalizer is first fine-tuned to say and the
// reconstructor to read (the paper's SFT stage, where a strong model
// summarised the text prefix in 2-3 features, the last one about the current
// token).
//
// Each activation comes with a JSONL row written by the dataset module:
//   {"doc": "<id>", "position": <token index>, "token": <id>,
//    "token_text": "<decoded token>", "prefix": "<text up to and including the token>"}
// and, for synthetic-world documents, "attributes", "target", "needed",
// "next_word", "current_token" and "description" (see
// summarize/world_truth_summarizer.hpp).
//
// The interface is batch-oriented because one summarizer (CommandSummarizer)
// pays a process start per call: a caller hands over every row at once.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"

namespace nla {

class Summarizer {
 public:
  virtual ~Summarizer() = default;
  // For logs and result files: "world_truth", "keyword", "command".
  virtual std::string name() const = 0;
  // One summary per row, in the order of `rows`.
  virtual std::vector<std::string> summarize(const std::vector<nlohmann::json>& rows) = 0;
};

namespace summarize_detail {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

inline std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

}  // namespace summarize_detail

// row[key] as a string; throws naming the summarizer, the key and the row.
inline std::string row_string(const nlohmann::json& row, const char* key, const char* op) {
  NLA_CHECK(row.is_object(), op, "a row must be a JSON object, got {}", row.dump());
  const auto it = row.find(key);
  NLA_CHECK(it != row.end() && it->is_string(), op, "row has no string \"{}\": {}", key,
            row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return it->get<std::string>();
}

// The current token as the last feature of a summary: "word <token>".
// Surrounding whitespace is dropped ("\u0120the" decodes to " the"); a token
// that is only whitespace is named ("newline", "space"), and ';' is spelled
// out, because ';' separates the features (explain/claims.hpp).
inline std::string describe_token(std::string_view token) {
  std::size_t begin = 0, end = token.size();
  while (begin < end && summarize_detail::is_space(token[begin])) ++begin;
  while (end > begin && summarize_detail::is_space(token[end - 1])) --end;
  if (begin == end) {
    if (token.find('\n') != std::string_view::npos) return "word newline";
    return token.empty() ? "word empty" : "word space";
  }
  std::string word;
  for (std::size_t i = begin; i < end; ++i) {
    const char c = token[i];
    if (c == ';') continue;
    // Inner whitespace runs become one space, so the word reads as one claim.
    if (summarize_detail::is_space(c)) {
      if (!word.empty() && word.back() != ' ') word += ' ';
      continue;
    }
    word += c;
  }
  return "word " + (word.empty() ? std::string("semicolon") : word);
}

}  // namespace nla
