#pragma once
// A checkpoint of a text NLA in training: the verbalizer and its optimiser,
// the frozen reference verbalizer, the reconstructor (truncated model and
// head) and their optimisers, the encoder's sampling-stream counter, the step
// and the caller's metadata (JSON). Loading it and continuing is
// bit-identical to never having stopped (tests/bottleneck).
//
// Layout, so that a run killed while saving never loses the last good state:
//   dir/step-000120/{verbalizer,reference,reconstructor,reconstructor_head}.ckpt
//   dir/latest          "step-000120", replaced atomically after the files
// Each file is itself written atomically and checksummed (io/checkpoint.hpp);
// older step directories are removed only after `latest` points past them.
//
// Data parallel: every rank calls both functions. Saving gathers sharded
// optimiser state and rank 0 alone writes; loading reads on every rank and
// keeps each rank's shard, so a checkpoint of w ranks resumes on any number.

#include <filesystem>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nla/bottleneck/reconstructor_decoder.hpp"
#include "nla/bottleneck/verbalizer_encoder.hpp"
#include "nla/io/checkpoint.hpp"
#include "nla/io/file.hpp"

namespace nla {

struct NlaCheckpointState {
  std::int64_t step = 0;
  nlohmann::json metadata;
};

namespace detail {
template <class B, class T>
void write_nla_step(const std::filesystem::path& step_dir, VerbalizerEncoder<B, T>& encoder,
                    const AdamW<B, T>& av_opt, Reconstructor<B, T>& ar, const AdamW<B, T>& ar_opt,
                    const AdamW<B, T>& head_opt, const TrainingState& state) {
  std::filesystem::create_directories(step_dir);
  save_checkpoint((step_dir / "verbalizer.ckpt").string(), encoder.policy().model(), av_opt, state);
  auto& ref = encoder.reference().model();
  const AdamW<B, T> no_state(ref.parameters(), AdamWOptions{});  // the reference never trains
  save_checkpoint((step_dir / "reference.ckpt").string(), ref, no_state, state);
  save_checkpoint((step_dir / "reconstructor.ckpt").string(), ar.model(), ar_opt, state);
  save_parameters(ar.model().backend(), (step_dir / "reconstructor_head.ckpt").string(),
                  ar.model().config(), ar.head_parameters(), head_opt, state);
}
}  // namespace detail

template <class B, class T>
void save_nla_checkpoint(const std::string& dir, VerbalizerEncoder<B, T>& encoder,
                         ReconstructorDecoder<B, T>& decoder, std::int64_t step,
                         const nlohmann::json& metadata = nlohmann::json::object()) {
  namespace fs = std::filesystem;
  const std::string name = fmt::format("step-{:06d}", step);
  const fs::path step_dir = fs::path(dir) / name;
  TrainingState state;
  state.step = step;
  state.metadata =
      nlohmann::json{{"next_stream", encoder.next_stream()}, {"user", metadata}}.dump();
  const DataParallel& dp = encoder.data_parallel();
  auto& av = encoder.policy().model();
  auto& ar = decoder.reconstructor();
  std::optional<AdamW<B, T>> av_whole, ar_whole, head_whole;
  const auto& av_opt =
      dp.whole_optimizer(av.backend(), encoder.optimizer(), av.parameters(), av_whole);
  const auto& ar_opt = dp.whole_optimizer(ar.model().backend(), decoder.optimizer(),
                                          ar.model().parameters(), ar_whole);
  const auto& head_opt = dp.whole_optimizer(ar.model().backend(), decoder.head_optimizer(),
                                            ar.head_parameters(), head_whole);
  // Rank 0 writes the step's files, then points `latest` at them.
  dp.on_root("save_nla_checkpoint", [&] {
    detail::write_nla_step(step_dir, encoder, av_opt, ar, ar_opt, head_opt, state);
    const std::string latest = (fs::path(dir) / "latest").string();
    io::write_text_atomically("save_nla_checkpoint", "pointer", latest, name);
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_directory() && entry.path().filename().string().rfind("step-", 0) == 0 &&
          entry.path().filename() != name)
        fs::remove_all(entry.path());
  });
}

// Restores everything save_nla_checkpoint wrote into objects built with the
// same configs and prompts; every file is verified before use.
template <class B, class T>
NlaCheckpointState load_nla_checkpoint(const std::string& dir, VerbalizerEncoder<B, T>& encoder,
                                       ReconstructorDecoder<B, T>& decoder) {
  namespace fs = std::filesystem;
  const char* op = "load_nla_checkpoint";
  const std::string latest = (fs::path(dir) / "latest").string();
  const std::string name = io::read_file(op, "pointer", latest);
  NLA_CHECK(name.rfind("step-", 0) == 0 && name.find('/') == std::string::npos, op,
            "'{}' holds '{}', not a step directory name", latest, name);
  const fs::path step_dir = fs::path(dir) / name;
  const TrainingState state = load_checkpoint((step_dir / "verbalizer.ckpt").string(),
                                              encoder.policy().model(), encoder.optimizer());
  AdamW<B, T> unused;
  const TrainingState ref_state =
      load_checkpoint((step_dir / "reference.ckpt").string(), encoder.reference().model(), unused);
  auto& ar = decoder.reconstructor();
  const TrainingState ar_state =
      load_checkpoint((step_dir / "reconstructor.ckpt").string(), ar.model(), decoder.optimizer());
  const TrainingState head_state =
      load_parameters(ar.model().backend(), (step_dir / "reconstructor_head.ckpt").string(),
                      ar.model().config(), ar.head_parameters(), decoder.head_optimizer());
  NLA_CHECK(
      ref_state.step == state.step && ar_state.step == state.step && head_state.step == state.step,
      op, "files of '{}' are from different steps ({}, {}, {}, {})", step_dir.string(), state.step,
      ref_state.step, ar_state.step, head_state.step);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(state.metadata);
  } catch (const std::exception& e) {
    NLA_FAIL(op, "'{}': metadata is not JSON: {}", step_dir.string(), e.what());
  }
  NLA_CHECK(meta.contains("next_stream") && meta["next_stream"].is_number_unsigned(), op,
            "'{}': metadata lacks the sampling stream counter", step_dir.string());
  encoder.set_next_stream(meta["next_stream"].get<std::uint64_t>());
  encoder.set_data_parallel(encoder.data_parallel());  // keep only this rank's shards
  decoder.set_data_parallel(decoder.data_parallel());
  return {state.step, meta.value("user", nlohmann::json::object())};
}

}  // namespace nla
