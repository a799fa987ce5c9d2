#pragma once
// Hugging Face model directories (config.json + safetensors) in and out of
// TransformerLM, on any backend and scalar type.
//
// TransformerLM's parameter names are transformers' own, so a tensor maps by
// name, with three differences handled here:
//   - GPT-2's attention and MLP matrices are Conv1D modules that store the
//     weight as [in, out], the transpose of a Linear's [out, in];
//   - GPT-2 checkpoints saved from GPT2Model omit the "transformer." prefix;
//   - checkpoints may hold buffers that are not parameters (GPT-2's causal
//     mask "attn.bias" / "attn.masked_bias", Llama's "rotary_emb.inv_freq"),
//     and a tied head may be saved as its own "lm_head.weight".
// Any other tensor of the checkpoint that the model does not use, and any
// parameter the checkpoint lacks or holds with another shape, is an error
// naming the tensor. Saving writes the names, layouts and config.json that
// transformers' from_pretrained reads.

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/hf/config.hpp"
#include "nla/io/safetensors_shards.hpp"
#include "nla/nn/transformer_lm.hpp"

namespace nla::hf {

inline constexpr const char* kConfigFile = "config.json";

// Reads `directory`/config.json (see parse_config for max_context).
inline HfConfig read_config(const std::string& directory, index_t max_context = 0) {
  const std::string path = (std::filesystem::path(directory) / kConfigFile).string();
  const std::string text = io::read_file("hf::read_config", "model config", path);
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    io::file_error("hf::read_config", "model config", path, "not valid JSON: {}", e.what());
  }
  return parse_config(json, path, max_context);
}

namespace model_detail {

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// GPT-2 Conv1D weights: stored [in, out].
inline bool stored_transposed(const TransformerConfig& c, const std::string& name) {
  return c.flavour == Flavour::Gpt2 &&
         (ends_with(name, ".attn.c_attn.weight") || ends_with(name, ".attn.c_proj.weight") ||
          ends_with(name, ".mlp.c_fc.weight") || ends_with(name, ".mlp.c_proj.weight"));
}

inline bool is_buffer(const std::string& name) {
  return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") ||
         ends_with(name, "rotary_emb.inv_freq");
}

template <class T>
const char* torch_dtype_name() {
  if constexpr (std::is_same<T, float>::value)
    return "float32";
  else if constexpr (std::is_same<T, double>::value)
    return "float64";
  else if constexpr (std::is_same<T, bf16>::value)
    return "bfloat16";
  else
    static_assert(sizeof(T) == 0, "no torch dtype for this scalar type");
}

// [rows, cols] -> [cols, rows]
template <class T>
std::vector<T> transpose(const T* x, index_t rows, index_t cols) {
  std::vector<T> out(static_cast<std::size_t>(rows * cols));
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) out[c * rows + r] = x[r * cols + c];
  return out;
}

}  // namespace model_detail

// Loads the weights of `directory` into `model`, whose config must be the
// directory's (read_config).
template <class B, class T>
void load_weights(const std::string& directory, TransformerLM<B, T>& model) {
  using namespace model_detail;
  const char* op = "hf::load_weights";
  const io::SafetensorsShards shards(directory);
  const TransformerConfig& c = model.config();
  auto& params = model.parameters();
  std::set<std::string> used;
  for (int id = 0; id < params.count(); ++id) {
    const ParameterInfo& info = params.info(id);
    std::string stored = info.name;
    if (!shards.contains(stored) && stored.rfind("transformer.", 0) == 0 &&
        shards.contains(stored.substr(12)))
      stored = stored.substr(12);
    NLA_CHECK(shards.contains(stored), op, "checkpoint '{}' has no tensor '{}' ({} {})", directory,
              info.name, architecture_class(architecture_of(c)), info.shape);
    used.insert(stored);
    const io::SafetensorsTensor& t = shards.tensor(stored);
    const bool transposed = stored_transposed(c, info.name);
    // Learned positions may be cut to a smaller context (read_config's max_context).
    const bool positions = info.name == "transformer.wpe.weight";
    std::vector<std::uint64_t> expected;
    for (index_t i = 0; i < info.shape.rank(); ++i)
      expected.push_back(std::uint64_t(info.shape[transposed ? info.shape.rank() - 1 - i : i]));
    const bool shape_ok =
        positions ? t.shape.size() == 2 && t.shape[1] == expected[1] && t.shape[0] >= expected[0]
                  : t.shape == expected;
    NLA_CHECK(shape_ok, op, "checkpoint '{}': tensor '{}' has shape {}, but this config needs [{}]",
              directory, stored, t.shape_text(), fmt::join(expected, ", "));
    std::vector<T> host(static_cast<std::size_t>(t.elements()));
    shards.read(stored, host.data(), host.size());
    if (transposed) host = transpose(host.data(), index_t(t.shape[0]), index_t(t.shape[1]));
    from_host(model.backend(), params.value(id), host.data());
  }
  for (const std::string& name : shards.names()) {
    if (used.count(name) || is_buffer(name)) continue;
    if (name == "lm_head.weight" && c.tied_embeddings) {
      // A tied head saved anyway must be the embedding itself.
      const auto embedding = to_host(
          model.backend(),
          params.value(params.find(c.flavour == Flavour::Gpt2 ? "transformer.wte.weight"
                                                              : "model.embed_tokens.weight")));
      const std::vector<T> head = shards.file_of(name).template read<T>(name);
      NLA_CHECK(head.size() == std::size_t(embedding.size()) &&
                    std::equal(head.begin(), head.end(), embedding.data()),
                op,
                "checkpoint '{}': config ties the head to the embedding, but lm_head.weight "
                "differs from it",
                directory);
      continue;
    }
    NLA_FAIL(op, "checkpoint '{}': tensor '{}' is not a parameter of this {} model", directory,
             name, architecture_class(architecture_of(c)));
  }
}

// A model read from a Hugging Face directory.
template <class B, class T>
TransformerLM<B, T> load_model(const std::string& directory, index_t max_context = 0) {
  TransformerLM<B, T> model(read_config(directory, max_context).model);
  load_weights(directory, model);
  return model;
}

// Writes `model` as a Hugging Face directory: safetensors (sharded above
// max_shard_bytes) and config.json, each file atomically, config last.
template <class B, class T>
void save_model(const std::string& directory, TransformerLM<B, T>& model,
                std::uint64_t max_shard_bytes = std::uint64_t{5} << 30) {
  using namespace model_detail;
  const TransformerConfig& c = model.config();
  const nlohmann::ordered_json config = make_config(c, torch_dtype_name<T>());
  io::SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  const auto& params = model.parameters();
  for (int id = 0; id < params.count(); ++id) {
    const ParameterInfo& info = params.info(id);
    const auto values = to_host(model.backend(), params.value(id));
    std::vector<std::uint64_t> shape;
    for (index_t i = 0; i < info.shape.rank(); ++i) shape.push_back(std::uint64_t(info.shape[i]));
    if (stored_transposed(c, info.name)) {
      writer.add(info.name, {shape[1], shape[0]},
                 transpose(values.data(), info.shape[0], info.shape[1]).data());
    } else {
      writer.add(info.name, shape, values.data());
    }
  }
  io::write_safetensors_directory(directory, writer, max_shard_bytes);
  const std::string text = config.dump(2) + "\n";
  io::write_text_atomically("hf::save_model", "model config",
                            (std::filesystem::path(directory) / kConfigFile).string(), text);
}

}  // namespace nla::hf
