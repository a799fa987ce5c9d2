#pragma once
// Steering sweeps. Which layer and strength make an edit take effect is
// model-specific (the paper's steering works in about half the attempts and
// is layer-sensitive), so the experiment is a grid: for every stream K in
// `streams` and every alpha in `alphas`, generate from the same prompts with
// the same seed, steered along the same direction, and let a caller's score
// judge the generations (e.g. the fraction that rhyme with the edited word).

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "nla/core/error.hpp"
#include "nla/rl/generate.hpp"
#include "nla/steer/steering.hpp"

namespace nla {

struct SteeringSweepPoint {
  index_t stream = 0;
  double alpha = 0.0;
  double score = 0.0;
  std::vector<Generation> generations;  // [prompts]
};

// points[s * alphas.size() + a] is (streams[s], alphas[a]).
struct SteeringSweep {
  std::vector<index_t> streams;
  std::vector<double> alphas;
  std::vector<SteeringSweepPoint> points;

  const SteeringSweepPoint& at(std::size_t stream_index, std::size_t alpha_index) const {
    NLA_CHECK(stream_index < streams.size() && alpha_index < alphas.size(), "SteeringSweep::at",
              "({}, {}) is outside the {} x {} grid", stream_index, alpha_index, streams.size(),
              alphas.size());
    return points[stream_index * alphas.size() + alpha_index];
  }
  // The point with the highest score (the first one on ties).
  const SteeringSweepPoint& best() const {
    NLA_CHECK(!points.empty(), "SteeringSweep::best", "the sweep has no points");
    std::size_t best = 0;
    for (std::size_t i = 1; i < points.size(); ++i)
      if (points[i].score > points[best].score) best = i;
    return points[best];
  }
};

// Scores the generations of one grid point (one per prompt); must be finite.
using SteeringScore =
    std::function<double(index_t stream, double alpha, const std::vector<Generation>& generations)>;

// direction: [d_model]. Every point uses `positions`, `sampling` and
// `options` (so the same seed) and one Generator, whose KV cache is reused.
template <class B, class T>
SteeringSweep steering_sweep(TransformerLM<B, T>& model,
                             const std::vector<std::vector<std::int32_t>>& prompts,
                             const std::vector<double>& direction,
                             const std::vector<index_t>& streams, const std::vector<double>& alphas,
                             const SteeringPositions& positions, const SamplingOptions& sampling,
                             const GenerateOptions& options, const SteeringScore& score) {
  const char* op = "steering_sweep";
  NLA_CHECK(!streams.empty(), op, "no streams to sweep");
  NLA_CHECK(!alphas.empty(), op, "no alphas to sweep");
  NLA_CHECK(bool(score), op, "no score callback");
  SteeringSweep sweep;
  sweep.streams = streams;
  sweep.alphas = alphas;
  // Build every hook set first, so a bad stream or alpha fails before any generation.
  std::vector<SteeringHooks<B, T>> hooks;
  hooks.reserve(streams.size() * alphas.size());
  for (index_t stream : streams)
    for (double alpha : alphas)
      hooks.emplace_back(model, direction, SteeringOptions{stream, alpha, positions});
  Generator<B, T> generator(model);
  for (auto& h : hooks) {
    SteeringSweepPoint point;
    point.stream = h.options().stream;
    point.alpha = h.options().alpha;
    point.generations = generator.generate(prompts, sampling, options, h.provider());
    point.score = score(point.stream, point.alpha, point.generations);
    NLA_CHECK(std::isfinite(point.score), op, "score at stream {}, alpha {} is {}, not finite",
              point.stream, point.alpha, point.score);
    sweep.points.push_back(std::move(point));
  }
  return sweep;
}

}  // namespace nla
