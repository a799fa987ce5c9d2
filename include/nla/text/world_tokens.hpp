#pragma once
// A synthetic-world document as model input: BOS + encode(text) + EOS, and
// for each marked position the index of the token whose activation it
// describes, the last token of text[0, offset).
//
// Marked offsets sit on pre-token boundaries (text[offset] == ' ', and the
// GPT-2 pre-tokenizer starts a new pre-token at a space before a word), and
// BPE merges never cross pre-tokens, so encode(text[0, offset)) is a prefix
// of encode(text). That contract is checked here, not assumed: a tokenizer
// that breaks it gets an error naming the document and offset.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "nla/core/shape.hpp"
#include "nla/text/bpe_tokenizer.hpp"
#include "nla/text/synthetic_world.hpp"

namespace nla {

struct TokenizedDocument {
  std::vector<std::int32_t> tokens;  // BOS, text, EOS
  std::vector<index_t> marked;       // per WorldDocument::marked: token index to read
};

inline TokenizedDocument tokenize_world_document(const BpeTokenizer& tokenizer,
                                                 const WorldDocument& doc) {
  const char* op = "tokenize_world_document";
  TokenizedDocument out;
  out.tokens.push_back(tokenizer.bos_id());
  tokenizer.encode_append(doc.text, out.tokens);
  out.tokens.push_back(tokenizer.eos_id());
  std::vector<std::int32_t> prefix;
  for (const MarkedPosition& m : doc.marked) {
    prefix.clear();
    tokenizer.encode_append(doc.prefix(m.offset), prefix);
    const bool aligned = prefix.size() + 1 < out.tokens.size() &&
                         std::equal(prefix.begin(), prefix.end(), out.tokens.begin() + 1);
    NLA_CHECK(aligned && !prefix.empty(), op,
              "document {} ({}): the tokens of text[0, {}) are not a prefix of the document's "
              "tokens",
              doc.index, split_name(doc.split), m.offset);
    out.marked.push_back(index_t(prefix.size()));  // BOS is token 0
  }
  return out;
}

}  // namespace nla
