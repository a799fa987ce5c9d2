#pragma once
// Hugging Face config.json <-> TransformerConfig for the three architectures
// TransformerLM computes exactly:
//
//   GPT2LMHeadModel   Gpt2 flavour (LayerNorm, learned positions, tanh GELU)
//   LlamaForCausalLM  Llama flavour (RMSNorm, RoPE theta, SwiGLU, GQA); q/k/v/o
//                     and MLP biases only together (attention_bias = mlp_bias)
//   Qwen2ForCausalLM  Llama flavour with biases on q/k/v only
//
// Every key of config.json is either read, or known not to change the
// forward pass (ids of special tokens, dropout rates, which a forward pass in
// eval mode and this library's training do not apply, bookkeeping), or the
// file is refused: a key that changes the computation in a way TransformerLM
// does not implement (rope_scaling, sliding windows, another activation) is
// an error naming the key and its value, and so is a key this reader does not
// know, since it may.

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/nn/config.hpp"

namespace nla::hf {

enum class Architecture { Gpt2, Llama, Qwen2 };

inline const char* architecture_class(Architecture a) {
  switch (a) {
    case Architecture::Gpt2:
      return "GPT2LMHeadModel";
    case Architecture::Llama:
      return "LlamaForCausalLM";
    case Architecture::Qwen2:
      return "Qwen2ForCausalLM";
  }
  return "?";
}
inline const char* model_type(Architecture a) {
  return a == Architecture::Gpt2 ? "gpt2" : a == Architecture::Llama ? "llama" : "qwen2";
}

// The Hugging Face architecture a TransformerConfig saves as.
inline Architecture architecture_of(const TransformerConfig& c) {
  if (c.flavour == Flavour::Gpt2) return Architecture::Gpt2;
  return c.attention_bias && !c.projection_bias ? Architecture::Qwen2 : Architecture::Llama;
}

struct HfConfig {
  Architecture architecture = Architecture::Gpt2;
  TransformerConfig model;
};

namespace config_detail {

// Keys of transformers' PretrainedConfig and of the three configs that do not
// change a forward pass or a training step here.
inline const std::set<std::string>& keys_without_effect() {
  static const std::set<std::string> keys = {
      "_name_or_path", "architectures", "model_type", "torch_dtype", "dtype",
      "transformers_version", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
      "decoder_start_token_id", "use_cache", "initializer_range", "return_dict",
      "output_hidden_states", "output_attentions", "torchscript", "id2label", "label2id",
      "task_specific_params", "problem_type", "tokenizer_class", "prefix", "finetuning_task",
      "is_encoder_decoder", "is_decoder", "tie_encoder_decoder", "chunk_size_feed_forward",
      "pruned_heads", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
      "temperature", "top_k", "top_p", "repetition_penalty", "length_penalty",
      "no_repeat_ngram_size", "num_return_sequences", "bad_words_ids", "forced_bos_token_id",
      "forced_eos_token_id", "remove_invalid_values", "output_scores", "return_dict_in_generate",
      "diversity_penalty", "num_beam_groups", "typical_p", "encoder_no_repeat_ngram_size",
      "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
      "cross_attention_hidden_size", "add_cross_attention", "use_bfloat16", "tf_legacy_loss",
      "_attn_implementation_autoset",
      // dropout (not applied: eval-mode forward, dropout-free training)
      "attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_first_dropout", "attention_dropout",
      // GPT-2's sequence-summary head belongs to GPT2DoubleHeadsModel, not the LM
      "summary_activation", "summary_proj_to_labels", "summary_type", "summary_use_proj",
      // numerics only: upcasting, tensor-parallel slicing of the same product
      "reorder_and_upcast_attn", "pretraining_tp", "n_ctx",
      // Qwen2's sliding window, inert while use_sliding_window is false
      "sliding_window", "max_window_layers", "layer_types"};
  return keys;
}

class Reader {
 public:
  Reader(const nlohmann::json& json, std::string path) : json_(json), path_(std::move(path)) {}

  template <class V>
  V get(const std::string& key) {
    used_.insert(key);
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) fail("needs key \"{}\"", key);
    return as<V>(key, *it);
  }
  template <class V>
  V get(const std::string& key, const V& fallback) {
    used_.insert(key);
    const auto it = json_.find(key);
    return it == json_.end() || it->is_null() ? fallback : as<V>(key, *it);
  }
  bool has(const std::string& key) const {
    const auto it = json_.find(key);
    return it != json_.end() && !it->is_null();
  }
  // The key, when present and not null, must equal `expected`.
  template <class V>
  void require(const std::string& key, const V& expected, const char* why) {
    used_.insert(key);
    if (has(key) && as<V>(key, json_.at(key)) != expected)
      fail("\"{}\": {} is not supported ({})", key, json_.at(key).dump(), why);
  }
  // The key must be absent or null.
  void reject(const std::string& key, const char* why) {
    used_.insert(key);
    if (has(key)) fail("\"{}\": {} is not supported ({})", key, json_.at(key).dump(), why);
  }
  // Every key is read or known to have no effect.
  void check_all_used() const {
    for (const auto& [key, value] : json_.items())
      if (!used_.count(key) && !keys_without_effect().count(key))
        fail(
            "key \"{}\" ({}) is not understood by this reader and may change the computation; "
            "refusing rather than ignoring it",
            key, value.dump());
  }
  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    throw Error("hf::read_config", fmt::format("config '{}': ", path_) +
                                       fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  template <class V>
  V as(const std::string& key, const nlohmann::json& value) const {
    try {
      const V v = value.get<V>();
      if constexpr (std::is_integral<V>::value && !std::is_same<V, bool>::value)
        if (!value.is_number_integer()) fail("\"{}\" is {}, not an integer", key, value.dump());
      return v;
    } catch (const nlohmann::json::exception&) {
      fail("\"{}\" has the wrong type: {}", key, value.dump());
    }
  }

  const nlohmann::json& json_;
  std::string path_;
  std::set<std::string> used_;
};

}  // namespace config_detail

// Parses a config.json document (`path` only names it in errors).
// max_context > 0 caps the context length (the RoPE table and learned
// positions beyond it are not needed); 0 keeps the model's own.
inline HfConfig parse_config(const nlohmann::json& json, const std::string& path,
                             index_t max_context = 0) {
  config_detail::Reader r(json, path);
  if (!json.is_object()) r.fail("is not a JSON object");
  const std::string type = r.get<std::string>("model_type", "");
  std::string arch_class;
  if (r.has("architectures")) {
    const auto archs = r.get<std::vector<std::string>>("architectures");
    if (archs.size() != 1) r.fail("\"architectures\" lists {} classes, expected one", archs.size());
    arch_class = archs[0];
  }
  HfConfig out;
  TransformerConfig& c = out.model;
  if (type == "gpt2" || arch_class == "GPT2LMHeadModel") {
    out.architecture = Architecture::Gpt2;
    c.flavour = Flavour::Gpt2;
    c.vocab_size = r.get<index_t>("vocab_size");
    c.context_length = r.get<index_t>("n_positions");
    c.d_model = r.get<index_t>("n_embd");
    c.n_layers = r.get<index_t>("n_layer");
    c.n_heads = r.get<index_t>("n_head");
    c.n_kv_heads = c.n_heads;
    c.d_ff = r.get<index_t>("n_inner", 0);
    c.norm_eps = r.get<double>("layer_norm_epsilon", 1e-5);
    c.tied_embeddings = r.get<bool>("tie_word_embeddings", true);
    c.attention_bias = c.projection_bias = true;
    const std::string act = r.get<std::string>("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
      r.fail(
          "\"activation_function\": \"{}\" is not supported (TransformerLM's GPT-2 MLP uses "
          "the tanh GELU, gelu_new)",
          act);
    r.require("scale_attn_weights", true, "attention scores are always scaled by 1/sqrt(head_dim)");
    r.require("scale_attn_by_inverse_layer_idx", false, "no per-layer score scaling");
    r.require("add_cross_attention", false, "decoder-only model");
  } else if (type == "llama" || type == "qwen2" || arch_class == "LlamaForCausalLM" ||
             arch_class == "Qwen2ForCausalLM") {
    const bool qwen = type == "qwen2" || arch_class == "Qwen2ForCausalLM";
    out.architecture = qwen ? Architecture::Qwen2 : Architecture::Llama;
    c.flavour = Flavour::Llama;
    c.vocab_size = r.get<index_t>("vocab_size");
    c.context_length = r.get<index_t>("max_position_embeddings");
    c.d_model = r.get<index_t>("hidden_size");
    c.n_layers = r.get<index_t>("num_hidden_layers");
    c.n_heads = r.get<index_t>("num_attention_heads");
    c.n_kv_heads = r.get<index_t>("num_key_value_heads", c.n_heads);
    c.d_ff = r.get<index_t>("intermediate_size");
    c.norm_eps = r.get<double>("rms_norm_eps", 1e-6);
    c.rope_theta = r.get<double>("rope_theta", 10000.0);
    c.tied_embeddings = r.get<bool>("tie_word_embeddings", false);
    const std::string act = r.get<std::string>("hidden_act", "silu");
    if (act != "silu") r.fail("\"hidden_act\": \"{}\" is not supported (SwiGLU uses silu)", act);
    r.reject("rope_scaling", "plain RoPE only");
    const index_t head_dim = r.get<index_t>("head_dim", 0);
    if (head_dim != 0 && head_dim * c.n_heads != c.d_model)
      r.fail("\"head_dim\": {} differs from hidden_size / num_attention_heads = {} / {}", head_dim,
             c.d_model, c.n_heads);
    if (qwen) {
      r.require("use_sliding_window", false, "sliding-window attention is not implemented");
      c.attention_bias = true;
      c.projection_bias = false;
    } else {
      const bool attention_bias = r.get<bool>("attention_bias", false);
      const bool mlp_bias = r.get<bool>("mlp_bias", false);
      if (attention_bias != mlp_bias)
        r.fail(
            "\"attention_bias\": {} with \"mlp_bias\": {} is not supported (biases on "
            "attention and MLP go together in TransformerLM's Llama flavour)",
            attention_bias, mlp_bias);
      c.attention_bias = c.projection_bias = attention_bias;
    }
  } else {
    r.fail(
        "architecture {} (model_type \"{}\") is not supported; supported: GPT2LMHeadModel, "
        "LlamaForCausalLM, Qwen2ForCausalLM",
        arch_class.empty() ? "unknown" : "\"" + arch_class + "\"", type);
  }
  r.check_all_used();
  if (max_context > 0) c.context_length = std::min(c.context_length, max_context);
  try {
    c = c.resolved();
  } catch (const Error& e) {
    r.fail("{}", e.what());
  }
  return out;
}

// The config.json of a TransformerConfig, in its Hugging Face architecture.
inline nlohmann::ordered_json make_config(const TransformerConfig& c, const char* torch_dtype) {
  const Architecture arch = architecture_of(c);
  nlohmann::ordered_json j = {{"architectures", {architecture_class(arch)}},
                              {"model_type", model_type(arch)}};
  if (arch == Architecture::Gpt2) {
    j["vocab_size"] = c.vocab_size;
    j["n_positions"] = c.context_length;
    j["n_ctx"] = c.context_length;
    j["n_embd"] = c.d_model;
    j["n_layer"] = c.n_layers;
    j["n_head"] = c.n_heads;
    j["n_inner"] = c.ff_dim();
    j["activation_function"] = "gelu_new";
    j["layer_norm_epsilon"] = c.norm_eps;
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["scale_attn_weights"] = true;
    j["scale_attn_by_inverse_layer_idx"] = false;
    j["attn_pdrop"] = j["embd_pdrop"] = j["resid_pdrop"] = 0.0;
  } else {
    j["vocab_size"] = c.vocab_size;
    j["max_position_embeddings"] = c.context_length;
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.ff_dim();
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.kv_heads();
    j["hidden_act"] = "silu";
    j["rms_norm_eps"] = c.norm_eps;
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = nullptr;
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["attention_dropout"] = 0.0;
    if (arch == Architecture::Qwen2) {
      j["use_sliding_window"] = false;
    } else {
      NLA_CHECK(c.attention_bias == c.projection_bias, "hf::make_config",
                "a Llama-flavour model with attention_bias {} and projection_bias {} has no "
                "Hugging Face architecture (Llama: both or neither; Qwen2: q/k/v only)",
                c.attention_bias, c.projection_bias);
      j["attention_bias"] = c.attention_bias;
      j["mlp_bias"] = c.projection_bias;
    }
  }
  j["torch_dtype"] = torch_dtype;
  return j;
}

}  // namespace nla::hf
