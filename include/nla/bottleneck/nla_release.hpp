#pragma once
// A trained NLA as released: two Hugging Face model directories and the
// metadata needed to use them, so the verbalizer and reconstructor load in
// transformers as well as here.
//
//   dir/verbalizer/     config.json + safetensors; vocabulary = target's + 1,
//                       the last id being the injection (slot) token
//   dir/reconstructor/  config.json + safetensors of the target truncated to
//                       layer + 1 blocks, and value_head.safetensors holding
//                       "weight" [d, d]: prediction = W h, h the residual
//                       stream after the last block at the template's last
//                       token, before the final norm (in transformers: the
//                       output of model.layers[-1], not hidden_states[-1],
//                       which is normed)
//   dir/nla_meta.json   format "nla.release.v1" and the fields below
//   dir/*/tokenizer.json, when a tokenizer is given
//
// The activation of block `layer` (hidden_states[layer + 1]) is L2-normalised
// (after subtracting `centre` when present), multiplied by injection_scale
// and written over the input embedding of the injection token. mse_scale is
// the norm both vectors have when the reconstruction error is computed: the
// library's loss is the MSE of unit vectors, 2 (1 - cos), so it is 1.
// Files are written atomically, nla_meta.json last.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/activations/activation_dataset.hpp"
#include "nla/bottleneck/reconstructor.hpp"
#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer.hpp"
#include "nla/hf/model.hpp"
#include "nla/text/bpe_tokenizer.hpp"

namespace nla {

inline constexpr char kNlaReleaseFormat[] = "nla.release.v1";

struct NlaReleaseMeta {
  index_t d_model = 0;
  index_t layer = 0;  // block whose output is explained: hidden_states[layer + 1]
  double injection_scale = 0;
  double mse_scale = 1.0;
  std::int32_t injection_token_id = 0;
  std::int32_t injection_left_neighbour = 0;              // last prompt token before it
  std::optional<std::int32_t> injection_right_neighbour;  // first after it, if any
  VerbalizerPrompt verbalizer_prompt;
  ReconstructorPrompt reconstructor_prompt;
  std::string verbalizer_template, reconstructor_template;  // decoded text, when known
  std::vector<float> centre;                                // empty: no mean-centring
  std::string target_model_hash;

  nlohmann::ordered_json to_json() const {
    return {{"format", kNlaReleaseFormat},
            {"d_model", d_model},
            {"layer", layer},
            {"hidden_states_index", layer + 1},
            {"injection_scale", injection_scale},
            {"mse_scale", mse_scale},
            {"injection_token_id", injection_token_id},
            {"injection_token_neighbours",
             {{"left", injection_left_neighbour},
              {"right", injection_right_neighbour ? nlohmann::json(*injection_right_neighbour)
                                                  : nlohmann::json(nullptr)}}},
            {"verbalizer_prompt",
             {{"prefix_tokens", verbalizer_prompt.prefix},
              {"suffix_tokens", verbalizer_prompt.suffix},
              {"template", verbalizer_template}}},
            {"reconstructor_prompt",
             {{"prefix_tokens", reconstructor_prompt.prefix},
              {"suffix_tokens", reconstructor_prompt.suffix},
              {"template", reconstructor_template}}},
            {"centre", centre.empty() ? nlohmann::json(nullptr) : nlohmann::json(centre)},
            {"target_model_hash", target_model_hash}};
  }

  static NlaReleaseMeta from_json(const nlohmann::json& j, const std::string& path) {
    const char* op = "NlaReleaseMeta::from_json";
    NlaReleaseMeta m;
    try {
      if (j.at("format") != kNlaReleaseFormat)
        io::file_error(op, "NLA metadata", path, "format is {}, expected \"{}\"",
                       j.at("format").dump(), kNlaReleaseFormat);
      m.d_model = j.at("d_model").get<index_t>();
      m.layer = j.at("layer").get<index_t>();
      m.injection_scale = j.at("injection_scale").get<double>();
      m.mse_scale = j.at("mse_scale").get<double>();
      m.injection_token_id = j.at("injection_token_id").get<std::int32_t>();
      const auto& n = j.at("injection_token_neighbours");
      m.injection_left_neighbour = n.at("left").get<std::int32_t>();
      if (!n.at("right").is_null()) m.injection_right_neighbour = n.at("right").get<std::int32_t>();
      const auto& v = j.at("verbalizer_prompt");
      m.verbalizer_prompt.prefix = v.at("prefix_tokens").get<std::vector<std::int32_t>>();
      m.verbalizer_prompt.suffix = v.at("suffix_tokens").get<std::vector<std::int32_t>>();
      m.verbalizer_template = v.at("template").get<std::string>();
      const auto& r = j.at("reconstructor_prompt");
      m.reconstructor_prompt.prefix = r.at("prefix_tokens").get<std::vector<std::int32_t>>();
      m.reconstructor_prompt.suffix = r.at("suffix_tokens").get<std::vector<std::int32_t>>();
      m.reconstructor_template = r.at("template").get<std::string>();
      if (!j.at("centre").is_null()) m.centre = j.at("centre").get<std::vector<float>>();
      m.target_model_hash = j.at("target_model_hash").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      io::file_error(op, "NLA metadata", path, "bad field: {}", e.what());
    }
    if (m.d_model <= 0 || m.layer < 0 || !(m.injection_scale > 0) || !(m.mse_scale > 0) ||
        m.verbalizer_prompt.prefix.empty() ||
        m.injection_left_neighbour != m.verbalizer_prompt.prefix.back() ||
        (!m.centre.empty() && index_t(m.centre.size()) != m.d_model))
      io::file_error(op, "NLA metadata", path,
                     "inconsistent: d_model {}, layer {}, injection_scale {}, mse_scale {}, left "
                     "neighbour {} vs prompt, centre of {} values",
                     m.d_model, m.layer, m.injection_scale, m.mse_scale, m.injection_left_neighbour,
                     m.centre.size());
    return m;
  }
};

// Refuses a dataset whose activations are not the ones the NLA explains.
inline void check_nla_matches_dataset(const NlaReleaseMeta& nla, const ActivationMeta& data,
                                      const std::string& where) {
  NLA_CHECK(nla.d_model == data.d_model && nla.layer == data.layer, "check_nla_matches_dataset",
            "{}: the NLA explains d_model {} at layer {}, the dataset holds d_model {} at layer {}",
            where, nla.d_model, nla.layer, data.d_model, data.layer);
}

namespace release_detail {
inline constexpr const char* kMetaFile = "nla_meta.json";
inline constexpr const char* kHeadFile = "value_head.safetensors";

inline std::string decode_or_empty(const BpeTokenizer* tokenizer,
                                   const std::vector<std::int32_t>& ids) {
  return tokenizer ? tokenizer->decode(ids) : std::string();
}
}  // namespace release_detail

// The metadata of a verbalizer / reconstructor pair (templates decoded with
// `tokenizer` when given).
template <class B, class T>
NlaReleaseMeta make_release_meta(Verbalizer<B, T>& verbalizer, Reconstructor<B, T>& reconstructor,
                                 const VerbalizerPrompt& verbalizer_prompt,
                                 const ReconstructorPrompt& reconstructor_prompt,
                                 const std::string& target_model_hash,
                                 const BpeTokenizer* tokenizer = nullptr) {
  using release_detail::decode_or_empty;
  NlaReleaseMeta m;
  m.d_model = reconstructor.dim();
  m.layer = reconstructor.blocks() - 1;
  m.injection_scale = verbalizer.injection_scale();
  m.injection_token_id = verbalizer.slot_token();
  m.verbalizer_prompt = verbalizer_prompt;
  m.reconstructor_prompt = reconstructor_prompt;
  m.injection_left_neighbour = verbalizer_prompt.prefix.back();
  if (!verbalizer_prompt.suffix.empty())
    m.injection_right_neighbour = verbalizer_prompt.suffix.front();
  if (tokenizer) {
    m.verbalizer_template = decode_or_empty(tokenizer, verbalizer_prompt.prefix) + "{activation}" +
                            decode_or_empty(tokenizer, verbalizer_prompt.suffix);
    m.reconstructor_template = decode_or_empty(tokenizer, reconstructor_prompt.prefix) +
                               "{explanation}" +
                               decode_or_empty(tokenizer, reconstructor_prompt.suffix);
  }
  m.centre = verbalizer.centre();
  m.target_model_hash = target_model_hash;
  return m;
}

template <class B, class T>
void save_nla_release(const std::string& dir, Verbalizer<B, T>& verbalizer,
                      Reconstructor<B, T>& reconstructor, const NlaReleaseMeta& meta,
                      const BpeTokenizer* tokenizer = nullptr) {
  namespace fs = std::filesystem;
  NLA_CHECK(meta.injection_token_id == verbalizer.slot_token() &&
                meta.d_model == reconstructor.dim() && meta.layer + 1 == reconstructor.blocks(),
            "save_nla_release",
            "metadata (slot {}, d {}, layer {}) does not describe these models "
            "(slot {}, d {}, {} blocks)",
            meta.injection_token_id, meta.d_model, meta.layer, verbalizer.slot_token(),
            reconstructor.dim(), reconstructor.blocks());
  const fs::path root(dir);
  hf::save_model((root / "verbalizer").string(), verbalizer.model());
  hf::save_model((root / "reconstructor").string(), reconstructor.model());
  io::SafetensorsWriter head;
  head.set_metadata("format", "pt");
  const auto w = to_host(reconstructor.model().backend(), reconstructor.head_weight());
  head.add("weight", {std::uint64_t(meta.d_model), std::uint64_t(meta.d_model)}, w.data());
  head.write((root / "reconstructor" / release_detail::kHeadFile).string());
  if (tokenizer)
    for (const char* part : {"verbalizer", "reconstructor"})
      tokenizer->save_hf_json((root / part / "tokenizer.json").string());
  const std::string text = meta.to_json().dump(2) + "\n";
  io::write_text_atomically("save_nla_release", "NLA metadata",
                            (root / release_detail::kMetaFile).string(), text);
}

template <class B, class T>
struct NlaRelease {
  NlaReleaseMeta meta;
  Verbalizer<B, T> verbalizer;
  Reconstructor<B, T> reconstructor;
};

// Loads a release and checks that its parts agree with each other.
template <class B, class T>
NlaRelease<B, T> load_nla_release(const std::string& dir) {
  namespace fs = std::filesystem;
  const char* op = "load_nla_release";
  const fs::path root(dir);
  const std::string meta_path = (root / release_detail::kMetaFile).string();
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(io::read_file(op, "NLA metadata", meta_path));
  } catch (const nlohmann::json::exception& e) {
    io::file_error(op, "NLA metadata", meta_path, "not valid JSON: {}", e.what());
  }
  NlaReleaseMeta meta = NlaReleaseMeta::from_json(json, meta_path);
  auto av = hf::load_model<B, T>((root / "verbalizer").string());
  auto ar = hf::load_model<B, T>((root / "reconstructor").string());
  const TransformerConfig &vc = av.config(), &rc = ar.config();
  NLA_CHECK(vc.d_model == meta.d_model && rc.d_model == meta.d_model, op,
            "{}: d_model is {} in nla_meta.json, {} in the verbalizer, {} in the reconstructor",
            dir, meta.d_model, vc.d_model, rc.d_model);
  NLA_CHECK(rc.n_layers == meta.layer + 1, op,
            "{}: the reconstructor has {} blocks, layer {} needs {}", dir, rc.n_layers, meta.layer,
            meta.layer + 1);
  NLA_CHECK(meta.injection_token_id == vc.vocab_size - 1 && vc.vocab_size == rc.vocab_size + 1, op,
            "{}: injection token {} must be the verbalizer's last id ({}), one past the "
            "reconstructor's vocabulary ({})",
            dir, meta.injection_token_id, vc.vocab_size - 1, rc.vocab_size);
  const io::SafetensorsFile head((root / "reconstructor" / release_detail::kHeadFile).string());
  std::vector<T> head_weight(static_cast<std::size_t>(meta.d_model * meta.d_model));
  head.read("weight", head_weight.data(), head_weight.size());
  auto verbalizer = Verbalizer<B, T>::from_extended_model(std::move(av), meta.verbalizer_prompt,
                                                          meta.injection_scale);
  verbalizer.set_centre(meta.centre);
  return {std::move(meta), std::move(verbalizer),
          Reconstructor<B, T>::from_parts(std::move(ar), head_weight)};
}

}  // namespace nla
