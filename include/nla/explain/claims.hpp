#pragma once
// Claims: the unit in which explanations are compared. "Explain with
// confidence" samples n explanations of one activation and reports, per
// claim, how many samples repeat it: a claim most samples make is one the
// activation determines; a one-off is more likely confabulated.
//
// An explanation is cut into claims at ';', at line breaks and at sentence
// ends ('.', '!' or '?' followed by whitespace or the end of the text, so
// "0.5" and "word .." keep their inner dots). Each claim is normalised:
// ASCII lower-cased, whitespace runs collapsed to one space, trimmed; empty
// claims are dropped.
//
//   "Name Pip;  word day."  ->  {"name pip", "word day"}

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace nla {

namespace claims_detail {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

}  // namespace claims_detail

// `text` lower-cased (ASCII), whitespace runs collapsed to one space, trimmed.
inline std::string normalize_claim(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (claims_detail::is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return out;
}

// The normalised, non-empty claims of an explanation, in order (see the top).
inline std::vector<std::string> split_claims(std::string_view text) {
  std::vector<std::string> claims;
  std::size_t begin = 0;
  auto close = [&](std::size_t end) {
    std::string claim = normalize_claim(text.substr(begin, end - begin));
    if (!claim.empty()) claims.push_back(std::move(claim));
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool sentence_end = (c == '.' || c == '!' || c == '?') &&
                              (i + 1 == text.size() || claims_detail::is_space(text[i + 1]));
    if (c == ';' || c == '\n' || sentence_end) {
      close(i);
      begin = i + 1;
    }
  }
  close(text.size());
  return claims;
}

struct ClaimSupport {
  std::string claim;
  int count = 0;          // samples that state the claim (once per sample)
  double fraction = 0.0;  // count / number of samples
};

// The claims of n sampled explanations, most repeated first. A claim counts
// once per sample however often that sample repeats it. Ties keep the order
// of first appearance (sample by sample, claim by claim), so the ranking is a
// pure function of the samples and reads like the first explanation.
inline std::vector<ClaimSupport> rank_claims(const std::vector<std::string>& samples) {
  std::vector<ClaimSupport> ranked;
  std::unordered_map<std::string, std::size_t> index;
  for (const std::string& sample : samples) {
    std::unordered_set<std::string> seen;
    for (std::string& claim : split_claims(sample)) {
      if (!seen.insert(claim).second) continue;
      const auto [it, inserted] = index.emplace(claim, ranked.size());
      if (inserted) ranked.push_back({std::move(claim), 0, 0.0});
      ++ranked[it->second].count;
    }
  }
  for (ClaimSupport& c : ranked)
    c.fraction = static_cast<double>(c.count) / static_cast<double>(samples.size());
  // Stable: equal counts stay in order of first appearance.
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const ClaimSupport& a, const ClaimSupport& b) { return a.count > b.count; });
  return ranked;
}

}  // namespace nla
