// Tests for include/nla/activations/import.hpp, on activations NumPy wrote
// (tests/fixtures/make_hf_fixtures.py: a forward hook's record of block 0).
#include <cmath>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <xtensor/xnpy.hpp>

#include "nla/activations/import.hpp"
#include "nla/backend/cpu.hpp"
#include "nla/hf/model.hpp"
#include "support/temp_dir.hpp"

using namespace nla;
using Catch::Contains;
using nla::testing::TempDir;

TEST_CASE("activations from a PyTorch hook import as a dataset equal to our extraction",
          "[activations][import]") {
  for (const char* name : {"gpt2", "llama", "qwen2"}) {
    INFO(name);
    const std::string fixture = std::string(NLA_TEST_DATA_DIR) + "/hf/" + name;
    TempDir dir;
    ActivationImport o;
    o.layer = 0;
    o.n_layers = 2;
    o.model = name;
    const ActivationMeta meta =
        import_activations(fixture + "/hidden_states_1.npy", dir.file("acts"), o);
    CHECK(meta.count == 24);
    CHECK(meta.d_model == 32);
    CHECK(meta.stream == 1);
    CHECK(meta.injection_scale >= 1.05 * meta.mean_norm);

    const ActivationDataset data = ActivationDataset::load(dir.file("acts"));
    auto model = hf::load_model<Cpu, float>(fixture);
    data.check_compatible(model.config(), 0);
    CHECK(data.rows[3]["position"] == 3);

    // The hook's record is our stream 1 for the same tokens.
    const auto ref = nlohmann::json::parse(std::ifstream(fixture + "/reference.json"));
    Tensor<std::int32_t, Cpu> tokens(Shape{2, 12});
    for (index_t i = 0; i < 24; ++i) tokens.data()[i] = ref["tokens"][i / 12][i % 12].get<int>();
    LmActivations<float, Cpu> acts;
    const auto stream = model.forward_stream(tokens.view(), 1, acts);
    double diff = 0, scale = 0;
    for (index_t i = 0; i < stream.size(); ++i) {
      diff = std::max(diff, double(std::abs(stream.data()[i] - data.vectors.data()[i])));
      scale = std::max(scale, double(std::abs(data.vectors.data()[i])));
    }
    CHECK(diff / scale < 1e-5);
  }
}

TEST_CASE("importing activations checks layer, rows and dtype", "[activations][import]") {
  const std::string npy = std::string(NLA_TEST_DATA_DIR) + "/hf/gpt2/hidden_states_1.npy";
  TempDir dir;
  ActivationImport o;
  o.layer = 2;
  o.n_layers = 2;
  CHECK_THROWS_WITH(import_activations(npy, dir.file("a"), o),
                    Contains("layer 2 is outside [0, n_layers = 2)"));
  o.layer = 1;
  std::ofstream(dir.file("rows.jsonl")) << "{\"doc\": 1}\n{\"doc\": 2}\n";
  o.rows_jsonl = dir.file("rows.jsonl");
  CHECK_THROWS_WITH(import_activations(npy, dir.file("a"), o),
                    Contains("has 2 rows for the 24 vectors"));
  std::ofstream(dir.file("rows.jsonl")) << "{\"doc\": 1\n";
  CHECK_THROWS_WITH(import_activations(npy, dir.file("a"), o), Contains("line 1"));
  o.rows_jsonl.clear();
  xt::xtensor<double, 2> wide = xt::zeros<double>({3, 4});
  xt::dump_npy(dir.file("f8.npy"), wide);
  CHECK_THROWS_WITH(import_activations(dir.file("f8.npy"), dir.file("a"), o), Contains("f8.npy"));
}
