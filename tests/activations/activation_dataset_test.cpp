// Tests for include/nla/activations/activation_dataset.hpp and extract.hpp.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <xtensor/xnpy.hpp>
#include <xtensor/xview.hpp>

#include "nla/activations/activation_dataset.hpp"
#include "nla/activations/extract.hpp"
#include "nla/nla.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace nla;
using Catch::Contains;
using nla::testing::TempDir;
using json = nlohmann::json;

namespace {

// A world, a tokenizer trained on it and a small random GPT-2 model whose
// context holds every document.
struct Fixture {
  SyntheticWorld world;
  BpeTokenizer tokenizer;
  index_t context = 0;
  TransformerConfig config;
  TransformerLM<Cpu, float> model;

  Fixture() : world(options()), tokenizer(train_tokenizer(world)), model(make_config(), 5) {}

  static WorldOptions options() {
    WorldOptions o;
    o.seed = 3;
    return o;
  }
  static BpeTokenizer train_tokenizer(const SyntheticWorld& w) {
    std::vector<std::string> corpus;
    for (std::uint64_t i = 0; i < 200; ++i) corpus.push_back(w.generate(Split::Train, i).text);
    BpeTrainOptions o;
    o.vocab_size = 400;
    return BpeTokenizer::train(corpus, o);
  }
  TransformerConfig make_config() {
    // The longest of a sample of documents, with room to spare.
    std::size_t longest = 0;
    for (Split s : {Split::Train, Split::Test})
      for (std::uint64_t i = 0; i < 100; ++i)
        longest = std::max(longest,
                           tokenize_world_document(tokenizer, world.generate(s, i)).tokens.size());
    context = index_t(longest) + 16;
    config = TransformerConfig::gpt2(tokenizer.vocab_size(), context, 16, 3, 2);
    return config;
  }

  std::vector<ExtractionDocument> documents(Split split, index_t count) const {
    return world_extraction_documents(world, tokenizer, split, count, context);
  }
  ActivationMeta extract(const std::vector<ExtractionDocument>& docs, ExtractionOptions options,
                         const std::string& prefix, index_t layer = -1) {
    if (layer < 0) layer = default_extraction_layer(config.n_layers);
    return extract_activations(model, tokenizer, layer, docs, options, prefix);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

// stream[layer + 1] of one document on its own (no other rows, no padding):
// [size - 1, d].
std::vector<float> direct_stream(Fixture& f, const ExtractionDocument& doc, index_t layer) {
  LmBatch<Cpu> batch;
  LmActivations<float, Cpu> acts;
  pack_lm_batch(f.model.backend(), {&doc.tokens}, f.tokenizer.pad_id(), batch);
  const auto x = f.model.forward_stream(batch.tokens.view(), layer + 1, acts);
  return std::vector<float>(x.data(), x.data() + x.size());
}

bool same(const xt::xtensor<float, 2>& a, const xt::xtensor<float, 2>& b) {
  return a.shape() == b.shape() && bool(a == b);
}

double max_abs_difference(const xt::xtensor<float, 2>& a, const xt::xtensor<float, 2>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}
void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::trunc);
  for (const auto& l : lines) out << l << '\n';
}

// Overwrites float (row, column) of a dataset's .npy in place.
void poke_npy(const std::string& path, index_t row, index_t column, index_t d, float value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(io::kNpyHeaderBytes + std::size_t(row * d + column) * 4));
  f.write(reinterpret_cast<const char*>(&value), 4);
}

}  // namespace

TEST_CASE("extraction equals a direct forward_stream pass at the same positions", "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  const auto docs = f.documents(Split::Train, 9);
  ExtractionOptions o;
  o.positions = PositionPolicy::all();
  o.batch_documents = 4;  // chunks of 4, 4, 1 documents of different lengths
  for (index_t layer : {index_t(0), default_extraction_layer(3), index_t(2)}) {
    DYNAMIC_SECTION("layer " << layer) {
      const std::string prefix = dir.file("all");
      f.extract(docs, o, prefix, layer);
      const ActivationDataset ds = ActivationDataset::load(prefix);
      const index_t d = f.config.d_model;
      std::size_t r = 0;
      for (const ExtractionDocument& doc : docs) {
        const std::vector<float> direct = direct_stream(f, doc, layer);
        // Every token the model reads except BOS, in order.
        for (index_t p = 1; p + 1 < index_t(doc.tokens.size()); ++p, ++r) {
          REQUIRE(r < ds.rows.size());
          const json& row = ds.rows[r];
          CHECK(row["doc"] == doc.id);
          CHECK(row["position"] == p);
          CHECK(row["token"] == doc.tokens[std::size_t(p)]);
          CHECK(row["token_text"] == f.tokenizer.decode(&doc.tokens[std::size_t(p)], 1));
          CHECK(row["prefix"] == f.tokenizer.decode(doc.tokens.data() + 1, std::size_t(p)));
          double diff = 0;
          for (index_t j = 0; j < d; ++j)
            diff = std::max(diff, std::abs(double(ds.vectors(r, std::size_t(j))) -
                                           double(direct[std::size_t(p * d + j)])));
          CHECK(diff < 1e-5);
        }
      }
      CHECK(r == ds.rows.size());
      CHECK(ds.meta.layer == layer);
      CHECK(ds.meta.stream == layer + 1);
    }
  }
}

TEST_CASE("world rows carry the attributes and the ground truth of their marked positions",
          "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  const index_t n = 6;
  f.extract(f.documents(Split::Test, n), {}, dir.file("marked"));
  const ActivationDataset ds = ActivationDataset::load(dir.file("marked"));
  std::size_t r = 0;
  for (index_t i = 0; i < n; ++i) {
    const WorldDocument doc = f.world.generate(Split::Test, std::uint64_t(i));
    const TokenizedDocument td = tokenize_world_document(f.tokenizer, doc);
    const WorldAttributes& a = doc.attributes;
    for (std::size_t m = 0; m < doc.marked.size(); ++m, ++r) {
      REQUIRE(r < ds.rows.size());
      const json& row = ds.rows[r];
      const MarkedPosition& mp = doc.marked[m];
      CHECK(row["doc"] == fmt::format("test/{}", i));
      CHECK(row["position"] == td.marked[m]);
      CHECK(row["prefix"] == std::string(doc.prefix(mp.offset)));
      const json& attrs = row["attributes"];
      CHECK(attrs["name"] == std::string(a.name_word()));
      CHECK(attrs["species"] == std::string(a.species_word()));
      CHECK(attrs["place"] == std::string(a.place_word()));
      CHECK(attrs["object"] == std::string(a.object_word()));
      CHECK(attrs["mood"] == std::string(a.mood_word()));
      CHECK(attrs["rhyme_family"] == std::string(kRhymeFamilyNames[std::size_t(a.rhyme_family)]));
      CHECK(attrs["rhyme_first"] == std::string(a.rhyme_first_word()));
      CHECK(attrs["rhyme_second"] == std::string(a.rhyme_second_word()));
      CHECK(attrs["eval_marker"] == a.eval_marker);
      CHECK(attrs["cipher"] == a.cipher);
      CHECK(attrs.size() == 10);
      CHECK(row["target"] == attribute_name(mp.target));
      std::vector<std::string> needed;
      for (Attribute x : mp.needed) needed.emplace_back(attribute_name(x));
      CHECK(row["needed"] == needed);
      CHECK(row["next_word"] == mp.next_word);
      CHECK(row["current_token"] == mp.current_token);
      CHECK(row["description"] == mp.description);
    }
  }
  CHECK(r == ds.rows.size());
  CHECK(ds.meta.positions == "marked");
  CHECK(!ds.meta.positions_per_document);

  // Under "all", a marked position's row carries its ground truth and the
  // others carry only the record.
  ExtractionOptions all;
  all.positions = PositionPolicy::all();
  const auto one = f.documents(Split::Test, 1);
  f.extract(one, all, dir.file("all"));
  const ActivationDataset ads = ActivationDataset::load(dir.file("all"));
  std::size_t with_truth = 0;
  for (const json& row : ads.rows) {
    CHECK(row.contains("attributes"));
    if (row.contains("description")) ++with_truth;
  }
  CHECK(with_truth == one[0].marked.size());
}

TEST_CASE("sampled positions are distinct, at least min_index, and deterministic",
          "[activations]") {
  Fixture& f = fixture();
  const auto docs = f.documents(Split::Train, 30);
  const PositionPolicy sampled = PositionPolicy::sampled(4, 8);
  CHECK(sampled.name() == "sampled k=4 min=8");
  CHECK(sampled.per_document() == std::optional<index_t>(4));
  std::size_t differs_by_seed = 0, differs_by_index = 0;
  std::set<std::vector<index_t>> distinct_draws;
  for (const ExtractionDocument& doc : docs) {
    const index_t end = index_t(doc.tokens.size()) - 1;
    const auto p = select_positions(sampled, doc, 11);
    REQUIRE(p.size() == 4);
    for (std::size_t i = 0; i < p.size(); ++i) {
      CHECK(p[i] >= 8);
      CHECK(p[i] < end);
      if (i > 0) CHECK(p[i - 1] < p[i]);  // sorted and distinct
    }
    CHECK(select_positions(sampled, doc, 11) == p);  // a pure function of (seed, doc)
    differs_by_seed += select_positions(sampled, doc, 12) != p;
    distinct_draws.insert(p);
    // The draw is keyed by the document's index (not its place in a list).
    ExtractionDocument renumbered = doc;
    renumbered.index += 1000;
    differs_by_index += select_positions(sampled, renumbered, 11) != p;
  }
  CHECK(differs_by_seed > 20);
  CHECK(differs_by_index > 20);
  CHECK(distinct_draws.size() > 20);

  // All: every readable position; more than the candidates: all candidates.
  const ExtractionDocument& doc = docs[0];
  const index_t end = index_t(doc.tokens.size()) - 1;
  std::vector<index_t> every;
  for (index_t p = 1; p < end; ++p) every.push_back(p);
  CHECK(select_positions(PositionPolicy::all(), doc, 0) == every);
  CHECK(select_positions(PositionPolicy::sampled(1000, 1), doc, 0) == every);
  const auto tail = select_positions(PositionPolicy::sampled(1000, end - 3), doc, 0);
  CHECK(tail == std::vector<index_t>{end - 3, end - 2, end - 1});
  CHECK(select_positions(PositionPolicy::sampled(3, end + 5), doc, 0).empty());
  // Marked: the document's marked tokens.
  std::vector<index_t> marked;
  for (const MarkedToken& m : doc.marked) marked.push_back(m.position);
  CHECK(select_positions(PositionPolicy::marked(), doc, 0) == marked);
  CHECK_THROWS_WITH(PositionPolicy::sampled(0, 4), Contains("at least 1"));
  CHECK_THROWS_WITH(PositionPolicy::sampled(2, 0), Contains("BOS"));

  // The dataset holds exactly the selected positions.
  TempDir dir;
  ExtractionOptions o;
  o.positions = sampled;
  o.seed = 11;
  f.extract(docs, o, dir.file("sampled"));
  const ActivationDataset ds = ActivationDataset::load(dir.file("sampled"));
  REQUIRE(ds.rows.size() == 4 * docs.size());
  for (std::size_t i = 0; i < docs.size(); ++i) {
    const auto p = select_positions(sampled, docs[i], 11);
    for (std::size_t k = 0; k < 4; ++k) {
      CHECK(ds.rows[4 * i + k]["doc"] == docs[i].id);
      CHECK(ds.rows[4 * i + k]["position"] == p[k]);
    }
  }
  CHECK(ds.meta.positions == "sampled k=4 min=8");
  CHECK(ds.meta.positions_per_document == std::optional<index_t>(4));
  CHECK(ds.meta.seed == 11);
}

TEST_CASE("a dataset streamed in many chunks equals one pass and the concatenation of parts",
          "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  const auto docs = f.documents(Split::Train, 10);
  ExtractionOptions o;
  o.positions = PositionPolicy::sampled(5, 2);
  o.seed = 4;
  o.batch_documents = 100;
  f.extract(docs, o, dir.file("whole"));
  const ActivationDataset whole = ActivationDataset::load(dir.file("whole"));
  for (index_t chunk : {1, 3}) {
    o.batch_documents = chunk;
    f.extract(docs, o, dir.file("chunked"));
    const ActivationDataset chunked = ActivationDataset::load(dir.file("chunked"));
    CHECK(chunked.rows == whole.rows);
    CHECK(max_abs_difference(chunked.vectors, whole.vectors) < 1e-5);
    CHECK(chunked.meta.count == whole.meta.count);
    CHECK(std::abs(chunked.meta.mean_norm - whole.meta.mean_norm) < 1e-5);
  }
  // The first 4 and the last 6 documents, extracted apart, stack to the whole.
  o.batch_documents = 2;
  const std::vector<ExtractionDocument> head(docs.begin(), docs.begin() + 4),
      tail(docs.begin() + 4, docs.end());
  f.extract(head, o, dir.file("head"));
  f.extract(tail, o, dir.file("tail"));
  const ActivationDataset a = ActivationDataset::load(dir.file("head"));
  const ActivationDataset b = ActivationDataset::load(dir.file("tail"));
  REQUIRE(a.size() + b.size() == whole.size());
  xt::xtensor<float, 2> stacked = xt::concatenate(xt::xtuple(a.vectors, b.vectors), 0);
  CHECK(max_abs_difference(stacked, whole.vectors) < 1e-5);
  std::vector<json> rows = a.rows;
  rows.insert(rows.end(), b.rows.begin(), b.rows.end());
  CHECK(rows == whole.rows);
  CHECK(a.meta.documents == 4);
  CHECK(b.meta.documents == 6);
}

TEST_CASE("the sidecar records the model, layer, policy, statistics and injection scale",
          "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  const auto docs = f.documents(Split::Validation, 8);
  ExtractionOptions o;
  o.corpus = "synthetic_world seed=3";
  o.split = "validation";
  o.seed = 9;
  const ActivationMeta returned = f.extract(docs, o, dir.file("v"));
  const ActivationDataset ds = ActivationDataset::load(dir.file("v"));
  const json raw = json::parse(std::ifstream(dir.file("v.json")));
  CHECK(raw["format"] == "nla.activations.v1");
  CHECK(raw["positions_per_document"].is_null());
  CHECK(ds.meta.to_json() == returned.to_json());

  const ActivationMeta& m = ds.meta;
  CHECK(m.model_hash == parameter_hash(f.model));
  CHECK(m.model_hash.size() == 16);
  CHECK(m.layer == 1);  // (2 * 3 + 2) / 3 - 1
  CHECK(m.stream == 2);
  CHECK(m.d_model == 16);
  CHECK(m.n_layers == 3);
  CHECK(m.corpus == "synthetic_world seed=3");
  CHECK(m.positions == "marked");
  CHECK(m.seed == 9);
  CHECK(m.split == "validation");
  CHECK(m.documents == 8);
  CHECK(m.count == ds.size());
  CHECK(ds.size() == index_t(8 * docs[0].marked.size()));

  // Mean and mean norm against a two-pass computation over the stored rows.
  const std::size_t n = ds.vectors.shape()[0], d = ds.vectors.shape()[1];
  double norm_sum = 0;
  std::vector<double> sum(d, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    double sq = 0;
    for (std::size_t j = 0; j < d; ++j) {
      sum[j] += ds.vectors(i, j);
      sq += double(ds.vectors(i, j)) * ds.vectors(i, j);
    }
    norm_sum += std::sqrt(sq);
  }
  REQUIRE(m.mean.size() == d);
  for (std::size_t j = 0; j < d; ++j) CHECK(m.mean[j] == Approx(sum[j] / double(n)).margin(1e-6));
  CHECK(m.mean_norm == Approx(norm_sum / double(n)).epsilon(1e-9));
  CHECK(m.injection_scale == round_injection_scale(m.mean_norm));
  CHECK(m.injection_scale >= 1.05 * m.mean_norm);

  // A given injection scale is kept.
  o.injection_scale = 3.5;
  CHECK(f.extract(docs, o, dir.file("w")).injection_scale == 3.5);
  CHECK(ActivationDataset::load(dir.file("w")).meta.injection_scale == 3.5);

  // The hash follows the weights.
  TransformerLM<Cpu, float> other(f.config, 6);
  CHECK(parameter_hash(other) != m.model_hash);
  TransformerLM<Cpu, float> same_seed(f.config, 5);
  CHECK(parameter_hash(same_seed) == m.model_hash);
}

TEST_CASE("round_injection_scale is the smallest of {1, 2, 2.5, 5} x 10^k at least 1.05 x norm",
          "[activations]") {
  CHECK(round_injection_scale(1.0) == 2.0);
  CHECK(round_injection_scale(0.9) == 1.0);
  CHECK(round_injection_scale(1.9) == 2.0);
  CHECK(round_injection_scale(2.0) == 2.5);
  CHECK(round_injection_scale(2.4) == 5.0);
  CHECK(round_injection_scale(5.0) == 10.0);
  CHECK(round_injection_scale(47.0) == 50.0);
  CHECK(round_injection_scale(48.0) == 100.0);
  CHECK(round_injection_scale(0.003) == Approx(0.005));
  CHECK(round_injection_scale(230.0) == Approx(250.0));
  for (double x : {1e-4, 0.37, 3.3, 9.6, 17.0, 123.0, 5e5}) {
    const double s = round_injection_scale(x);
    CHECK(s >= 1.05 * x);
    CHECK(s < 2.5 * 1.05 * x);  // the next smaller round value would not do
  }
  CHECK_THROWS_WITH(round_injection_scale(0.0), Contains("mean_norm"));
  CHECK_THROWS(round_injection_scale(std::nan("")));
}

TEST_CASE("splits come from disjoint documents", "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  ExtractionOptions o;
  o.positions = PositionPolicy::sampled(3, 1);
  o.split = "train";
  const auto train = f.documents(Split::Train, 40);
  f.extract(train, o, dir.file("train"));
  o.split = "test";
  const auto test = f.documents(Split::Test, 40);
  f.extract(test, o, dir.file("test"));
  const ActivationDataset a = ActivationDataset::load(dir.file("train"));
  const ActivationDataset b = ActivationDataset::load(dir.file("test"));
  CHECK(a.meta.split == "train");
  CHECK(b.meta.split == "test");
  std::set<std::string> train_ids, train_texts;
  for (const json& row : a.rows) train_ids.insert(row["doc"].get<std::string>());
  for (const auto& doc : train) train_texts.insert(doc.text);
  CHECK(train_ids.size() == 40);
  for (const json& row : b.rows) CHECK(train_ids.count(row["doc"].get<std::string>()) == 0);
  for (const auto& doc : test) CHECK(train_texts.count(doc.text) == 0);
}

TEST_CASE("text documents are truncated to the context and carry no world fields",
          "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  std::string text = "The cat sat.\n\nA much longer paragraph";
  for (int i = 0; i < 40; ++i) text += " and then it went on";
  text += ".\n";
  const auto corpus = split_documents(text, "notes.txt");
  REQUIRE(corpus.size() == 2);
  const auto docs = text_extraction_documents(corpus, f.tokenizer, 24);
  CHECK(docs[0].id == "notes.txt#0");
  CHECK(docs[1].id == "notes.txt#1");
  CHECK(docs[0].tokens.front() == f.tokenizer.bos_id());
  CHECK(docs[0].tokens.back() == f.tokenizer.eos_id());
  CHECK(f.tokenizer.decode(docs[0].tokens, true) == "The cat sat.");
  CHECK(docs[1].tokens.size() == 25);  // 24 read, EOS only a target
  ExtractionOptions o;
  o.positions = PositionPolicy::all();
  f.extract(docs, o, dir.file("text"));
  const ActivationDataset ds = ActivationDataset::load(dir.file("text"));
  CHECK(ds.size() == index_t(docs[0].tokens.size() - 2 + 23));
  for (const json& row : ds.rows) {
    CHECK(!row.contains("attributes"));
    CHECK(!row.contains("description"));
  }
  CHECK(ds.rows.back()["prefix"] == f.tokenizer.decode(docs[1].tokens.data() + 1, 23));
  // Marked positions of text documents: there are none.
  o.positions = PositionPolicy::marked();
  CHECK_THROWS_WITH(f.extract(docs, o, dir.file("none")), Contains("no positions"));
  CHECK(dir.entries().size() == 3);
}

TEST_CASE("check_compatible names a d_model or layer mismatch", "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  f.extract(f.documents(Split::Train, 2), {}, dir.file("c"));
  const ActivationDataset ds = ActivationDataset::load(dir.file("c"));
  CHECK_NOTHROW(ds.check_compatible(f.config, 1));
  const auto wide = TransformerConfig::gpt2(f.config.vocab_size, f.context, 32, 3, 2);
  CHECK_THROWS_WITH(ds.check_compatible(wide, 1),
                    Contains("d_model 16") && Contains("d_model 32") && Contains(dir.file("c")));
  CHECK_THROWS_WITH(ds.check_compatible(f.config, 2), Contains("layer 1") && Contains("layer 2"));
  CHECK_THROWS_WITH(f.extract(f.documents(Split::Train, 1), {}, dir.file("x"), 3),
                    Contains("layer 3"));
}

TEST_CASE("non-finite activations are refused at extraction and at load", "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  const auto docs = f.documents(Split::Train, 3);
  const std::string prefix = dir.file("nan");
  f.extract(docs, {}, prefix);
  const ActivationDataset before = ActivationDataset::load(prefix);

  SECTION("load names the row and column") {
    poke_npy(prefix + ".npy", 2, 3, 16, std::numeric_limits<float>::quiet_NaN());
    CHECK_THROWS_WITH(ActivationDataset::load(prefix),
                      Contains("row 2") && Contains("column 3") && Contains("non-finite"));
    poke_npy(prefix + ".npy", 2, 3, 16, 0.f);
    poke_npy(prefix + ".npy", 0, 15, 16, std::numeric_limits<float>::infinity());
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains("row 0") && Contains("column 15"));
  }
  SECTION("extraction throws and leaves the existing dataset as it was") {
    TransformerLM<Cpu, float> broken(f.config, 5);
    // A NaN in the embedding of the first text token reaches every later position.
    broken.parameters().values().data()[std::size_t(docs[0].tokens[1]) * 16 + 2] =
        std::numeric_limits<float>::quiet_NaN();
    const index_t layer = default_extraction_layer(3);
    CHECK_THROWS_WITH(extract_activations(broken, f.tokenizer, layer, docs, {}, prefix),
                      Contains("non-finite") && Contains("train/0"));
    const ActivationDataset after = ActivationDataset::load(prefix);
    CHECK(same(after.vectors, before.vectors));
    CHECK(after.rows == before.rows);
    CHECK(dir.entries().size() == 3);  // no temporary files left
  }
}

TEST_CASE("a broken dataset file is refused with the file and the fault named", "[activations]") {
  Fixture& f = fixture();
  TempDir dir;
  const std::string prefix = dir.file("d");
  f.extract(f.documents(Split::Train, 2), {}, prefix);
  REQUIRE_NOTHROW(ActivationDataset::load(prefix));
  const std::string npy = prefix + ".npy", jsonl = prefix + ".jsonl", sidecar = prefix + ".json";

  SECTION("truncated .npy") {
    fs::resize_file(npy, fs::file_size(npy) - 4);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains(npy) && Contains("truncated"));
  }
  SECTION("corrupt .npy header") {
    std::fstream(npy, std::ios::in | std::ios::out | std::ios::binary).seekp(12).write("X", 1);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains(npy) && Contains("corrupt header"));
  }
  SECTION("wrong dtype") {
    xt::xtensor<double, 2> wide = xt::zeros<double>({std::size_t(14), std::size_t(16)});
    xt::dump_npy(npy, wide);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains(npy) && Contains("wrong dtype"));
  }
  SECTION("row count mismatch between the JSONL and the .npy") {
    auto lines = read_lines(jsonl);
    lines.pop_back();
    write_lines(jsonl, lines);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix),
                      Contains(jsonl) && Contains(std::to_string(lines.size()) + " rows"));
  }
  SECTION("a .npy of another shape than the sidecar says") {
    const auto m = io::load_npy_matrix(npy);
    xt::xtensor<float, 2> fewer = xt::view(m, xt::range(0, 3), xt::all());
    xt::dump_npy(npy, fewer);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains("count") && Contains("[3, 16]"));
    xt::xtensor<float, 2> narrow = xt::view(m, xt::all(), xt::range(0, 8));
    xt::dump_npy(npy, narrow);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains("d_model 16"));
  }
  SECTION("a bad or missing sidecar") {
    json j = json::parse(std::ifstream(sidecar));
    j["format"] = "nla.activations.v0";
    std::ofstream(sidecar, std::ios::trunc) << j.dump();
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains(sidecar) && Contains("format"));
    j["format"] = "nla.activations.v1";
    j["mean"] = std::vector<float>(3, 0.f);
    std::ofstream(sidecar, std::ios::trunc) << j.dump();
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains("mean has 3 values"));
    j.erase("mean");
    std::ofstream(sidecar, std::ios::trunc) << j.dump();
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains(sidecar) && Contains("mean"));
    fs::remove(sidecar);
    CHECK_THROWS_WITH(ActivationDataset::load(prefix), Contains(sidecar));
  }
}
