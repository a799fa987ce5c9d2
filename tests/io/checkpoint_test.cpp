// Checkpoints: bit-exact round trip and resume for both flavours, rejection
// of every kind of damaged or foreign file with a message naming it, and
// atomic writes that never leave a torn or temporary file behind.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include <catch2/catch.hpp>

#include <nla/io/checkpoint.hpp>
#include <nla/nla.hpp>
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using nla::index_t;
using Lm = nla::TransformerLM<nla::Cpu, float>;
using Opt = nla::AdamW<nla::Cpu, float>;
using Catch::Contains;

constexpr index_t kBatch = 2, kTime = 8;

using nla::testing::read_bytes;
using nla::testing::TempDir;
using nla::testing::write_bytes;

nla::TransformerConfig gpt2_config() {
  return nla::TransformerConfig::gpt2(32, 8, 16, 2, 2);
}
nla::TransformerConfig llama_config() {
  return nla::TransformerConfig::llama(32, 8, 16, 2, 2, 1);
}

nla::AdamWOptions train_options() {
  nla::AdamWOptions o;
  o.lr = 1e-2;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  return o;
}

// One training step on a batch drawn from the run's Rng (so the data order is
// part of the state to restore) with a learning rate that depends on the step.
double train_step(Lm& lm, Opt& opt, nla::TrainingState& state,
                  nla::LmActivations<float, nla::Cpu>& acts) {
  const std::uint64_t vocab = static_cast<std::uint64_t>(lm.config().vocab_size);
  const std::uint64_t stream = state.rng.take_stream();
  nla::Tensor<std::int32_t, nla::Cpu> tokens(nla::Shape{kBatch, kTime});    // [batch, t]
  nla::Tensor<std::int32_t, nla::Cpu> targets(nla::Shape{kBatch * kTime});  // [batch * t]
  for (index_t b = 0; b < kBatch; ++b) {
    for (index_t i = 0; i < kTime; ++i) {
      const std::uint64_t j = static_cast<std::uint64_t>(b * (kTime + 1) + i);
      tokens.data()[b * kTime + i] =
          std::int32_t(nla::random_bits(state.rng.seed(), stream, j) % vocab);
      targets.data()[b * kTime + i] =
          std::int32_t(nla::random_bits(state.rng.seed(), stream, j + 1) % vocab);
    }
  }
  lm.forward(tokens.view(), acts);
  const double loss = lm.loss(acts, targets.view());
  lm.zero_grad();
  lm.backward(acts);
  nla::clip_grad_norm(lm.backend(), lm.parameters(), 1.0);
  const double lr = 1e-2 / (1.0 + 0.25 * double(state.step));
  opt.step(lm.backend(), lm.parameters(), lr);
  ++state.step;
  return loss;
}

template <class T>
bool same_bits(const T* a, const T* b, index_t n) {
  return std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(T)) == 0;
}
bool same_parameters(const Lm& a, const Lm& b) {
  return a.parameters().size() == b.parameters().size() &&
         same_bits(a.parameters().values().data(), b.parameters().values().data(),
                   a.parameters().size());
}
bool same_moments(const Opt& a, const Opt& b) {
  return a.first_moment().size() == b.first_moment().size() &&
         a.second_moment().size() == b.second_moment().size() &&
         same_bits(a.first_moment().data(), b.first_moment().data(), a.first_moment().size()) &&
         same_bits(a.second_moment().data(), b.second_moment().data(), a.second_moment().size());
}
bool same_options(const nla::AdamWOptions& a, const nla::AdamWOptions& b) {
  return a.lr == b.lr && a.beta1 == b.beta1 && a.beta2 == b.beta2 && a.eps == b.eps &&
         a.weight_decay == b.weight_decay;
}

namespace cd = nla::checkpoint_detail;

// Rewrites the header's payload length and the trailing checksum so a file
// edited on purpose passes the integrity checks and reaches the parser.
void reseal(std::string& bytes) {
  REQUIRE(bytes.size() >= cd::kHeaderBytes + cd::kChecksumBytes);
  const std::size_t payload = bytes.size() - cd::kHeaderBytes - cd::kChecksumBytes;
  unsigned char word[8];
  cd::encode_u64(word, payload);
  std::memcpy(&bytes[cd::kMagicBytes + 4], word, 8);
  cd::encode_u64(word, cd::fnv1a64(bytes.data() + cd::kHeaderBytes, payload));
  std::memcpy(&bytes[bytes.size() - 8], word, 8);
}

// A model, an optimiser and a training state after a few steps, so moments,
// step counts and the Rng are all non-trivial.
struct TrainedRun {
  explicit TrainedRun(const nla::TransformerConfig& config, int steps = 2)
      : lm(config, 7), opt(lm.parameters(), train_options()) {
    state.rng = nla::Rng(1234);
    state.metadata = R"({"loader":{"epoch":1,"offset":4096},"tag":"unit-test"})";
    nla::LmActivations<float, nla::Cpu> acts;
    for (int s = 0; s < steps; ++s) train_step(lm, opt, state, acts);
  }
  Lm lm;
  Opt opt;
  nla::TrainingState state;
};

void check_round_trip(const nla::TransformerConfig& config, const std::string& path) {
  TrainedRun run(config);
  nla::save_checkpoint(path, run.lm, run.opt, run.state);

  Lm fresh(config, 99);
  REQUIRE_FALSE(same_parameters(fresh, run.lm));  // the load below has work to do

  // Into an optimiser with other options and into a default-constructed one.
  nla::AdamWOptions other;
  other.lr = 0.5;
  other.beta1 = 0.5;
  other.beta2 = 0.6;
  other.eps = 1e-3;
  other.weight_decay = 0.0;
  Opt configured(fresh.parameters(), other);
  const nla::TrainingState loaded = nla::load_checkpoint(path, fresh, configured);
  CHECK(same_parameters(fresh, run.lm));
  CHECK(same_moments(configured, run.opt));
  CHECK(configured.step_count() == run.opt.step_count());
  CHECK(configured.step_count() == 2);
  CHECK(same_options(configured.options(), run.opt.options()));
  CHECK(loaded.step == run.state.step);
  CHECK(loaded.rng == run.state.rng);
  CHECK(loaded.rng.next_stream() == 2);
  CHECK(loaded.metadata == run.state.metadata);

  Lm again(config, 5);
  Opt empty;
  nla::load_checkpoint(path, again, empty);
  CHECK(same_parameters(again, run.lm));
  CHECK(same_moments(empty, run.opt));
  CHECK(empty.step_count() == run.opt.step_count());
  CHECK(same_options(empty.options(), run.opt.options()));
}

void check_resume(const nla::TransformerConfig& config, const std::string& path) {
  constexpr int kSteps = 6, kSplit = 3;
  nla::LmActivations<float, nla::Cpu> acts;

  Lm straight(config, 3);
  Opt straight_opt(straight.parameters(), train_options());
  nla::TrainingState straight_state;
  straight_state.rng = nla::Rng(42);
  std::vector<double> straight_losses;
  for (int s = 0; s < kSteps; ++s)
    straight_losses.push_back(train_step(straight, straight_opt, straight_state, acts));

  std::vector<double> resumed_losses;
  {
    Lm first(config, 3);
    Opt first_opt(first.parameters(), train_options());
    nla::TrainingState first_state;
    first_state.rng = nla::Rng(42);
    for (int s = 0; s < kSplit; ++s)
      resumed_losses.push_back(train_step(first, first_opt, first_state, acts));
    nla::save_checkpoint(path, first, first_opt, first_state);
  }
  // A new process would read the config, build the model, then load.
  const nla::TransformerConfig saved = nla::read_checkpoint_config(path);
  REQUIRE(saved == config);
  Lm second(saved, 1234);  // another seed: everything must come from the file
  Opt second_opt;
  nla::LmActivations<float, nla::Cpu> fresh_acts;
  nla::TrainingState second_state = nla::load_checkpoint(path, second, second_opt);
  CHECK(second_state.step == kSplit);
  for (int s = kSplit; s < kSteps; ++s)
    resumed_losses.push_back(train_step(second, second_opt, second_state, fresh_acts));

  REQUIRE(resumed_losses.size() == straight_losses.size());
  for (std::size_t s = 0; s < straight_losses.size(); ++s) {
    INFO("step " << s);
    CHECK(resumed_losses[s] == straight_losses[s]);
  }
  CHECK(same_parameters(second, straight));
  CHECK(same_moments(second_opt, straight_opt));
  CHECK(second_opt.step_count() == straight_opt.step_count());
  CHECK(second_state.rng == straight_state.rng);
  CHECK(second_state.step == straight_state.step);
}

}  // namespace

TEST_CASE("fnv1a64 matches the published test vectors", "[io]") {
  CHECK(cd::fnv1a64("", 0) == 0xcbf29ce484222325ull);
  CHECK(cd::fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
  CHECK(cd::fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
  // Streaming over chunks gives the hash of the whole.
  CHECK(cd::fnv1a64("bar", 3, cd::fnv1a64("foo", 3)) == 0x85944171f73967e8ull);
}

TEST_CASE("checkpoint file starts with magic, version and payload length", "[io]") {
  TempDir dir("header");
  const std::string path = dir.file("model.ckpt");
  TrainedRun run(gpt2_config(), 1);
  nla::save_checkpoint(path, run.lm, run.opt, run.state);
  const std::string bytes = read_bytes(path);
  REQUIRE(bytes.size() > 28);
  CHECK(std::memcmp(bytes.data(), "NLACKPT\0", 8) == 0);
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  CHECK(cd::decode_u32(u + 8) == nla::kCheckpointVersion);
  CHECK(cd::decode_u64(u + 12) == bytes.size() - 28);
  CHECK(cd::decode_u64(u + bytes.size() - 8) == cd::fnv1a64(u + 20, bytes.size() - 28));
  // Parameters and both moments are in the payload.
  CHECK(bytes.size() > std::size_t(3 * sizeof(float)) * std::size_t(run.lm.parameters().size()));
}

TEST_CASE("checkpoint round trip restores model, optimizer and training state", "[io]") {
  TempDir dir("round_trip");
  SECTION("gpt2") {
    check_round_trip(gpt2_config(), dir.file("gpt2.ckpt"));
  }
  SECTION("llama") {
    check_round_trip(llama_config(), dir.file("llama.ckpt"));
  }
}

TEST_CASE("resuming from a checkpoint is bit-identical to training straight through", "[io]") {
  TempDir dir("resume");
  SECTION("gpt2") {
    check_resume(gpt2_config(), dir.file("gpt2.ckpt"));
  }
  SECTION("llama") {
    check_resume(llama_config(), dir.file("llama.ckpt"));
  }
}

TEST_CASE("read_checkpoint_config returns every config field", "[io]") {
  TempDir dir("config");
  nla::TransformerConfig config = llama_config();
  config.norm_eps = 3e-6;
  config.rope_theta = 500000.0;
  config.attention_bias = true;  // Qwen2-style
  config.d_ff = 64;
  Lm lm(config);
  Opt opt(lm.parameters(), train_options());
  const std::string path = dir.file("qwen.ckpt");
  nla::save_checkpoint(path, lm, opt, nla::TrainingState{});
  const nla::TransformerConfig read = nla::read_checkpoint_config(path);
  CHECK(read == lm.config());
  CHECK(read.flavour == nla::Flavour::Llama);
  CHECK(read.norm_eps == 3e-6);
  CHECK(read.rope_theta == 500000.0);
  CHECK(read.attention_bias);
  CHECK_FALSE(read.projection_bias);
  CHECK_FALSE(read.tied_embeddings);
  CHECK(read.d_ff == 64);
  CHECK(read.n_kv_heads == 1);
}

TEST_CASE("load rejects a truncated checkpoint and leaves the model alone", "[io]") {
  TempDir dir("truncated");
  const std::string good = dir.file("good.ckpt");
  TrainedRun run(gpt2_config());
  nla::save_checkpoint(good, run.lm, run.opt, run.state);
  const std::string bytes = read_bytes(good);
  const std::size_t size = bytes.size();

  Lm target(gpt2_config(), 5);
  Opt target_opt(target.parameters(), train_options());
  const Lm before(gpt2_config(), 5);
  const std::string path = dir.file("cut.ckpt");
  for (std::size_t cut :
       {std::size_t{3}, std::size_t{8}, std::size_t{12}, std::size_t{19}, std::size_t{20},
        std::size_t{21}, size / 2, size - 9, size - 8, size - 1}) {
    INFO("cut at " << cut << " of " << size);
    write_bytes(path, bytes.substr(0, cut));
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt), Contains(path));
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt), Contains("truncated"));
    REQUIRE_THROWS_WITH(nla::read_checkpoint_config(path), Contains("truncated"));
  }
  write_bytes(path, bytes.substr(0, size / 2));
  REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                      Contains(fmt::format("header says {} payload bytes", size - 28)));
  CHECK(same_parameters(target, before));
  CHECK(target_opt.step_count() == 0);
}

TEST_CASE("load rejects a checkpoint with a flipped byte", "[io]") {
  TempDir dir("flipped");
  const std::string good = dir.file("good.ckpt");
  TrainedRun run(llama_config());
  nla::save_checkpoint(good, run.lm, run.opt, run.state);
  const std::string bytes = read_bytes(good);
  const std::size_t size = bytes.size();

  Lm target(llama_config(), 5);
  Opt target_opt(target.parameters(), train_options());
  const Lm before(llama_config(), 5);
  const std::string path = dir.file("flipped.ckpt");
  // First payload byte, inside the config, the middle of the arrays, the last
  // payload byte and the stored checksum itself.
  for (std::size_t at : {std::size_t{20}, std::size_t{40}, size / 2, size - 9, size - 3}) {
    INFO("byte " << at << " of " << size);
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    write_bytes(path, damaged);
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("checksum mismatch"));
    REQUIRE_THROWS_WITH(nla::read_checkpoint_config(path), Contains("checksum mismatch"));
  }
  CHECK(same_parameters(target, before));
  // The undamaged copy still loads.
  REQUIRE_NOTHROW(nla::load_checkpoint(good, target, target_opt));
  CHECK(same_parameters(target, run.lm));
}

TEST_CASE("load rejects files that are not checkpoints", "[io]") {
  TempDir dir("foreign");
  const std::string good = dir.file("good.ckpt");
  TrainedRun run(gpt2_config(), 1);
  nla::save_checkpoint(good, run.lm, run.opt, run.state);
  const std::string bytes = read_bytes(good);
  Lm target(gpt2_config(), 5);
  Opt target_opt(target.parameters(), train_options());
  const std::string path = dir.file("other.ckpt");

  SECTION("wrong magic") {
    std::string damaged = bytes;
    damaged[3] = 'X';
    write_bytes(path, damaged);
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("bad magic"));
  }
  SECTION("a text file") {
    write_bytes(path, "{\"not\": \"a checkpoint\"}\n");
    REQUIRE_THROWS_WITH(nla::read_checkpoint_config(path), Contains(path) && Contains("bad magic"));
  }
  SECTION("empty file") {
    write_bytes(path, "");
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("empty"));
  }
  SECTION("missing file") {
    const std::string missing = dir.file("missing.ckpt");
    REQUIRE_THROWS_AS(nla::load_checkpoint(missing, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(missing, target, target_opt),
                        Contains(missing) && Contains("cannot open") && Contains("No such file"));
    REQUIRE_THROWS_WITH(nla::read_checkpoint_config(missing), Contains(missing));
  }
  SECTION("a directory") {
    fs::create_directory(path);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("not a regular file"));
  }
  SECTION("unknown format version") {
    std::string newer = bytes;
    newer[8] = 99;
    write_bytes(path, newer);
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("unsupported format version 99"));
  }
  SECTION("bytes appended after the checksum") {
    write_bytes(path, bytes + "junk");
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("4 unexpected bytes"));
  }
}

TEST_CASE("load rejects a checkpoint of another model", "[io]") {
  TempDir dir("mismatch");
  const std::string path = dir.file("gpt2.ckpt");
  TrainedRun run(gpt2_config(), 1);
  nla::save_checkpoint(path, run.lm, run.opt, run.state);

  SECTION("different width") {
    const nla::TransformerConfig wider = nla::TransformerConfig::gpt2(32, 8, 32, 2, 2);
    Lm target(wider, 5);
    const Lm before(wider, 5);
    Opt target_opt(target.parameters(), train_options());
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("config mismatch") &&
                            Contains("d_model 16 in the file, 32 in the model"));
    CHECK(same_parameters(target, before));
  }
  SECTION("different flavour") {
    Lm target(llama_config(), 5);
    Opt target_opt(target.parameters(), train_options());
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains("config mismatch") && Contains("flavour gpt2 in the file"));
  }
  SECTION("different scalar type") {
    nla::TransformerLM<nla::Cpu, double> target(gpt2_config(), 5);
    nla::AdamW<nla::Cpu, double> target_opt(target.parameters(), train_options());
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("scalar type mismatch") && Contains("f32"));
  }
}

TEST_CASE("load checks the parsed payload even when the checksum matches", "[io]") {
  TempDir dir("forged");
  const std::string good = dir.file("good.ckpt");
  TrainedRun run(gpt2_config(), 1);
  run.state.metadata = "forge-me";
  nla::save_checkpoint(good, run.lm, run.opt, run.state);
  const std::string bytes = read_bytes(good);
  Lm target(gpt2_config(), 5);
  const Lm before(gpt2_config(), 5);
  Opt target_opt(target.parameters(), train_options());
  const std::string path = dir.file("forged.ckpt");

  SECTION("resealing an unchanged file reproduces it") {
    std::string same = bytes;
    reseal(same);
    REQUIRE(same == bytes);
  }
  SECTION("renamed parameter") {
    std::string forged = bytes;
    const std::size_t at = forged.find("transformer.wpe.weight");
    REQUIRE(at != std::string::npos);
    forged[at + 12] = 'x';  // transformer.xpe.weight
    reseal(forged);
    write_bytes(path, forged);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("parameter table mismatch") &&
                            Contains("'transformer.xpe.weight'"));
  }
  SECTION("absurd metadata length") {
    std::string forged = bytes;
    const std::size_t at = forged.find("forge-me");
    REQUIRE(at != std::string::npos);
    unsigned char length[8];
    cd::encode_u64(length, std::uint64_t{1} << 60);
    std::memcpy(&forged[at - 8], length, 8);
    reseal(forged);
    write_bytes(path, forged);
    REQUIRE_THROWS_AS(nla::load_checkpoint(path, target, target_opt), nla::Error);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("metadata claims 1152921504606846976 bytes"));
  }
  SECTION("arrays shorter than the model") {
    std::string forged = bytes.substr(0, bytes.size() - 8 - sizeof(float));
    forged += std::string(8, '\0');
    reseal(forged);
    write_bytes(path, forged);
    REQUIRE_THROWS_WITH(nla::load_checkpoint(path, target, target_opt),
                        Contains(path) && Contains("bytes left for the arrays"));
  }
  CHECK(same_parameters(target, before));
  CHECK(target_opt.step_count() == 0);
}

TEST_CASE("save_checkpoint writes atomically", "[io]") {
  TempDir dir("atomic");
  const std::string path = dir.file("model.ckpt");
  TrainedRun first(gpt2_config(), 1);
  TrainedRun second(gpt2_config(), 3);
  auto no_temporary_files = [&dir] {
    for (const std::string& name : dir.entries())
      if (name.find(".tmp") != std::string::npos) return false;
    return true;
  };

  SECTION("into a missing directory: throws and creates nothing") {
    const std::string missing = (dir.path() / "missing" / "model.ckpt").string();
    REQUIRE_THROWS_AS(nla::save_checkpoint(missing, first.lm, first.opt, first.state), nla::Error);
    REQUIRE_THROWS_WITH(nla::save_checkpoint(missing, first.lm, first.opt, first.state),
                        Contains(missing) && Contains("No such file"));
    CHECK_FALSE(fs::exists(dir.path() / "missing"));
    CHECK(dir.entries().empty());
  }
  SECTION("over an existing checkpoint: replaces it") {
    nla::save_checkpoint(path, first.lm, first.opt, first.state);
    nla::save_checkpoint(path, second.lm, second.opt, second.state);
    CHECK(dir.entries() == std::vector<std::string>{"model.ckpt"});
    Lm target(gpt2_config(), 5);
    Opt target_opt;
    CHECK(nla::load_checkpoint(path, target, target_opt).step == 3);
    CHECK(same_parameters(target, second.lm));
  }
  SECTION("a failed write keeps the existing checkpoint") {
    nla::save_checkpoint(path, first.lm, first.opt, first.state);
    const std::string original = read_bytes(path);
    // Block the temporary file's name with a directory: open() fails.
    const fs::path blocker = path + ".tmp." + std::to_string(::getpid());
    fs::create_directory(blocker);
    REQUIRE_THROWS_WITH(nla::save_checkpoint(path, second.lm, second.opt, second.state),
                        Contains(path) && Contains("cannot create temporary file"));
    fs::remove(blocker);
    CHECK(read_bytes(path) == original);
    CHECK(no_temporary_files());
  }
  SECTION("running out of space mid-write keeps the existing checkpoint") {
    nla::save_checkpoint(path, first.lm, first.opt, first.state);
    const std::string original = read_bytes(path);
    REQUIRE(original.size() > 16384);
    // A 16 KiB file size limit makes write() fail with EFBIG partway through
    // the arrays, like a full disk.
    rlimit saved_limit{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_limit) == 0);
    rlimit small = saved_limit;
    small.rlim_cur = 16384;
    const auto saved_handler = ::signal(SIGXFSZ, SIG_IGN);
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message;
    try {
      nla::save_checkpoint(path, second.lm, second.opt, second.state);
    } catch (const nla::Error& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved_limit);
    ::signal(SIGXFSZ, saved_handler);
    CHECK_THAT(message, Contains(path) && Contains("cannot write temporary file") &&
                            Contains("File too large"));
    CHECK(read_bytes(path) == original);
    CHECK(no_temporary_files());
    Lm target(gpt2_config(), 5);
    Opt target_opt;
    CHECK(nla::load_checkpoint(path, target, target_opt).step == 1);
  }
  CHECK(no_temporary_files());
}

TEST_CASE("save_checkpoint rejects an optimizer built for another model", "[io]") {
  TempDir dir("bad_optimizer");
  const std::string path = dir.file("model.ckpt");
  Lm lm(gpt2_config());
  Opt unbuilt;
  REQUIRE_THROWS_WITH(nla::save_checkpoint(path, lm, unbuilt, nla::TrainingState{}),
                      Contains(path) && Contains("optimizer holds 0 and 0 moments"));
  CHECK(dir.entries().empty());
}
