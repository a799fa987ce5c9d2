#pragma once
// Packs variable-length token sequences into a language-model batch:
//   tokens  [batch, t]   sequence i left-aligned, padded with pad_id
//   targets [batch * t]  targets[i, j] = tokens[i, j + 1], ignore_index past
//                        the end of sequence i (padding is never a target)
// t is the longest sequence's length minus one (the last token is only a
// target), so a batch of short documents costs only what it holds.

#include <cstdint>
#include <vector>

#include "nla/core/host.hpp"

namespace nla {

template <class B>
struct LmBatch {
  Tensor<std::int32_t, B> tokens, targets;
  index_t target_count = 0;  // positions that are not ignore_index
};

template <class B>
void pack_lm_batch(B& backend, const std::vector<const std::vector<std::int32_t>*>& sequences,
                   std::int32_t pad_id, LmBatch<B>& batch, std::int32_t ignore_index = -100) {
  const char* op = "pack_lm_batch";
  const index_t n = index_t(sequences.size());
  NLA_CHECK(n > 0, op, "no sequences");
  index_t longest = 0;
  for (index_t i = 0; i < n; ++i) {
    NLA_CHECK(sequences[i]->size() >= 2, op, "sequence {} has {} tokens; needs at least 2", i,
              sequences[i]->size());
    longest = std::max(longest, index_t(sequences[i]->size()));
  }
  const index_t t = longest - 1;
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(n * t), pad_id),
      targets(static_cast<std::size_t>(n * t), ignore_index);
  batch.target_count = 0;
  for (index_t i = 0; i < n; ++i) {
    const auto& s = *sequences[i];
    for (index_t j = 0; j + 1 < index_t(s.size()); ++j) {
      tokens[i * t + j] = s[j];
      targets[i * t + j] = s[j + 1];
      ++batch.target_count;
    }
  }
  batch.tokens.resize(Shape{n, t});
  batch.targets.resize(Shape{n * t});
  from_host(backend, batch.tokens.view(), tokens.data());
  from_host(backend, batch.targets.view(), targets.data());
}

}  // namespace nla
