// Tests for include/nla/bottleneck/nla_release.hpp.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "nla/backend/cpu.hpp"
#include "nla/bottleneck/nla_release.hpp"
#include "support/temp_dir.hpp"

using namespace nla;
using Catch::Contains;
using nla::testing::TempDir;

namespace {

// Moves every parameter off its initial value, so a test sees trained weights.
template <class Set>
void perturb(Cpu& backend, Set& params, std::uint64_t seed) {
  auto v = params.values();
  (void)backend;
  for (index_t i = 0; i < v.size(); ++i)
    v.data()[i] += float(0.05 * random_normal(seed, 1, std::uint64_t(i)));
}

std::vector<float> activations(index_t n, index_t d, std::uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(n * d));
  for (index_t i = 0; i < n * d; ++i) v[i] = float(random_normal(seed, 2, std::uint64_t(i)));
  return v;
}

struct Pair {
  BpeTokenizer tokenizer =
      BpeTokenizer::from_hf_json(std::string(NLA_TEST_DATA_DIR) + "/hf/gpt2/tokenizer.json");
  TransformerLM<Cpu, float> target{TransformerConfig::llama(300, 48, 32, 3, 4, 2), 3};
  VerbalizerPrompt av_prompt{tokenizer.encode("Explain:"), tokenizer.encode(" ->")};
  ReconstructorPrompt ar_prompt{tokenizer.encode("Text:"), tokenizer.encode(" =")};
  Verbalizer<Cpu, float> av{target, av_prompt, 5.0};
  Reconstructor<Cpu, float> ar{target, 2};
  Pair() {
    perturb(av.model().backend(), av.model().parameters(), 7);
    perturb(ar.model().backend(), ar.model().parameters(), 8);
    perturb(ar.model().backend(), ar.head_parameters(), 9);
    av.set_centre(activations(1, 32, 4));
  }
  NlaReleaseMeta meta() {
    return make_release_meta(av, ar, av_prompt, ar_prompt, parameter_hash(target), &tokenizer);
  }
};

}  // namespace

TEST_CASE("an NLA release round-trips: same explanations, same reconstructions",
          "[bottleneck][release]") {
  Pair p;
  TempDir dir;
  const NlaReleaseMeta meta = p.meta();
  save_nla_release(dir.path().string(), p.av, p.ar, meta, &p.tokenizer);
  for (const char* f : {"nla_meta.json", "verbalizer/config.json", "verbalizer/model.safetensors",
                        "verbalizer/tokenizer.json", "reconstructor/config.json",
                        "reconstructor/model.safetensors", "reconstructor/value_head.safetensors"})
    CHECK(std::filesystem::exists(dir.path() / f));

  const auto json = nlohmann::json::parse(std::ifstream(dir.file("nla_meta.json")));
  CHECK(json["format"] == "nla.release.v1");
  CHECK(json["d_model"] == 32);
  CHECK(json["layer"] == 1);
  CHECK(json["hidden_states_index"] == 2);
  CHECK(json["injection_scale"] == 5.0);
  CHECK(json["mse_scale"] == 1.0);
  CHECK(json["injection_token_id"] == 300);
  CHECK(json["injection_token_neighbours"]["left"] == p.av_prompt.prefix.back());
  CHECK(json["injection_token_neighbours"]["right"] == p.av_prompt.suffix.front());
  CHECK(json["verbalizer_prompt"]["template"] == "Explain:{activation} ->");
  CHECK(json["reconstructor_prompt"]["template"] == "Text:{explanation} =");
  CHECK(hf::read_config(dir.file("verbalizer")).model.vocab_size == 301);
  CHECK(hf::read_config(dir.file("reconstructor")).model.n_layers == 2);

  auto loaded = load_nla_release<Cpu, float>(dir.path().string());
  CHECK(loaded.meta.target_model_hash == meta.target_model_hash);
  CHECK(loaded.verbalizer.centre() == p.av.centre());
  CHECK(loaded.verbalizer.prompt_tokens() == p.av.prompt_tokens());

  // The same activations give the same sampled explanations ...
  const auto v = activations(3, 32, 11);
  VerbalizerCache<float, Cpu> c1, c2;
  p.av.inject(v, c1);
  loaded.verbalizer.inject(v, c2);
  SamplingOptions sampling;
  sampling.max_new_tokens = 8;
  GenerateOptions options;
  options.seed = 5;
  const auto a = p.av.explain(c1, sampling, options);
  const auto b = loaded.verbalizer.explain(c2, sampling, options);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].tokens == b[i].tokens);

  // ... and the same text the same reconstruction.
  Tensor<std::int32_t, Cpu> tokens(Shape{2, 6});
  for (index_t i = 0; i < 12; ++i) tokens.data()[i] = std::int32_t(i * 23 % 297);
  ReconstructorCache<float, Cpu> r1, r2;
  const auto y1 = p.ar.forward(tokens.view(), {5, 3}, r1);
  const auto y2 = loaded.reconstructor.forward(tokens.view(), {5, 3}, r2);
  for (index_t i = 0; i < y1.size(); ++i) CHECK(y1.data()[i] == y2.data()[i]);
}

TEST_CASE("an NLA release refuses inconsistent parts and mismatched datasets",
          "[bottleneck][release]") {
  Pair p;
  TempDir dir;
  const NlaReleaseMeta meta = p.meta();
  save_nla_release(dir.path().string(), p.av, p.ar, meta);
  auto edit_meta = [&](auto edit) {
    auto json = nlohmann::json::parse(std::ifstream(dir.file("nla_meta.json")));
    edit(json);
    std::ofstream(dir.file("nla_meta.json")) << json.dump();
    try {
      load_nla_release<Cpu, float>(dir.path().string());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(edit_meta([](nlohmann::json& j) { j["layer"] = 2; }),
             Contains("the reconstructor has 2 blocks, layer 2 needs 3"));
  CHECK_THAT(edit_meta([](nlohmann::json& j) {
               j["layer"] = 1;
               j["injection_token_id"] = 5;
             }),
             Contains("injection token 5 must be the verbalizer's last id (300)"));
  CHECK_THAT(edit_meta([](nlohmann::json& j) {
               j["injection_token_id"] = 300;
               j["format"] = "other";
             }),
             Contains("format is \"other\""));
  CHECK_THAT(edit_meta([](nlohmann::json& j) {
               j["format"] = "nla.release.v1";
               j.erase("mse_scale");
             }),
             Contains("bad field"));
  CHECK_THAT(edit_meta([](nlohmann::json& j) {
               j["mse_scale"] = 1.0;
               j["centre"] = {1.0, 2.0};
             }),
             Contains("centre of 2 values"));
  CHECK(edit_meta([&](nlohmann::json& j) { j = meta.to_json(); }) == "no error");

  ActivationMeta data;
  data.d_model = 32;
  data.layer = 1;
  CHECK_NOTHROW(check_nla_matches_dataset(meta, data, "x"));
  data.layer = 2;
  CHECK_THROWS_WITH(check_nla_matches_dataset(meta, data, "acts.npy"),
                    Contains("acts.npy: the NLA explains d_model 32 at layer 1, the dataset holds "
                             "d_model 32 at layer 2"));
  data.layer = 1;
  data.d_model = 64;
  CHECK_THROWS(check_nla_matches_dataset(meta, data, "x"));
}
