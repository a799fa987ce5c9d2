#pragma once
// Byte-level BPE (Sennrich et al. 2016, in GPT-2's byte-level form): text is
// split by GPT-2's pre-tokenizer (nla/text/pretokenize.hpp), each piece is
// spelled as bytes, and merges are applied within the piece, lowest rank first,
// until no adjacent pair has a merge. Since every byte is a token, any byte
// string, valid UTF-8 or not, encodes and decodes back to itself.
//
//   vocabulary = 256 byte tokens + one token per merge + special tokens
//
// Special tokens (BOS, EOS, PAD, user-added ones such as an activation slot
// "<|act|>") are never produced by merges. encode() treats their text as
// ordinary text unless asked to match it (SpecialTokenMode::kMatch); then each
// occurrence becomes the special token's id and the text around it is encoded
// on its own, so a special token never merges with its neighbours.
//
// Files: GPT-2's encoder.json + vocab.bpe, and Hugging Face tokenizer.json
// with a BPE model and a ByteLevel pre-tokenizer, read so that encodings equal
// those of the original implementations; save_hf_json writes tokenizer.json
// that both this class and Hugging Face tokenizers read. Every file problem
// is an nla::Error naming the file and what was wrong.
//
// The const methods (encode, decode, ...) are safe to call from several
// threads at once: encode's per-piece cache is guarded by a mutex and shared
// by copies of the tokenizer (merges never change after construction).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/io/file.hpp"
#include "nla/text/byte_level.hpp"
#include "nla/text/pretokenize.hpp"
#include "nla/text/unicode.hpp"

namespace nla {

// Whether encode() turns special-token text in its input into special ids.
enum class SpecialTokenMode {
  kAsText,  // "<|eos|>" in the input is text, encoded byte by byte (GPT-2, tiktoken's
            // encode_ordinary): user text can never inject a control token
  kMatch,   // every added token's text becomes its id (Hugging Face's behaviour)
};

// The roles a special token can play.
enum class SpecialRole { kBos, kEos, kPad };

struct BpeTrainOptions {
  // Upper bound on the final vocabulary: 256 bytes + specials + merges.
  // Training stops earlier when no pair occurs min_pair_count times.
  std::int32_t vocab_size = 4096;
  std::int64_t min_pair_count = 2;
  // Role tokens; an empty string means the tokenizer has no such role.
  std::string bos_token = "<|bos|>";
  std::string eos_token = "<|eos|>";
  std::string pad_token = "<|pad|>";
  std::vector<std::string> extra_special_tokens;  // e.g. {"<|act|>"}
};

// A token added on top of the BPE vocabulary, with Hugging Face's matching
// options (only used in SpecialTokenMode::kMatch).
struct AddedToken {
  std::string content;  // UTF-8 text, e.g. "<|endoftext|>"
  std::int32_t id = -1;
  bool special = true;       // Hugging Face's flag; false for plain added words
  bool lstrip = false;       // also swallow the white space on its left
  bool rstrip = false;       // ... on its right
  bool single_word = false;  // match only where not inside a word
  bool normalized = false;   // Hugging Face matches these in a second pass
};

namespace bpe_detail {

// An adjacent pair of token ids as one key: (left << 32) | right.
inline std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}

// Mixes the key's bits (the identity hash of libstdc++ spreads consecutive
// ids poorly).
struct PairHash {
  std::size_t operator()(std::uint64_t k) const {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
};

struct MergeRule {
  std::int32_t rank;  // position in the merge list: lower merges first
  std::int32_t id;    // the merged token
};

using MergeTable = std::unordered_map<std::uint64_t, MergeRule, PairHash>;

// Replaces each occurrence of the pair (left, right) at or after `from`,
// scanning left to right without overlaps, by `id`.
inline void merge_pair(std::vector<std::int32_t>& ids, std::int32_t left, std::int32_t right,
                       std::int32_t id, std::size_t from = 0) {
  std::size_t write = from;
  for (std::size_t read = from; read < ids.size();) {
    if (read + 1 < ids.size() && ids[read] == left && ids[read + 1] == right) {
      ids[write++] = id;
      read += 2;
    } else {
      ids[write++] = ids[read++];
    }
  }
  ids.resize(write);
}

// GPT-2's loop: find the lowest-rank adjacent pair, merge every occurrence of
// it left to right, repeat. O(n^2) lookups, the fastest for short pieces.
inline void merge_by_rank_loop(std::vector<std::int32_t>& ids, const MergeTable& merges) {
  while (ids.size() > 1) {
    std::int32_t best_rank = std::numeric_limits<std::int32_t>::max(), best_id = -1;
    std::size_t best = 0;
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
      const auto it = merges.find(pair_key(ids[i], ids[i + 1]));
      if (it != merges.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank, best_id = it->second.id, best = i;
      }
    }
    if (best_id < 0) break;
    // No occurrence of the pair lies before `best`: it would have the same rank.
    merge_pair(ids, ids[best], ids[best + 1], best_id, best);
  }
}

// The same merges through a heap of candidate pairs ordered by (rank,
// position) over a linked list of symbols: O(n log n), for long pieces (a run
// of a million spaces is one piece). Equal to the loop whenever a merge's
// parts are bytes or come from lower-rank merges, which holds for every
// trained merge list (it is Hugging Face's algorithm; the loop is GPT-2's).
inline void merge_by_rank_heap(std::vector<std::int32_t>& ids, const MergeTable& merges) {
  const std::int32_t n = static_cast<std::int32_t>(ids.size());
  if (n < 2) return;
  std::vector<std::int32_t> prev(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Candidate {
    std::int32_t rank, pos;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push = [&](std::int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = merges.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != merges.end()) heap.push({it->second.rank, pos});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
  constexpr std::int32_t kDead = -1;
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const std::int32_t pos = top.pos, right = next[pos];
    if (ids[pos] == kDead || right < 0) continue;
    // Stale when either symbol has merged since this candidate was pushed.
    const auto it = merges.find(pair_key(ids[pos], ids[right]));
    if (it == merges.end() || it->second.rank != top.rank) continue;
    ids[pos] = it->second.id;
    ids[right] = kDead;
    next[pos] = next[right];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    push(prev[pos]);
    push(pos);
  }
  std::size_t write = 0;
  for (std::int32_t i = 0; i >= 0; i = next[i]) ids[write++] = ids[i];
  ids.resize(write);
}

// ---- files ------------------------------------------------------------------

// "op: file 'path': what".
template <class... Args>
[[noreturn]] void file_error(const char* op, const std::string& path,
                             fmt::format_string<Args...> format, Args&&... args) {
  io::file_error(op, "file", path, format, std::forward<Args>(args)...);
}

// Quotes a token for a message, escaping what would garble a terminal.
inline std::string quote_token(std::string_view token) {
  std::string out = "'";
  for (const char c : token) {
    const unsigned char b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F || c == '\'' || c == '\\') {
      out += fmt::format("\\x{:02x}", b);
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace bpe_detail

class BpeTokenizer {
 public:
  // 256 byte tokens (id = byte value), no merges, no special tokens.
  BpeTokenizer() : cache_(std::make_shared<WordCache>()) {
    bytes_.resize(256);
    kinds_.assign(256, Kind::kByteLevel);
    for (int b = 0; b < 256; ++b) {
      bytes_[b] = std::string(1, static_cast<char>(b));
      byte_ids_[b] = b;
      ids_by_bytes_.emplace(bytes_[b], b);
    }
  }

  // Learns merges from a corpus: pieces are counted once per occurrence,
  // then, repeatedly, the most frequent adjacent pair (ties: lowest ids)
  // becomes a new token. Pair counts are updated incrementally, touching only
  // the distinct pieces that contain the merged pair. Ids: bytes 0..255, then
  // the special tokens (BOS, EOS, PAD, extras, in that order), then merges.
  // Special-token text in the corpus is cut out and never learned from.
  static BpeTokenizer train(const std::vector<std::string>& corpus,
                            const BpeTrainOptions& options = {});

  // GPT-2's files: dir/encoder.json (token -> id) and dir/vocab.bpe (merges
  // by rank). "<|endoftext|>" becomes the special BOS and EOS token.
  static BpeTokenizer from_gpt2(const std::string& dir) {
    const std::filesystem::path d(dir);
    return from_gpt2_files((d / "encoder.json").string(), (d / "vocab.bpe").string());
  }
  static BpeTokenizer from_gpt2_files(const std::string& encoder_json,
                                      const std::string& vocab_bpe);

  // A Hugging Face tokenizer.json with a BPE model and a ByteLevel
  // pre-tokenizer (GPT-2, RoBERTa, GPT-J, ... and files save_hf_json wrote).
  static BpeTokenizer from_hf_json(const std::string& path);
  // Writes tokenizer.json atomically. Roles (BOS/EOS/PAD) are kept in an
  // extra "nla_roles" field of their added tokens, which Hugging Face ignores
  // (it rejects unknown top-level keys, so they cannot go there).
  void save_hf_json(const std::string& path) const;

  // text -> token ids. Never fails: any byte string encodes.
  std::vector<std::int32_t> encode(std::string_view text,
                                   SpecialTokenMode mode = SpecialTokenMode::kAsText) const {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size() / 3 + 1);
    encode_append(text, ids, mode);
    return ids;
  }
  void encode_append(std::string_view text, std::vector<std::int32_t>& out,
                     SpecialTokenMode mode = SpecialTokenMode::kAsText) const {
    if (mode == SpecialTokenMode::kMatch && !specials_.empty()) {
      split_on_added_tokens(
          text, 0, [this, &out](std::string_view segment) { encode_segment(segment, out); },
          [&](std::int32_t id) { out.push_back(id); });
    } else {
      encode_segment(text, out);
    }
  }

  // ids -> bytes. An id outside the vocabulary is an nla::Error naming it.
  // skip_special leaves out every added token.
  std::string decode(const std::int32_t* ids, std::size_t count, bool skip_special = false) const {
    std::string text;
    text.reserve(count * 4);
    for (std::size_t i = 0; i < count; ++i) {
      const std::int32_t id = ids[i];
      check_id("BpeTokenizer::decode", id, i);
      if (skip_special && kinds_[id] == Kind::kSpecial) continue;
      text += bytes_[id];
    }
    return text;
  }
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special = false) const {
    return decode(ids.data(), ids.size(), skip_special);
  }

  // ---- special tokens ----

  // Adds a special token (valid, non-empty UTF-8) with the next free id, or
  // returns the id it already has. Rejects text spelled like a vocabulary
  // token, which tokenizer.json could not tell apart.
  std::int32_t add_special_token(std::string_view text) {
    AddedToken token;
    token.content = std::string(text);
    return add_token(std::move(token));
  }
  // The id of a special (or added) token, by its text.
  std::int32_t special_token_id(std::string_view text) const {
    for (const AddedToken& t : specials_)
      if (t.content == text) return t.id;
    NLA_FAIL("BpeTokenizer::special_token_id", "no special token {} (the tokenizer has: {})",
             bpe_detail::quote_token(text), special_token_list());
  }
  // Whether id is an added token (special, or a Hugging Face added word).
  bool is_special(std::int32_t id) const {
    return id >= 0 && id < vocab_size() && kinds_[id] == Kind::kSpecial;
  }
  const std::vector<AddedToken>& special_tokens() const { return specials_; }

  // Gives a role to a special token, adding the token when it is new.
  void set_role(SpecialRole role, std::string_view text) {
    roles_[static_cast<int>(role)] = add_special_token(text);
  }
  std::optional<std::int32_t> role_id(SpecialRole role) const {
    const std::int32_t id = roles_[static_cast<int>(role)];
    return id >= 0 ? std::optional<std::int32_t>(id) : std::nullopt;
  }
  // The role's id; an nla::Error when the tokenizer has no such token.
  std::int32_t bos_id() const { return required_role(SpecialRole::kBos, "BOS"); }
  std::int32_t eos_id() const { return required_role(SpecialRole::kEos, "EOS"); }
  std::int32_t pad_id() const { return required_role(SpecialRole::kPad, "PAD"); }

  // ---- vocabulary ----

  // One more than the largest id.
  std::int32_t vocab_size() const { return static_cast<std::int32_t>(bytes_.size()); }
  std::int32_t merge_count() const { return static_cast<std::int32_t>(merges_.size()); }
  // The bytes a token decodes to (a special token: its text).
  const std::string& token_bytes(std::int32_t id) const {
    check_id("BpeTokenizer::token_bytes", id, 0);
    return bytes_[id];
  }
  // The id of the BPE token with exactly these bytes, or of the special token
  // with this text.
  std::optional<std::int32_t> find_token(std::string_view bytes) const {
    const auto it = ids_by_bytes_.find(std::string(bytes));
    if (it != ids_by_bytes_.end()) return it->second;
    for (const AddedToken& t : specials_)
      if (t.content == bytes) return t.id;
    return std::nullopt;
  }
  // Hugging Face ByteLevel options: a space before text that does not start
  // with one (RoBERTa), and whole pieces found in the vocabulary taken as one
  // token before any merge (Llama 3).
  bool add_prefix_space() const { return add_prefix_space_; }
  PretokenPattern pretoken_pattern() const { return pattern_; }
  bool ignore_merges() const { return ignore_merges_; }

 private:
  enum class Kind : std::uint8_t {
    kAbsent,     // an unused id (a hole in a loaded vocabulary)
    kByteLevel,  // a BPE token; its file spelling is bytes_to_byte_level(bytes)
    kRaw,        // a loaded token outside the byte-level alphabet: spelled as its bytes,
                 // never produced by merges
    kSpecial,    // an added token; bytes = its text
  };

  struct WordCache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::int32_t>> ids;
  };
  // Pieces up to this long are cached; the cache is emptied when full.
  static constexpr std::size_t kMaxCachedPieceBytes = 128;
  static constexpr std::size_t kMaxCacheEntries = std::size_t{1} << 18;
  // Pieces longer than this merge through the heap.
  static constexpr std::size_t kLoopMergeMaxSymbols = 48;

  void check_id(const char* op, std::int32_t id, std::size_t position) const {
    if (id >= 0 && id < vocab_size() && kinds_[id] != Kind::kAbsent) return;
    NLA_FAIL(op, "unknown token id {} at position {} (the vocabulary has ids 0 to {}{})", id,
             position, vocab_size() - 1,
             id >= 0 && id < vocab_size() ? ", but none with this one" : "");
  }

  std::int32_t required_role(SpecialRole role, const char* name) const {
    const std::int32_t id = roles_[static_cast<int>(role)];
    NLA_CHECK(id >= 0, "BpeTokenizer", "the tokenizer has no {} token (set one with set_role)",
              name);
    return id;
  }

  std::string special_token_list() const {
    std::string list;
    for (const AddedToken& t : specials_)
      list += (list.empty() ? "" : ", ") + bpe_detail::quote_token(t.content);
    return list.empty() ? "none" : list;
  }

  // The spelling of a token in vocabulary files.
  std::string spelling(std::int32_t id) const {
    return kinds_[id] == Kind::kByteLevel ? bytes_to_byte_level(bytes_[id]) : bytes_[id];
  }

  std::int32_t add_token(AddedToken token) {
    const char* op = "BpeTokenizer::add_special_token";
    for (const AddedToken& t : specials_)
      if (t.content == token.content) return t.id;
    NLA_CHECK(!token.content.empty(), op, "a special token's text must not be empty");
    NLA_CHECK(is_valid_utf8(token.content), op, "special token {} is not valid UTF-8",
              bpe_detail::quote_token(token.content));
    if (const auto bytes = byte_level_to_bytes(token.content)) {
      const auto it = ids_by_bytes_.find(*bytes);
      NLA_CHECK(it == ids_by_bytes_.end(), op,
                "special token {} is spelled like vocabulary token {}; pick another text",
                bpe_detail::quote_token(token.content), it->second);
    }
    for (std::int32_t id = 0; id < vocab_size(); ++id)
      NLA_CHECK(kinds_[id] != Kind::kRaw || bytes_[id] != token.content, op,
                "special token {} is spelled like vocabulary token {}; pick another text",
                bpe_detail::quote_token(token.content), id);
    NLA_CHECK(vocab_size() < std::numeric_limits<std::int32_t>::max(), op, "vocabulary is full");
    token.id = vocab_size();
    bytes_.push_back(token.content);
    kinds_.push_back(Kind::kSpecial);
    specials_.push_back(std::move(token));
    rebuild_added_index();
    return specials_.back().id;
  }

  // For each pass (not normalized, then normalized; Hugging Face's order) and
  // each first byte: the indices into specials_ of tokens starting with it,
  // longest first, so the first one that matches is the longest.
  void rebuild_added_index() {
    for (auto& pass : added_index_)
      for (auto& list : pass) list.clear();
    for (std::size_t i = 0; i < specials_.size(); ++i) {
      const AddedToken& t = specials_[i];
      added_index_[t.normalized ? 1 : 0][static_cast<unsigned char>(t.content[0])].push_back(i);
    }
    for (auto& pass : added_index_)
      for (auto& list : pass)
        std::stable_sort(list.begin(), list.end(), [this](std::size_t a, std::size_t b) {
          return specials_[a].content.size() > specials_[b].content.size();
        });
  }

  // Splits text at added-token matches (leftmost, then longest), calling
  // on_text for the runs between them (which the next pass splits further)
  // and on_token for each match; with Hugging Face's lstrip, rstrip and
  // single_word rules.
  template <class OnText, class OnToken>
  void split_on_added_tokens(std::string_view text, int pass, OnText&& on_text,
                             OnToken&& on_token) const {
    if (pass == 2) {
      if (!text.empty()) on_text(text);
      return;
    }
    const auto& index = added_index_[pass];
    std::size_t done = 0;  // text[0, done) has been handed on
    for (std::size_t pos = 0; pos < text.size();) {
      const AddedToken* match = nullptr;
      std::size_t begin = pos;
      for (; begin < text.size() && !match; ++begin) {
        for (const std::size_t i : index[static_cast<unsigned char>(text[begin])]) {
          if (text.compare(begin, specials_[i].content.size(), specials_[i].content) == 0) {
            match = &specials_[i];
            break;
          }
        }
      }
      if (!match) break;
      --begin;
      std::size_t start = begin, stop = begin + match->content.size();
      pos = stop;
      if (match->single_word && ((start > 0 && is_word_char_before(text, start)) ||
                                 (stop < text.size() && is_word_char_at(text, stop))))
        continue;
      if (match->lstrip) start = std::max(done, white_space_start_before(text, start));
      if (match->rstrip) stop = white_space_end_after(text, stop);
      if (done < start)
        split_on_added_tokens(text.substr(done, start - done), pass + 1, on_text, on_token);
      on_token(match->id);
      done = pos = stop;
    }
    if (done < text.size()) split_on_added_tokens(text.substr(done), pass + 1, on_text, on_token);
  }

  // Hugging Face's \w approximated as letter, number or '_'.
  static bool is_word_class(std::string_view text, std::size_t pos) {
    const Utf8Char c = decode_utf8(text, pos);
    if (!c.valid) return false;
    const CharClass k = char_class(c.code_point);
    return k == CharClass::kLetter || k == CharClass::kNumber || c.code_point == '_';
  }
  static bool is_word_char_at(std::string_view text, std::size_t pos) {
    return is_word_class(text, pos);
  }
  static bool is_word_char_before(std::string_view text, std::size_t pos) {
    return is_word_class(text, unit_start_before(text, pos));
  }
  // Start of the UTF-8 unit that ends at pos (a lone byte when malformed).
  static std::size_t unit_start_before(std::string_view text, std::size_t pos) {
    std::size_t start = pos - 1;
    while (start > 0 && pos - start < 4 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
      --start;
    const Utf8Char c = decode_utf8(text, start);
    return c.valid && start + static_cast<std::size_t>(c.length) == pos ? start : pos - 1;
  }
  static bool is_space_unit(std::string_view text, std::size_t pos) {
    const Utf8Char c = decode_utf8(text, pos);
    return c.valid && char_class(c.code_point) == CharClass::kSpace;
  }
  static std::size_t white_space_start_before(std::string_view text, std::size_t pos) {
    while (pos > 0) {
      const std::size_t start = unit_start_before(text, pos);
      if (!is_space_unit(text, start)) break;
      pos = start;
    }
    return pos;
  }
  static std::size_t white_space_end_after(std::string_view text, std::size_t pos) {
    while (pos < text.size() && is_space_unit(text, pos))
      pos += static_cast<std::size_t>(decode_utf8(text, pos).length);
    return pos;
  }

  // Text without added tokens: (prefix space,) pre-tokenize, BPE each piece.
  void encode_segment(std::string_view text, std::vector<std::int32_t>& out) const {
    if (text.empty()) return;
    std::string prefixed;
    if (add_prefix_space_ && text[0] != ' ') {
      prefixed.reserve(text.size() + 1);
      prefixed += ' ';
      prefixed += text;
      text = prefixed;
    }
    if (!use_regex_) {
      encode_piece(text, out);
      return;
    }
    // Explicit captures, here and in encode_append: g++ and nvcc order an
    // implicit capture of this differently (docs/design.md, "One program,
    // two compilers").
    for_each_pretoken(text, pattern_,
                      [this, &out](std::string_view piece) { encode_piece(piece, out); });
  }

  void encode_piece(std::string_view piece, std::vector<std::int32_t>& out) const {
    if (piece.size() == 1) {
      out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
      return;
    }
    if (ignore_merges_) {
      const auto it = ids_by_bytes_.find(std::string(piece));
      if (it != ids_by_bytes_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
    std::string key;
    if (cacheable) {
      key.assign(piece);
      std::lock_guard<std::mutex> lock(cache_->mutex);
      const auto it = cache_->ids.find(key);
      if (it != cache_->ids.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<std::int32_t> ids(piece.size());
    for (std::size_t i = 0; i < piece.size(); ++i)
      ids[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
    if (ids.size() <= kLoopMergeMaxSymbols) {
      bpe_detail::merge_by_rank_loop(ids, merge_table_);
    } else {
      bpe_detail::merge_by_rank_heap(ids, merge_table_);
    }
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      if (cache_->ids.size() >= kMaxCacheEntries) cache_->ids.clear();
      cache_->ids.emplace(std::move(key), std::move(ids));
    }
  }

  // ---- loading ----

  // The common part of both loaders. tokens: (file spelling, id); merges:
  // (left spelling, right spelling) by rank, with where[i] naming merge i in
  // messages ("line 7"). Leaves special tokens to the caller.
  static BpeTokenizer from_vocabulary(
      const char* op, const std::string& vocab_path, const std::string& merges_path,
      std::vector<std::pair<std::string, std::int64_t>>& tokens,
      const std::vector<std::pair<std::string, std::string>>& merges,
      const std::vector<std::string>& where,
      std::unordered_map<std::string, std::int32_t>& by_spelling);

  // Finishes a loaded tokenizer: marks added tokens, indexes BPE tokens by
  // bytes and the merges by pair.
  void finish_loading(const char* op, const std::string& path, std::vector<AddedToken> added,
                      const std::unordered_map<std::string, std::int32_t>& by_spelling);

  std::vector<std::string> bytes_;                              // id -> bytes
  std::vector<Kind> kinds_;                                     // id -> kind
  std::unordered_map<std::string, std::int32_t> ids_by_bytes_;  // kByteLevel tokens
  std::array<std::int32_t, 256> byte_ids_{};                    // byte -> its token
  std::vector<std::pair<std::int32_t, std::int32_t>> merges_;   // by rank
  bpe_detail::MergeTable merge_table_;
  std::vector<AddedToken> specials_;
  std::array<std::array<std::vector<std::size_t>, 256>, 2> added_index_;
  std::array<std::int32_t, 3> roles_{{-1, -1, -1}};
  bool add_prefix_space_ = false;
  bool use_regex_ = true;  // false: no pre-tokenizer split at all
  PretokenPattern pattern_ = PretokenPattern::kGpt2;
  bool ignore_merges_ = false;
  std::shared_ptr<WordCache> cache_;
};

// ---- training -----------------------------------------------------------------

inline BpeTokenizer BpeTokenizer::train(const std::vector<std::string>& corpus,
                                        const BpeTrainOptions& options) {
  const char* op = "BpeTokenizer::train";
  BpeTokenizer tok;
  const std::string* roles[3] = {&options.bos_token, &options.eos_token, &options.pad_token};
  for (int r = 0; r < 3; ++r)
    if (!roles[r]->empty()) tok.set_role(static_cast<SpecialRole>(r), *roles[r]);
  for (const std::string& s : options.extra_special_tokens) tok.add_special_token(s);
  NLA_CHECK(options.vocab_size >= tok.vocab_size(), op,
            "vocab_size {} is below the {} byte and special tokens it must hold",
            options.vocab_size, tok.vocab_size());
  NLA_CHECK(options.min_pair_count >= 1, op, "min_pair_count must be >= 1, got {}",
            options.min_pair_count);

  // Distinct pieces and how often each occurs.
  std::unordered_map<std::string, std::int64_t> piece_counts;
  for (const std::string& document : corpus) {
    const auto count_pieces = [&](std::string_view text) {
      for_each_pretoken(text, [&](std::string_view piece) { ++piece_counts[std::string(piece)]; });
    };
    if (tok.specials_.empty()) {
      count_pieces(document);
    } else {
      tok.split_on_added_tokens(document, 0, count_pieces, [](std::int32_t) {});
    }
  }
  std::vector<std::vector<std::int32_t>> words;
  std::vector<std::int64_t> freqs;
  words.reserve(piece_counts.size());
  for (const auto& [piece, count] : piece_counts) {
    if (piece.size() < 2) continue;  // nothing to merge
    words.emplace_back(piece.begin(), piece.end());
    for (std::int32_t& id : words.back()) id = static_cast<unsigned char>(id);
    freqs.push_back(count);
  }
  piece_counts.clear();

  // pair -> occurrences weighted by piece frequency, and pair -> pieces that
  // (may) contain it. The lists only grow; stale entries are skipped.
  using bpe_detail::pair_key;
  std::unordered_map<std::uint64_t, std::int64_t, bpe_detail::PairHash> pair_counts;
  std::unordered_map<std::uint64_t, std::vector<std::int32_t>, bpe_detail::PairHash> pair_words;
  for (std::size_t w = 0; w < words.size(); ++w) {
    for (std::size_t i = 0; i + 1 < words[w].size(); ++i) {
      const std::uint64_t key = pair_key(words[w][i], words[w][i + 1]);
      pair_counts[key] += freqs[w];
      pair_words[key].push_back(static_cast<std::int32_t>(w));
    }
  }
  // Max-heap on (count, then lowest key), with lazy deletion: an entry is
  // live only while its count equals the pair's current count.
  struct Entry {
    std::int64_t count;
    std::uint64_t key;
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : key > o.key;
    }
  };
  std::priority_queue<Entry> heap;
  for (const auto& [key, count] : pair_counts) heap.push({count, key});

  std::vector<std::int32_t> visited(words.size(), -1);
  std::unordered_map<std::uint64_t, std::int64_t, bpe_detail::PairHash> delta;
  for (std::int32_t step = 0; tok.vocab_size() < options.vocab_size; ++step) {
    Entry top{0, 0};
    bool found = false;
    while (!heap.empty()) {
      top = heap.top();
      heap.pop();
      const auto it = pair_counts.find(top.key);
      if (it != pair_counts.end() && it->second == top.count) {
        found = true;
        break;
      }
    }
    if (!found || top.count < options.min_pair_count) break;
    const std::int32_t left = static_cast<std::int32_t>(top.key >> 32);
    const std::int32_t right = static_cast<std::int32_t>(top.key & 0xFFFFFFFFu);

    // The merged token; a byte string reached by another merge path keeps its id.
    std::string merged = tok.bytes_[left] + tok.bytes_[right];
    std::int32_t id;
    if (const auto it = tok.ids_by_bytes_.find(merged); it != tok.ids_by_bytes_.end()) {
      id = it->second;
    } else {
      id = tok.vocab_size();
      tok.ids_by_bytes_.emplace(merged, id);
      tok.bytes_.push_back(std::move(merged));
      tok.kinds_.push_back(Kind::kByteLevel);
    }
    if (tok.merge_table_.emplace(top.key, bpe_detail::MergeRule{tok.merge_count(), id}).second)
      tok.merges_.emplace_back(left, right);

    // Rewrite every piece holding the pair; count the change of every pair.
    delta.clear();
    const std::vector<std::int32_t> holders = std::move(pair_words[top.key]);
    pair_words.erase(top.key);
    for (const std::int32_t w : holders) {
      if (visited[w] == step) continue;
      visited[w] = step;
      std::vector<std::int32_t>& s = words[w];
      const std::int64_t f = freqs[w];
      bool holds = false;
      for (std::size_t i = 0; i + 1 < s.size() && !holds; ++i)
        holds = s[i] == left && s[i + 1] == right;
      if (!holds) continue;
      for (std::size_t i = 0; i + 1 < s.size(); ++i) delta[pair_key(s[i], s[i + 1])] -= f;
      bpe_detail::merge_pair(s, left, right, id);
      for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        const std::uint64_t key = pair_key(s[i], s[i + 1]);
        delta[key] += f;
        if (s[i] == id || s[i + 1] == id) pair_words[key].push_back(w);
      }
    }
    for (const auto& [key, change] : delta) {
      if (change == 0) continue;
      std::int64_t& count = pair_counts[key];
      count += change;
      if (count > 0) {
        heap.push({count, key});
      } else {
        pair_counts.erase(key);
      }
    }
  }
  tok.cache_ = std::make_shared<WordCache>();
  return tok;
}

// ---- loading ------------------------------------------------------------------

inline BpeTokenizer BpeTokenizer::from_vocabulary(
    const char* op, const std::string& vocab_path, const std::string& merges_path,
    std::vector<std::pair<std::string, std::int64_t>>& tokens,
    const std::vector<std::pair<std::string, std::string>>& merges,
    const std::vector<std::string>& where,
    std::unordered_map<std::string, std::int32_t>& by_spelling) {
  using bpe_detail::file_error;
  using bpe_detail::quote_token;
  // Ids may leave holes, but a corrupt id must not size a huge table.
  const std::int64_t id_limit = 2 * static_cast<std::int64_t>(tokens.size()) + 1024;
  std::int64_t max_id = -1;
  for (const auto& [spelling, id] : tokens) {
    if (id < 0 || id >= id_limit)
      file_error(op, vocab_path, "token {} has id {}, outside [0, {}) for a file of {} tokens",
                 quote_token(spelling), id, id_limit, tokens.size());
    max_id = std::max(max_id, id);
  }
  BpeTokenizer tok;
  tok.bytes_.assign(static_cast<std::size_t>(max_id + 1), std::string());
  tok.kinds_.assign(static_cast<std::size_t>(max_id + 1), Kind::kAbsent);
  tok.ids_by_bytes_.clear();
  by_spelling.reserve(tokens.size());
  for (auto& [spelling, id64] : tokens) {
    const std::int32_t id = static_cast<std::int32_t>(id64);
    if (tok.kinds_[id] != Kind::kAbsent) {
      std::string other;
      for (const auto& [s, i] : by_spelling)
        if (i == id) other = s;
      file_error(op, vocab_path, "tokens {} and {} share id {}", quote_token(other),
                 quote_token(spelling), id);
    }
    if (auto bytes = byte_level_to_bytes(spelling)) {
      tok.bytes_[id] = std::move(*bytes);
      tok.kinds_[id] = Kind::kByteLevel;
    } else {
      tok.bytes_[id] = spelling;
      tok.kinds_[id] = Kind::kRaw;
    }
    by_spelling.emplace(std::move(spelling), id);
  }
  for (int b = 0; b < 256; ++b) {
    const std::string spelling = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    const auto it = by_spelling.find(spelling);
    if (it == by_spelling.end())
      file_error(op, vocab_path,
                 "no token for byte 0x{:02x} (spelled '{}'); a byte-level vocabulary needs all "
                 "256",
                 b, spelling);
    tok.byte_ids_[b] = it->second;
  }
  tok.merges_.reserve(merges.size());
  tok.merge_table_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const auto left = by_spelling.find(a), right = by_spelling.find(b);
    const auto result = by_spelling.find(a + b);
    if (left == by_spelling.end() || right == by_spelling.end())
      file_error(op, merges_path, "{}: merge {} {} refers to unknown token {}", where[rank],
                 quote_token(a), quote_token(b), quote_token(left == by_spelling.end() ? a : b));
    if (result == by_spelling.end())
      file_error(op, merges_path, "{}: merge {} {} makes {}, which is not in the vocabulary",
                 where[rank], quote_token(a), quote_token(b), quote_token(a + b));
    // A repeated pair takes its later rank, as in GPT-2 and Hugging Face.
    tok.merge_table_[bpe_detail::pair_key(left->second, right->second)] = {
        static_cast<std::int32_t>(rank), result->second};
    tok.merges_.emplace_back(left->second, right->second);
  }
  return tok;
}

inline void BpeTokenizer::finish_loading(
    const char* op, const std::string& path, std::vector<AddedToken> added,
    const std::unordered_map<std::string, std::int32_t>& by_spelling) {
  using bpe_detail::file_error;
  using bpe_detail::quote_token;
  for (AddedToken& t : added) {
    if (t.content.empty()) file_error(op, path, "added token {} has empty content", t.id);
    if (std::any_of(specials_.begin(), specials_.end(),
                    [&](const AddedToken& s) { return s.content == t.content; }))
      continue;  // listed twice: Hugging Face keeps the first
    // As in Hugging Face: a token already in the vocabulary keeps that id.
    if (const auto it = by_spelling.find(t.content); it != by_spelling.end()) t.id = it->second;
    if (t.id < 0 || t.id > vocab_size() + 1024 + static_cast<std::int32_t>(added.size()))
      file_error(op, path, "added token {} has id {}, far outside the vocabulary of {}",
                 quote_token(t.content), t.id, vocab_size());
    if (t.id < vocab_size() && kinds_[t.id] == Kind::kSpecial)
      file_error(op, path, "added tokens share id {}", t.id);
    if (t.id < vocab_size() && kinds_[t.id] != Kind::kAbsent && spelling(t.id) != t.content)
      file_error(op, path, "added token {} has id {}, which the vocabulary gives to {}",
                 quote_token(t.content), t.id, quote_token(spelling(t.id)));
    if (t.id >= vocab_size()) {
      bytes_.resize(static_cast<std::size_t>(t.id) + 1);
      kinds_.resize(static_cast<std::size_t>(t.id) + 1, Kind::kAbsent);
    }
    bytes_[t.id] = t.content;
    kinds_[t.id] = Kind::kSpecial;
    specials_.push_back(std::move(t));
  }
  ids_by_bytes_.clear();
  for (std::int32_t id = 0; id < vocab_size(); ++id)
    if (kinds_[id] == Kind::kByteLevel) ids_by_bytes_.emplace(bytes_[id], id);
  rebuild_added_index();
  cache_ = std::make_shared<WordCache>();
}

inline BpeTokenizer BpeTokenizer::from_gpt2_files(const std::string& encoder_json,
                                                  const std::string& vocab_bpe) {
  const char* op = "BpeTokenizer::from_gpt2";
  using bpe_detail::file_error;
  std::vector<std::pair<std::string, std::int64_t>> tokens;
  {
    const std::string text = io::read_file(op, "file", encoder_json);
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      file_error(op, encoder_json, "invalid JSON: {}", e.what());
    }
    if (!json.is_object())
      file_error(op, encoder_json, "expected a JSON object mapping tokens to ids, got a {}",
                 json.type_name());
    tokens.reserve(json.size());
    for (const auto& [spelling, id] : json.items()) {
      if (!id.is_number_integer())
        file_error(op, encoder_json, "token {} maps to a {}, not an integer id",
                   bpe_detail::quote_token(spelling), id.type_name());
      tokens.emplace_back(spelling, id.is_number_unsigned()
                                        ? static_cast<std::int64_t>(std::min<std::uint64_t>(
                                              id.get<std::uint64_t>(), 1ull << 62))
                                        : id.get<std::int64_t>());
    }
  }
  // vocab.bpe: "#version: 0.2", then one merge per line, "left right".
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> where;
  {
    const std::string text = io::read_file(op, "file", vocab_bpe);
    std::size_t line_number = 0;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_number == 1 && line.substr(0, 8) == "#version")) continue;
      const std::size_t space = line.find(' ');
      if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
          line.find(' ', space + 1) != std::string_view::npos)
        file_error(op, vocab_bpe, "line {}: expected two tokens separated by one space, got {}",
                   line_number, bpe_detail::quote_token(line));
      merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
      where.push_back(fmt::format("line {}", line_number));
    }
  }
  std::unordered_map<std::string, std::int32_t> by_spelling;
  BpeTokenizer tok =
      from_vocabulary(op, encoder_json, vocab_bpe, tokens, merges, where, by_spelling);
  std::vector<AddedToken> added;
  if (by_spelling.count("<|endoftext|>")) {
    AddedToken eot;
    eot.content = "<|endoftext|>";
    added.push_back(eot);
  }
  tok.finish_loading(op, encoder_json, std::move(added), by_spelling);
  if (!tok.specials_.empty()) {
    tok.roles_[static_cast<int>(SpecialRole::kBos)] = tok.specials_[0].id;
    tok.roles_[static_cast<int>(SpecialRole::kEos)] = tok.specials_[0].id;
  }
  return tok;
}

inline BpeTokenizer BpeTokenizer::from_hf_json(const std::string& path) {
  const char* op = "BpeTokenizer::from_hf_json";
  using bpe_detail::file_error;
  using bpe_detail::quote_token;
  using Json = nlohmann::json;
  const std::string text = io::read_file(op, "file", path);
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::exception& e) {
    file_error(op, path, "invalid JSON: {}", e.what());
  }
  // Reads an optional field of the expected type.
  const auto field = [&](const Json& object, const char* name, const char* where, auto fallback) {
    using T = decltype(fallback);
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) return fallback;
    const bool ok = std::is_same<T, bool>::value          ? it->is_boolean()
                    : std::is_same<T, std::string>::value ? it->is_string()
                    : std::is_same<T, double>::value      ? it->is_number()
                                                          : it->is_number_integer();
    if (!ok)
      file_error(op, path, "{}.{} is a {}, expected a {}", where, name, it->type_name(),
                 std::is_same<T, bool>::value          ? "boolean"
                 : std::is_same<T, std::string>::value ? "string"
                                                       : "number");
    return it->template get<T>();
  };
  try {
    if (!root.is_object())
      file_error(op, path, "expected a JSON object, got a {}", root.type_name());
    const auto model_it = root.find("model");
    if (model_it == root.end() || !model_it->is_object())
      file_error(op, path, "no \"model\" object; not a tokenizer.json");
    const Json& model = *model_it;
    const std::string type = field(model, "type", "model", std::string("BPE"));
    if (type != "BPE") file_error(op, path, "model type is '{}'; only BPE is supported", type);
    if (field(model, "dropout", "model", 0.0) > 0)
      file_error(op, path, "BPE dropout is not supported (encodings would be random)");
    for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (!field(model, name, "model", std::string()).empty())
        file_error(op, path, "model.{} is set; byte-level BPE does not use one", name);

    const auto normalizer = root.find("normalizer");
    if (normalizer != root.end() && !normalizer->is_null())
      file_error(op, path, "normalizer {} is not supported (only none)",
                 normalizer->is_object() ? normalizer->value("type", std::string("?"))
                                         : normalizer->dump());
    // ByteLevel (GPT-2's split inside), or Llama 3 / Qwen2's Sequence of a
    // Split on their own regex and a ByteLevel that does not split again.
    auto pre = root.find("pre_tokenizer");
    PretokenPattern pattern = PretokenPattern::kGpt2;
    const auto unsupported = [&] {
      file_error(op, path,
                 "pre_tokenizer {} is not supported (ByteLevel, or Llama 3 / Qwen2's Split + "
                 "ByteLevel sequence)",
                 pre == root.end() ? "missing" : pre->dump().substr(0, 120));
    };
    if (pre == root.end() || !pre->is_object()) unsupported();
    if (field(*pre, "type", "pre_tokenizer", std::string()) == "Sequence") {
      const auto parts = pre->find("pretokenizers");
      if (parts == pre->end() || !parts->is_array() || parts->size() != 2) unsupported();
      const Json& split = (*parts)[0];
      const Json& byte_level = (*parts)[1];
      const bool split_ok = split.is_object() && split.value("type", "") == "Split" &&
                            split.value("behavior", "") == "Isolated" &&
                            !split.value("invert", false) && split.contains("pattern") &&
                            split["pattern"].is_object() && split["pattern"].contains("Regex") &&
                            split["pattern"]["Regex"].is_string();
      if (!split_ok || !byte_level.is_object() || byte_level.value("type", "") != "ByteLevel" ||
          byte_level.value("use_regex", true))
        unsupported();
      const std::string regex = split["pattern"]["Regex"].get<std::string>();
      if (regex == pretoken_regex(PretokenPattern::kLlama3))
        pattern = PretokenPattern::kLlama3;
      else if (regex == pretoken_regex(PretokenPattern::kQwen2))
        pattern = PretokenPattern::kQwen2;
      else
        file_error(op, path,
                   "pre_tokenizer Split regex {} is not one this library implements "
                   "(GPT-2, Llama 3, Qwen2)",
                   quote_token(regex));
      pre = parts->begin() + 1;
    } else if (field(*pre, "type", "pre_tokenizer", std::string()) != "ByteLevel") {
      unsupported();
    }

    const auto vocab_it = model.find("vocab");
    if (vocab_it == model.end() || !vocab_it->is_object())
      file_error(op, path, "model.vocab is missing or not an object");
    std::vector<std::pair<std::string, std::int64_t>> tokens;
    tokens.reserve(vocab_it->size());
    for (const auto& [spelling, id] : vocab_it->items()) {
      if (!id.is_number_integer())
        file_error(op, path, "model.vocab maps {} to a {}, not an integer id",
                   quote_token(spelling), id.type_name());
      tokens.emplace_back(spelling, id.is_number_unsigned()
                                        ? static_cast<std::int64_t>(std::min<std::uint64_t>(
                                              id.get<std::uint64_t>(), 1ull << 62))
                                        : id.get<std::int64_t>());
    }
    // Merges: "left right" strings (older files) or [left, right] arrays.
    const auto merges_it = model.find("merges");
    if (merges_it == model.end() || !merges_it->is_array())
      file_error(op, path, "model.merges is missing or not an array");
    std::vector<std::pair<std::string, std::string>> merges;
    std::vector<std::string> where;
    merges.reserve(merges_it->size());
    for (std::size_t i = 0; i < merges_it->size(); ++i) {
      const Json& m = (*merges_it)[i];
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          file_error(op, path, "model.merges[{}] is {}, expected \"left right\"", i,
                     quote_token(s));
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        file_error(op, path, "model.merges[{}] is {}, expected \"left right\" or [left, right]", i,
                   m.dump().substr(0, 80));
      }
      where.push_back(fmt::format("model.merges[{}]", i));
    }
    std::unordered_map<std::string, std::int32_t> by_spelling;
    BpeTokenizer tok = from_vocabulary(op, path, path, tokens, merges, where, by_spelling);
    tok.add_prefix_space_ = field(*pre, "add_prefix_space", "pre_tokenizer", false);
    tok.use_regex_ =
        pattern != PretokenPattern::kGpt2 || field(*pre, "use_regex", "pre_tokenizer", true);
    tok.pattern_ = pattern;
    tok.ignore_merges_ = field(model, "ignore_merges", "model", false);

    std::vector<AddedToken> added;
    std::vector<std::pair<std::string, std::vector<std::string>>> roles_in_file;  // content, roles
    if (const auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
      if (!it->is_array())
        file_error(op, path, "added_tokens is a {}, expected an array", it->type_name());
      for (std::size_t i = 0; i < it->size(); ++i) {
        const Json& a = (*it)[i];
        const std::string where_added = fmt::format("added_tokens[{}]", i);
        if (!a.is_object() || !a.contains("id") || !a.contains("content"))
          file_error(op, path, "{} needs an \"id\" and a \"content\"", where_added);
        AddedToken t;
        t.content = field(a, "content", where_added.c_str(), std::string());
        const std::int64_t id = field(a, "id", where_added.c_str(), std::int64_t{-1});
        if (id < 0 || id > std::numeric_limits<std::int32_t>::max())
          file_error(op, path, "{} has id {}", where_added, id);
        t.id = static_cast<std::int32_t>(id);
        t.special = field(a, "special", where_added.c_str(), false);
        t.lstrip = field(a, "lstrip", where_added.c_str(), false);
        t.rstrip = field(a, "rstrip", where_added.c_str(), false);
        t.single_word = field(a, "single_word", where_added.c_str(), false);
        t.normalized = field(a, "normalized", where_added.c_str(), !t.special);
        if (const auto roles = a.find("nla_roles"); roles != a.end()) {
          if (!roles->is_array() || !std::all_of(roles->begin(), roles->end(),
                                                 [](const Json& r) { return r.is_string(); }))
            file_error(op, path, "{}.nla_roles is not an array of strings", where_added);
          roles_in_file.emplace_back(t.content, roles->get<std::vector<std::string>>());
        }
        added.push_back(std::move(t));
      }
    }
    tok.finish_loading(op, path, std::move(added), by_spelling);

    // Roles: from our "nla_roles" field of added tokens; without any, a lone
    // "<|endoftext|>" (GPT-2) is BOS and EOS.
    bool any_role = false;
    for (std::size_t i = 0; i < roles_in_file.size(); ++i) {
      for (const std::string& role : roles_in_file[i].second) {
        const int r = role == "bos" ? 0 : role == "eos" ? 1 : role == "pad" ? 2 : -1;
        if (r < 0)
          file_error(op, path, "added token {} has unknown role '{}' (expected bos, eos or pad)",
                     quote_token(roles_in_file[i].first), role);
        const auto found =
            std::find_if(tok.specials_.begin(), tok.specials_.end(),
                         [&](const AddedToken& t) { return t.content == roles_in_file[i].first; });
        tok.roles_[r] = found->id;
        any_role = true;
      }
    }
    if (!any_role && tok.specials_.size() == 1 && tok.specials_[0].content == "<|endoftext|>") {
      tok.roles_[static_cast<int>(SpecialRole::kBos)] = tok.specials_[0].id;
      tok.roles_[static_cast<int>(SpecialRole::kEos)] = tok.specials_[0].id;
    }
    return tok;
  } catch (const Json::exception& e) {
    file_error(op, path, "unexpected content: {}", e.what());
  }
}

// The file is written as text, one vocabulary entry and one merge per line
// (as Hugging Face writes it); only strings go through the JSON library, for
// escaping. (A JSON object that keeps insertion order would cost O(n) per key.)
inline void BpeTokenizer::save_hf_json(const std::string& path) const {
  const char* op = "BpeTokenizer::save_hf_json";
  using Json = nlohmann::ordered_json;
  const auto dump = [&](const Json& value) {
    try {
      return value.dump(-1, ' ', false, Json::error_handler_t::strict);
    } catch (const Json::exception& e) {
      bpe_detail::file_error(op, path, "cannot serialise: {}", e.what());
    }
  };
  std::vector<std::string> spellings(bytes_.size());
  std::unordered_map<std::string, std::int32_t> seen;
  for (std::int32_t id = 0; id < vocab_size(); ++id) {
    if (kinds_[id] == Kind::kAbsent) continue;
    spellings[id] = dump(spelling(id));
    const auto [it, fresh] = seen.emplace(spellings[id], id);
    if (!fresh)
      bpe_detail::file_error(op, path, "tokens {} and {} are both spelled {}", it->second, id,
                             spellings[id]);
  }

  std::string text = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  text += "  \"added_tokens\": [";
  const char* role_names[3] = {"bos", "eos", "pad"};
  for (std::size_t i = 0; i < specials_.size(); ++i) {
    const AddedToken& t = specials_[i];
    Json entry = {{"id", t.id},          {"content", t.content}, {"single_word", t.single_word},
                  {"lstrip", t.lstrip},  {"rstrip", t.rstrip},   {"normalized", t.normalized},
                  {"special", t.special}};
    Json roles = Json::array();
    for (int r = 0; r < 3; ++r)
      if (roles_[r] == t.id) roles.push_back(role_names[r]);
    if (!roles.empty()) entry["nla_roles"] = std::move(roles);
    text += (i ? ",\n    " : "\n    ") + dump(entry);
  }
  text += specials_.empty() ? "],\n" : "\n  ],\n";
  const std::string byte_level = dump({{"type", "ByteLevel"},
                                       {"add_prefix_space", add_prefix_space_},
                                       {"trim_offsets", true},
                                       {"use_regex", use_regex_}});
  text += "  \"normalizer\": null,\n";
  if (pattern_ == PretokenPattern::kGpt2) {
    text += "  \"pre_tokenizer\": " + byte_level + ",\n";
  } else {
    const Json split = {{"type", "Split"},
                        {"pattern", {{"Regex", pretoken_regex(pattern_)}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
    const Json no_split = {{"type", "ByteLevel"},
                           {"add_prefix_space", add_prefix_space_},
                           {"trim_offsets", true},
                           {"use_regex", false}};
    text += "  \"pre_tokenizer\": " +
            dump({{"type", "Sequence"}, {"pretokenizers", {split, no_split}}}) + ",\n";
  }
  text += "  \"post_processor\": " + byte_level + ",\n";
  text += "  \"decoder\": " + byte_level + ",\n";
  text +=
      "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n";
  text += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n";
  text += "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n";
  text += fmt::format("    \"ignore_merges\": {},\n", ignore_merges_);
  text += "    \"vocab\": {";
  bool first = true;
  for (std::int32_t id = 0; id < vocab_size(); ++id) {
    if (kinds_[id] == Kind::kAbsent) continue;
    text += fmt::format("{}\n      {}: {}", first ? "" : ",", spellings[id], id);
    first = false;
  }
  text += first ? "},\n" : "\n    },\n";
  text += "    \"merges\": [";
  for (std::size_t i = 0; i < merges_.size(); ++i)
    text += fmt::format("{}\n      [{}, {}]", i ? "," : "", spellings[merges_[i].first],
                        spellings[merges_[i].second]);
  text += merges_.empty() ? "]\n  }\n}\n" : "\n    ]\n  }\n}\n";
  io::write_text_atomically(op, "file", path, text);
}

}  // namespace nla
