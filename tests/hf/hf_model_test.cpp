// Tests for include/nla/hf: Hugging Face model directories in and out, checked
// against the fixtures of tests/fixtures/make_hf_fixtures.py (a plain-PyTorch
// reference written independently of this library).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <xtensor/xnpy.hpp>

#include "nla/backend/cpu.hpp"
#include "nla/hf/model.hpp"
#include "nla/rl/generate.hpp"
#include "nla/text/bpe_tokenizer.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using nla::Cpu;
using nla::index_t;
using nla::testing::TempDir;
using json = nlohmann::json;

namespace {

const char* const kFixtures[] = {"gpt2", "llama", "qwen2"};

std::string fixture(const std::string& name) {
  return std::string(NLA_TEST_DATA_DIR) + "/hf/" + name;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// The reference's token rows as a [batch, t] tensor.
nla::Tensor<std::int32_t, Cpu> token_rows(const json& rows) {
  const index_t batch = index_t(rows.size()), t = index_t(rows[0].size());
  nla::Tensor<std::int32_t, Cpu> x(nla::Shape{batch, t});
  for (index_t b = 0; b < batch; ++b)
    for (index_t i = 0; i < t; ++i) x.data()[b * t + i] = rows[b][i].get<std::int32_t>();
  return x;
}

// max |ours - reference| / max |reference| over the logits of the reference rows.
template <class T>
double logits_relative_error(nla::TransformerLM<Cpu, T>& model, const std::string& dir) {
  const json ref = read_json(dir + "/reference.json");
  const auto expected = xt::load_npy<float>(dir + "/logits.npy");
  const auto tokens = token_rows(ref["tokens"]);
  typename nla::TransformerLM<Cpu, T>::Activations acts;
  const auto logits = model.forward(tokens.view(), acts);
  REQUIRE(logits.size() == index_t(expected.size()));
  double diff = 0, scale = 0;
  for (index_t i = 0; i < logits.size(); ++i) {
    diff = std::max(diff, std::abs(double(logits.data()[i]) - double(expected.data()[i])));
    scale = std::max(scale, std::abs(double(expected.data()[i])));
  }
  return diff / scale;
}

// Copies a fixture into a temporary directory, where a test may break it.
void copy_fixture(const std::string& name, const TempDir& dir) {
  for (const auto& e : fs::directory_iterator(fixture(name)))
    fs::copy_file(e.path(), dir.path() / e.path().filename(), fs::copy_options::overwrite_existing);
}

std::string load_error(const std::string& dir) {
  try {
    nla::hf::load_model<Cpu, float>(dir);
  } catch (const nla::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("hf: each architecture's logits match the independent PyTorch reference", "[hf]") {
  for (const char* name : kFixtures) {
    INFO(name);
    const std::string dir = fixture(name);
    auto model = nla::hf::load_model<Cpu, float>(dir);
    CHECK(logits_relative_error(model, dir) < 1e-4);
    // In double the only differences left are the reference's float32 rounding.
    auto exact = nla::hf::load_model<Cpu, double>(dir);
    CHECK(logits_relative_error(exact, dir) < 1e-6);
  }
  const auto llama = nla::hf::read_config(fixture("llama")).model;
  CHECK(llama.rope_theta == 5000.0);
  CHECK(llama.kv_heads() == 2);
  CHECK_FALSE(llama.tied_embeddings);
  const auto qwen = nla::hf::read_config(fixture("qwen2")).model;
  CHECK(qwen.kv_heads() == 1);
  CHECK((qwen.attention_bias && !qwen.projection_bias && qwen.tied_embeddings));
  CHECK(qwen.norm_eps == 1e-6);
}

TEST_CASE("hf: greedy continuations with the KV cache equal the reference's", "[hf]") {
  for (const char* name : kFixtures) {
    INFO(name);
    const json ref = read_json(fixture(name) + "/reference.json");
    auto model = nla::hf::load_model<Cpu, float>(fixture(name));
    nla::Generator<Cpu, float> generator(model);
    nla::SamplingOptions greedy;
    greedy.temperature = 0;
    greedy.max_new_tokens = index_t(ref["greedy_continuation"].size());
    const auto out =
        generator.generate({ref["greedy_prompt"].get<std::vector<std::int32_t>>()}, greedy);
    CHECK(out[0].tokens == ref["greedy_continuation"].get<std::vector<std::int32_t>>());
  }
}

TEST_CASE("hf: each fixture's tokenizer.json encodes like the reference BPE", "[hf]") {
  for (const char* name : kFixtures) {
    INFO(name);
    const json ref = read_json(fixture(name) + "/reference.json");
    const auto tokenizer = nla::BpeTokenizer::from_hf_json(fixture(name) + "/tokenizer.json");
    for (const auto& e : ref["encodings"]) {
      INFO(e["text"].get<std::string>());
      CHECK(tokenizer.encode(e["text"].get<std::string>(), nla::SpecialTokenMode::kMatch) ==
            e["ids"].get<std::vector<std::int32_t>>());
    }
  }
}

TEST_CASE("hf: a saved model is the fixture again, in transformers' layout", "[hf]") {
  for (const char* name : kFixtures) {
    INFO(name);
    TempDir out;
    auto model = nla::hf::load_model<Cpu, float>(fixture(name));
    nla::hf::save_model(out.path().string(), model);
    // The same tensors under the same names and shapes (Conv1D transposed
    // back), values equal to the stored ones widened to float.
    const nla::io::SafetensorsShards original(fixture(name)), saved(out.path().string());
    CHECK(saved.names() == original.names());
    for (const std::string& tensor : original.names()) {
      INFO(tensor);
      REQUIRE(saved.tensor(tensor).shape == original.tensor(tensor).shape);
      CHECK(saved.tensor(tensor).dtype == nla::io::SafetensorsDtype::F32);
      CHECK(saved.file_of(tensor).read<float>(tensor) ==
            original.file_of(tensor).read<float>(tensor));
    }
    CHECK(saved.file_of(original.names()[0]).metadata().at("format") == "pt");
    const auto config = nla::hf::read_config(out.path().string());
    CHECK(config.model == model.config());
    CHECK(config.architecture == nla::hf::read_config(fixture(name)).architecture);
    auto again = nla::hf::load_model<Cpu, float>(out.path().string());
    CHECK(logits_relative_error(again, fixture(name)) < 1e-4);
  }
  // GPT-2's c_attn is stored [d, 3d] (Conv1D), the transpose of the Linear.
  const nla::io::SafetensorsFile gpt2(fixture("gpt2") + "/model.safetensors");
  CHECK(gpt2.tensor("transformer.h.0.attn.c_attn.weight").shape ==
        std::vector<std::uint64_t>{32, 96});
}

TEST_CASE("hf: sharded saving and a smaller context", "[hf]") {
  TempDir out;
  auto model = nla::hf::load_model<Cpu, float>(fixture("gpt2"));
  nla::hf::save_model(out.path().string(), model, 40000);
  CHECK(fs::exists(out.file("model.safetensors.index.json")));
  CHECK(nla::io::SafetensorsShards(out.path().string()).file_count() > 1);
  auto back = nla::hf::load_model<Cpu, float>(out.path().string());
  CHECK(logits_relative_error(back, fixture("gpt2")) < 1e-4);
  // Learned positions (and RoPE tables) are cut to max_context.
  for (const char* name : kFixtures) {
    auto short_model = nla::hf::load_model<Cpu, float>(fixture(name), 16);
    CHECK(short_model.config().context_length == 16);
    CHECK(logits_relative_error(short_model, fixture(name)) < 1e-4);
  }
}

TEST_CASE("hf: configs that change the computation are refused by name", "[hf]") {
  auto config_error = [](json config) {
    try {
      nla::hf::parse_config(config, "config.json");
    } catch (const nla::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const json gpt2 = read_json(fixture("gpt2") + "/config.json");
  const json llama = read_json(fixture("llama") + "/config.json");
  const json qwen = read_json(fixture("qwen2") + "/config.json");
  CHECK(config_error(gpt2) == "no error");
  CHECK(config_error(llama) == "no error");
  CHECK(config_error(qwen) == "no error");

  json c = gpt2;
  c["model_type"] = "bert";
  c["architectures"] = {"BertForMaskedLM"};
  CHECK_THAT(config_error(c),
             Contains("\"BertForMaskedLM\" (model_type \"bert\") is not supported"));
  c = gpt2;
  c["activation_function"] = "relu";
  CHECK_THAT(config_error(c), Contains("\"activation_function\": \"relu\" is not supported"));
  c = gpt2;
  c["scale_attn_by_inverse_layer_idx"] = true;
  CHECK_THAT(config_error(c), Contains("\"scale_attn_by_inverse_layer_idx\": true"));
  c = gpt2;
  c["n_embd"] = "32";
  CHECK_THAT(config_error(c), Contains("\"n_embd\" has the wrong type"));
  c = gpt2;
  c.erase("n_layer");
  CHECK_THAT(config_error(c), Contains("needs key \"n_layer\""));
  c = gpt2;
  c["n_head"] = 5;
  CHECK_THAT(config_error(c), Contains("not divisible by n_heads 5"));
  c = llama;
  c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  CHECK_THAT(config_error(c), Contains("\"rope_scaling\"") && Contains("plain RoPE only"));
  c = llama;
  c["attention_bias"] = true;
  CHECK_THAT(config_error(c), Contains("\"attention_bias\": true with \"mlp_bias\": false"));
  c = llama;
  c["hidden_act"] = "gelu";
  CHECK_THAT(config_error(c), Contains("\"hidden_act\": \"gelu\""));
  c = llama;
  c["head_dim"] = 16;
  CHECK_THAT(config_error(c), Contains("\"head_dim\": 16 differs"));
  c = llama;
  c["some_future_option"] = 3;
  CHECK_THAT(config_error(c), Contains("key \"some_future_option\" (3) is not understood"));
  c = qwen;
  c["use_sliding_window"] = true;
  CHECK_THAT(config_error(c), Contains("\"use_sliding_window\": true is not supported"));

  TempDir dir;
  CHECK_THAT(load_error(dir.path().string()), Contains("config.json") && Contains("cannot open"));
  std::ofstream(dir.file("config.json")) << "{\"model_type\": ";
  CHECK_THAT(load_error(dir.path().string()), Contains("not valid JSON"));
}

TEST_CASE("hf: checkpoints that do not fit the config are refused by tensor name", "[hf]") {
  using nla::io::SafetensorsWriter;
  // Rewrites the gpt2 fixture's weights through `edit` into a fresh directory.
  auto broken = [](const TempDir& dir, auto edit) {
    copy_fixture("gpt2", dir);
    const nla::io::SafetensorsFile original(fixture("gpt2") + "/model.safetensors");
    SafetensorsWriter w;
    for (const auto& t : original.tensors()) {
      std::vector<float> v = original.read<float>(t.name);
      edit(w, t.name, t.shape, v);
    }
    w.write(dir.file("model.safetensors"));
    return load_error(dir.path().string());
  };
  using Shape = std::vector<std::uint64_t>;
  {
    TempDir dir;
    CHECK_THAT(broken(dir,
                      [](SafetensorsWriter& w, const std::string& n, const Shape& s,
                         const std::vector<float>& v) {
                        if (n != "transformer.h.1.mlp.c_fc.bias") w.add(n, s, v.data());
                      }),
               Contains("has no tensor 'transformer.h.1.mlp.c_fc.bias'"));
  }
  {
    TempDir dir;
    CHECK_THAT(
        broken(
            dir,
            [](SafetensorsWriter& w, const std::string& n, const Shape& s,
               const std::vector<float>& v) {
              // The Linear layout instead of Conv1D's.
              w.add(n, n == "transformer.h.0.attn.c_attn.weight" ? Shape{s[1], s[0]} : s, v.data());
            }),
        Contains("tensor 'transformer.h.0.attn.c_attn.weight' has shape [96, 32], but "
                 "this config needs [32, 96]"));
  }
  {
    TempDir dir;
    CHECK_THAT(broken(dir,
                      [](SafetensorsWriter& w, const std::string& n, const Shape& s,
                         const std::vector<float>& v) {
                        w.add(n, s, v.data());
                        if (n == "transformer.ln_f.bias") w.add("score.weight", s, v.data());
                      }),
               Contains("tensor 'score.weight' is not a parameter of this GPT2LMHeadModel"));
  }
  {
    // A tied head saved anyway is accepted when it is the embedding, and the
    // buffers of GPT2Model checkpoints are skipped; names without the
    // "transformer." prefix (GPT2Model) are found too.
    TempDir dir;
    CHECK(broken(dir, [](SafetensorsWriter& w, const std::string& n, const Shape& s,
                         const std::vector<float>& v) {
            w.add(n.substr(12), s, v.data());
            if (n == "transformer.wte.weight") w.add("lm_head.weight", s, v.data());
            if (n == "transformer.h.0.ln_1.weight") {
              const std::vector<float> mask(16 * 16, 1.0f);
              w.add("h.0.attn.bias", {1, 1, 16, 16}, mask.data());
            }
          }) == "no error");
  }
  {
    TempDir dir;
    CHECK_THAT(broken(dir,
                      [](SafetensorsWriter& w, const std::string& n, const Shape& s,
                         std::vector<float> v) {
                        w.add(n, s, v.data());
                        v[0] += 1;
                        if (n == "transformer.wte.weight") w.add("lm_head.weight", s, v.data());
                      }),
               Contains("lm_head.weight differs from it"));
  }
  {
    TempDir dir;
    CHECK_THAT(broken(dir,
                      [](SafetensorsWriter& w, const std::string& n, const Shape& s,
                         std::vector<float> v) {
                        if (n == "transformer.h.0.ln_2.bias") v[3] = std::nanf("");
                        w.add(n, s, v.data());
                      }),
               Contains("tensor 'transformer.h.0.ln_2.bias'") && Contains("flat index 3"));
  }
}
