#pragma once
// Activation extraction: run a trained target TransformerLM over documents
// and store the residual stream at the output of block K (stream K + 1) at
// chosen positions as an activation dataset (activations/activation_dataset.hpp).
//
// A document is BOS + text tokens (+ EOS). It is packed like a training
// sequence (train/lm_batch.hpp): the model reads tokens [0, size - 1) and the
// last token is only a target, so the positions that can be read are
// 1 .. size - 2 (never BOS). Padding sits after every real token, and
// attention is causal, so it changes no activation that is read.
//
// Positions per document:
//   all             every readable position
//   sampled k, m    k distinct readable positions >= m, drawn with Philox
//                   from (seed, document index): the same document gets the
//                   same positions whatever the batch or the list order; a
//                   document with fewer than k candidates gives all of them
//   marked          the document's marked positions (synthetic world: the
//                   tokens right before a word that repeats an attribute)
//
// Rows of the JSONL (other code reads these keys):
//   {"doc", "position", "token", "token_text", "prefix"}
// and for synthetic-world documents "attributes" (the record), and, at a
// marked position, "target", "needed", "next_word", "current_token" and
// "description" (the ground truth). "prefix" is the decoded text of tokens
// 1..position: the text up to and including the token, without BOS.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nla/activations/activation_dataset.hpp"
#include "nla/core/error.hpp"
#include "nla/core/host.hpp"
#include "nla/core/random.hpp"
#include "nla/nn/transformer_lm.hpp"
#include "nla/text/bpe_tokenizer.hpp"
#include "nla/text/corpus.hpp"
#include "nla/text/split.hpp"
#include "nla/text/synthetic_world.hpp"
#include "nla/text/world_tokens.hpp"
#include "nla/train/lm_batch.hpp"

namespace nla {

// The block whose output is read by default: about two thirds of the depth,
// K = (2 L + 2) / 3 - 1 (L = 4 -> K = 1, stream 2; L = 12 -> K = 7).
inline index_t default_extraction_layer(index_t n_layers) {
  NLA_CHECK(n_layers >= 1, "default_extraction_layer", "n_layers {} must be positive", n_layers);
  return (2 * n_layers + 2) / 3 - 1;
}

// Which positions of a document to read (see the top of this file).
struct PositionPolicy {
  enum class Kind { All, Sampled, Marked };
  Kind kind = Kind::Marked;
  index_t k = 0;          // Sampled: positions per document
  index_t min_index = 1;  // Sampled: smallest token index drawn (BOS is 0)

  static PositionPolicy all() { return {Kind::All, 0, 1}; }
  static PositionPolicy sampled(index_t k, index_t min_index) {
    NLA_CHECK(k >= 1 && min_index >= 1, "PositionPolicy::sampled",
              "k {} and min_index {} must both be at least 1 (index 0 is BOS)", k, min_index);
    return {Kind::Sampled, k, min_index};
  }
  static PositionPolicy marked() { return {Kind::Marked, 0, 1}; }

  // For the sidecar: "all", "marked", "sampled k=4 min=8".
  std::string name() const {
    switch (kind) {
      case Kind::All:
        return "all";
      case Kind::Sampled:
        return fmt::format("sampled k={} min={}", k, min_index);
      case Kind::Marked:
        break;
    }
    return "marked";
  }
  std::optional<index_t> per_document() const {
    return kind == Kind::Sampled ? std::optional<index_t>(k) : std::nullopt;
  }
};

// A token the document asks to be read, with what is known about it (for the
// world: target, needed, next_word, current_token, description).
struct MarkedToken {
  index_t position = 0;  // token index (BOS is 0)
  nlohmann::json info = nlohmann::json::object();
};

struct ExtractionDocument {
  std::string id;                    // "train/17", "fortunes#42": the JSONL "doc"
  std::uint64_t index = 0;           // key of the sampled-position draws
  std::vector<std::int32_t> tokens;  // BOS, text, EOS; the last token is never read
  std::string text;
  std::vector<MarkedToken> marked;  // increasing positions
  nlohmann::json attributes;        // null when unknown (real text)
};

// Philox stream base of the position draws ("POSI"), far from the small
// stream ids Rng hands out; document i uses stream kPositionStream + i.
inline constexpr std::uint64_t kPositionStream = 0x504F'5349'0000'0000ull;

// The token positions of `doc` that `policy` reads, increasing.
inline std::vector<index_t> select_positions(const PositionPolicy& policy,
                                             const ExtractionDocument& doc, std::uint64_t seed) {
  const char* op = "select_positions";
  const index_t end = index_t(doc.tokens.size()) - 1;  // positions [1, end) are read
  std::vector<index_t> out;
  switch (policy.kind) {
    case PositionPolicy::Kind::All:
      for (index_t p = 1; p < end; ++p) out.push_back(p);
      break;
    case PositionPolicy::Kind::Marked:
      for (const MarkedToken& m : doc.marked) {
        NLA_CHECK(m.position >= 1 && m.position < end, op,
                  "document '{}': marked position {} is outside the readable [1, {})", doc.id,
                  m.position, end);
        out.push_back(m.position);
      }
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      break;
    case PositionPolicy::Kind::Sampled: {
      // Partial Fisher-Yates over the candidates [first, end): step i swaps
      // candidate i with a uniform one of [i, m), drawn as
      // floor(bits * (m - i) / 2^32) from word i of the document's stream.
      const index_t first = std::max<index_t>(policy.min_index, 1);
      for (index_t p = first; p < end; ++p) out.push_back(p);
      const index_t m = index_t(out.size()), take = std::min(policy.k, m);
      const std::uint64_t stream = kPositionStream + doc.index;
      for (index_t i = 0; i < take; ++i) {
        const std::uint64_t bits = random_bits(seed, stream, std::uint64_t(i));
        const index_t j = i + index_t((bits * std::uint64_t(m - i)) >> 32);
        std::swap(out[static_cast<std::size_t>(i)], out[static_cast<std::size_t>(j)]);
      }
      out.resize(static_cast<std::size_t>(take));
      std::sort(out.begin(), out.end());
      break;
    }
  }
  return out;
}

// The attribute record as the JSONL stores it.
inline nlohmann::json world_attributes_json(const WorldAttributes& a) {
  return {{"name", a.name_word()},
          {"species", a.species_word()},
          {"place", a.place_word()},
          {"object", a.object_word()},
          {"mood", a.mood_word()},
          {"rhyme_family", kRhymeFamilyNames[static_cast<std::size_t>(a.rhyme_family)]},
          {"rhyme_first", a.rhyme_first_word()},
          {"rhyme_second", a.rhyme_second_word()},
          {"eval_marker", a.eval_marker},
          {"cipher", a.cipher}};
}

// The ground truth of a marked position as the JSONL stores it.
inline nlohmann::json world_position_json(const MarkedPosition& m) {
  std::vector<std::string> needed;
  for (Attribute a : m.needed) needed.emplace_back(attribute_name(a));
  return {{"target", attribute_name(m.target)},
          {"needed", needed},
          {"next_word", m.next_word},
          {"current_token", m.current_token},
          {"description", m.description}};
}

// One synthetic-world document, tokenized, with its marked positions.
inline ExtractionDocument world_extraction_document(const BpeTokenizer& tokenizer,
                                                    const WorldDocument& doc, index_t context) {
  const TokenizedDocument td = tokenize_world_document(tokenizer, doc);
  ExtractionDocument out;
  out.id = fmt::format("{}/{}", split_name(doc.split), doc.index);
  out.index = doc.index;
  out.tokens = td.tokens;
  out.text = doc.text;
  NLA_CHECK(index_t(out.tokens.size()) <= context + 1, "world_extraction_document",
            "document {} has {} tokens, more than context {} + 1", out.id, out.tokens.size(),
            context);
  out.attributes = world_attributes_json(doc.attributes);
  for (std::size_t m = 0; m < doc.marked.size(); ++m)
    out.marked.push_back({td.marked[m], world_position_json(doc.marked[m])});
  return out;
}

// Documents 0 .. count-1 of a split of the world.
inline std::vector<ExtractionDocument> world_extraction_documents(const SyntheticWorld& world,
                                                                  const BpeTokenizer& tokenizer,
                                                                  Split split, index_t count,
                                                                  index_t context) {
  NLA_CHECK(count >= 0, "world_extraction_documents", "count {} is negative", count);
  std::vector<ExtractionDocument> docs;
  docs.reserve(static_cast<std::size_t>(count));
  for (index_t i = 0; i < count; ++i)
    docs.push_back(
        world_extraction_document(tokenizer, world.generate(split, std::uint64_t(i)), context));
  return docs;
}

// Real-text documents: BOS + the first `context` - 1 text tokens + EOS, so the
// model reads at most `context` tokens (as train_target packs text).
inline std::vector<ExtractionDocument> text_extraction_documents(
    const std::vector<CorpusDocument>& documents, const BpeTokenizer& tokenizer, index_t context) {
  NLA_CHECK(context >= 2, "text_extraction_documents", "context {} must be at least 2", context);
  std::vector<ExtractionDocument> docs;
  docs.reserve(documents.size());
  for (const CorpusDocument& d : documents) {
    ExtractionDocument out;
    out.id = fmt::format("{}#{}", d.source, d.index);
    out.index = d.index;
    out.tokens.push_back(tokenizer.bos_id());
    tokenizer.encode_append(d.text, out.tokens);
    out.tokens.resize(std::min(out.tokens.size(), std::size_t(context)));
    out.tokens.push_back(tokenizer.eos_id());
    out.text = d.text;
    out.attributes = nullptr;
    docs.push_back(std::move(out));
  }
  return docs;
}

struct ExtractionOptions {
  PositionPolicy positions = PositionPolicy::marked();
  std::uint64_t seed = 0;        // of the sampled positions; recorded in the sidecar
  std::string corpus;            // recorded: "synthetic_world seed=1", a file name
  std::string split = "train";   // recorded: the documents' split
  index_t batch_documents = 32;  // documents per forward pass
  double injection_scale = 0;    // 0: round_injection_scale(mean norm)
  // Called after each batch with the documents read and vectors written so
  // far (a progress line, say).
  std::function<void(index_t documents, index_t vectors)> on_batch;
};

namespace extract_detail {

// The JSONL row of position p of a document.
inline nlohmann::json row(const BpeTokenizer& tok, const ExtractionDocument& doc, index_t p) {
  const std::int32_t token = doc.tokens[static_cast<std::size_t>(p)];
  nlohmann::json r = {{"doc", doc.id},
                      {"position", p},
                      {"token", token},
                      {"token_text", tok.decode(&token, 1)},
                      {"prefix", tok.decode(doc.tokens.data() + 1, static_cast<std::size_t>(p))}};
  if (!doc.attributes.is_null()) r["attributes"] = doc.attributes;
  for (const MarkedToken& m : doc.marked)
    if (m.position == p)
      for (const auto& [key, value] : m.info.items()) r[key] = value;
  return r;
}

}  // namespace extract_detail

// Extraction over documents produced one at a time: next(doc) fills `doc`
// and returns false when there are no more. Memory holds one batch of
// documents and running sums, whatever N. Writes prefix.{npy,jsonl,json};
// returns the sidecar. Throws, with nothing committed, on an empty result,
// a bad document or a non-finite activation.
template <class B, class T, class NextDocument>
ActivationMeta extract_activations_from(TransformerLM<B, T>& model, const BpeTokenizer& tok,
                                        index_t layer, NextDocument&& next,
                                        const ExtractionOptions& options,
                                        const std::string& prefix) {
  const char* op = "extract_activations";
  const TransformerConfig& config = model.config();
  NLA_CHECK(layer >= 0 && layer < config.n_layers, op, "layer {} is outside [0, {})", layer,
            config.n_layers);
  NLA_CHECK(options.batch_documents >= 1, op, "batch_documents {} must be positive",
            options.batch_documents);
  const index_t d = config.d_model;
  const std::int32_t pad = tok.role_id(SpecialRole::kPad).value_or(tok.eos_id());

  ActivationMeta meta;
  meta.model_hash = parameter_hash(model);
  meta.layer = layer;
  meta.stream = layer + 1;
  meta.n_layers = config.n_layers;
  meta.corpus = options.corpus;
  meta.positions = options.positions.name();
  meta.positions_per_document = options.positions.per_document();
  meta.seed = options.seed;
  meta.split = options.split;
  meta.injection_scale = options.injection_scale;

  ActivationWriter writer(prefix, d);
  LmActivations<T, B> acts;
  LmBatch<B> batch;
  std::vector<ExtractionDocument> chunk;
  std::vector<float> row_values(static_cast<std::size_t>(d));
  index_t documents = 0;
  for (bool more = true; more;) {
    chunk.clear();
    while (index_t(chunk.size()) < options.batch_documents) {
      ExtractionDocument doc;
      more = next(doc);
      if (!more) break;
      NLA_CHECK(doc.tokens.size() >= 2 && index_t(doc.tokens.size()) <= config.context_length + 1,
                op, "document '{}' has {} tokens; needs 2 .. context {} + 1", doc.id,
                doc.tokens.size(), config.context_length);
      chunk.push_back(std::move(doc));
    }
    if (chunk.empty()) break;
    documents += index_t(chunk.size());
    std::vector<const std::vector<std::int32_t>*> sequences;
    for (const ExtractionDocument& doc : chunk) sequences.push_back(&doc.tokens);
    pack_lm_batch(model.backend(), sequences, pad, batch);
    // x: [documents, t, d], stream K + 1
    const auto x = model.forward_stream(batch.tokens.view(), layer + 1, acts);
    const index_t t = x.shape()[1];
    const auto host = to_host(model.backend(), ConstView<T, B>(x));
    for (std::size_t i = 0; i < chunk.size(); ++i)
      for (index_t p : select_positions(options.positions, chunk[i], options.seed)) {
        const T* v = host.data() + (index_t(i) * t + p) * d;
        for (index_t j = 0; j < d; ++j) row_values[static_cast<std::size_t>(j)] = float(v[j]);
        writer.add(row_values.data(), extract_detail::row(tok, chunk[i], p));
      }
    if (options.on_batch) options.on_batch(documents, writer.count());
  }
  meta.documents = documents;
  NLA_CHECK(writer.count() > 0, op, "dataset '{}': {} documents gave no positions under '{}'",
            prefix, documents, meta.positions);
  return writer.finish(std::move(meta));
}

// Extraction over a list of documents (see extract_activations_from).
template <class B, class T>
ActivationMeta extract_activations(TransformerLM<B, T>& model, const BpeTokenizer& tok,
                                   index_t layer, const std::vector<ExtractionDocument>& docs,
                                   const ExtractionOptions& options, const std::string& prefix) {
  std::size_t next_index = 0;
  auto next = [&](ExtractionDocument& doc) {
    if (next_index == docs.size()) return false;
    doc = docs[next_index++];
    return true;
  };
  return extract_activations_from(model, tok, layer, next, options, prefix);
}

}  // namespace nla
