#pragma once
// Drawing one token from one row of logits z [vocab], written once for the
// host and the device as a function of cooperating lanes (core/row_lanes.hpp):
//   p      = softmax(z)             over the allowed tokens (all, or a mask)
//   q      = softmax(z / temperature), the sampling law; temperature 0 puts
//            all mass on the first argmax
//   token  = the first i with u < q_0 + ... + q_i   (inverse CDF, index order)
// and returns log q(token), log p(token). This is the law of rl/sampling.hpp
// without top-k / top-p truncation, computed with the same operations in the
// same order, in double, so a one-lane draw (the Cpu backend) gives that
// reference's token bit for bit. With 32 lanes (a warp) the sums run in
// another order; the token can differ only when u lies within rounding
// (about 1e-16) of a boundary of the CDF.
//
// Each lane owns a contiguous chunk of the row for the CDF walk: chunk sums,
// an exclusive scan over the lanes gives each chunk's starting mass, and the
// first lane whose walk crosses u has the token.

#include <math.h>

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "nla/core/config.hpp"
#include "nla/core/random.hpp"
#include "nla/core/row_lanes.hpp"
#include "nla/core/shape.hpp"

namespace nla {

// Draw a token from row `row` of a logits matrix with the counter-based
// uniform u(seed, stream, index) (core/random.hpp).
struct TokenDrawRequest {
  index_t row = 0;
  std::uint64_t stream = 0;
  std::uint64_t index = 0;
};

// What became of a request; a default-constructed record is NotDrawn.
enum class TokenDrawStatus : std::int32_t {
  NotDrawn,
  Drawn,
  NonFiniteLogit,  // `nonfinite` is the first such token
  NoAllowedToken,  // the mask allows none
  RowOutOfRange,   // the request names a row the logits do not have
};

struct TokenDraw {
  std::int32_t token = -1;  // -1 unless Drawn
  TokenDrawStatus status = TokenDrawStatus::NotDrawn;
  std::int32_t nonfinite = -1;
  float logprob = 0;        // log q(token)
  float model_logprob = 0;  // log p(token)
};

// allowed: [vocab] mask (nonzero: allowed) or null for every token;
// temperature >= 0; u in (0, 1). Lanes has RowLanes's members (a template so
// that a test can run the lanes as host threads). weights: null, or [vocab]
// scratch with which a one-lane draw computes one exp per token, as the
// reference does, instead of recomputing them in the CDF walk.
template <class T, class Lanes>
NLA_HOST_DEVICE TokenDraw draw_token_in_row(const T* z, index_t vocab, const std::uint8_t* allowed,
                                            double temperature, double u, Lanes lanes,
                                            double* weights = nullptr) {
  const auto is_allowed = [allowed](index_t i) { return allowed == nullptr || allowed[i] != 0; };
  // Pass 1: the first non-finite logit, the largest allowed logit and its
  // first index. x - x is 0 exactly for finite x and NaN otherwise.
  index_t bad = vocab, arg = vocab;
  double max = -HUGE_VAL;
  for (index_t i = lanes.lane; i < vocab; i += lanes.count) {
    const double x = double(z[i]);
    if (!(x - x == 0.0)) {
      bad = bad < i ? bad : i;
      continue;
    }
    if (is_allowed(i) && x > max) max = x, arg = i;
  }
  bad = lanes.min(bad);
  TokenDraw d;
  if (bad < vocab) {
    d.status = TokenDrawStatus::NonFiniteLogit;
    d.nonfinite = std::int32_t(bad);
    return d;
  }
  const double row_max = lanes.max(max);
  if (row_max == -HUGE_VAL) {
    d.status = TokenDrawStatus::NoAllowedToken;
    return d;
  }
  d.status = TokenDrawStatus::Drawn;
  arg = lanes.min(max == row_max ? arg : vocab);
  max = row_max;

  // Pass 2: the model's normaliser and, at temperature t != 1, the sampling
  // law's (at t = 1 they are one sum of one exp per token). A lone lane keeps
  // the sampling weights in `weights` for pass 3; lanes would each need the
  // others' weights, and recompute them instead.
  const bool tempered = temperature != 1.0 && temperature != 0.0;
  double* const kept = lanes.count == 1 ? weights : nullptr;
  double sum = 0, tempered_sum = 0;
  for (index_t i = lanes.lane; i < vocab; i += lanes.count) {
    double w = 0;
    if (is_allowed(i)) {
      sum += w = ::exp(double(z[i]) - max);
      if (tempered) tempered_sum += w = ::exp((double(z[i]) - max) / temperature);
    }
    if (kept) kept[i] = w;
  }
  sum = lanes.sum(sum);
  const double lse = max + ::log(sum);
  if (temperature == 0.0) {
    d.token = std::int32_t(arg);
    d.model_logprob = float(double(z[arg]) - lse);
    return d;
  }
  const double normaliser = tempered ? lanes.sum(tempered_sum) : sum;
  const auto q = [z, is_allowed, kept, max, temperature, normaliser](index_t i) {
    if (kept) return kept[i] / normaliser;
    return is_allowed(i) ? ::exp((double(z[i]) - max) / temperature) / normaliser : 0.0;
  };

  // Pass 3: the inverse CDF over contiguous chunks. A token of zero mass is
  // never drawn: when rounding leaves u beyond the total, the last token with
  // mass is.
  const index_t chunk = (vocab + lanes.count - 1) / lanes.count;
  const index_t begin = lanes.lane * chunk;
  const index_t end = begin + chunk < vocab ? begin + chunk : vocab;
  double mass = 0;
  if (lanes.count > 1)
    for (index_t i = begin; i < end; ++i) mass += q(i);
  double cdf = lanes.exclusive_scan(mass);
  index_t first = vocab, last = -1;
  for (index_t i = begin; i < end; ++i) {
    const double qi = q(i);
    if (qi <= 0) continue;
    last = i;
    cdf += qi;
    if (u < cdf) {
      first = i;
      break;
    }
  }
  first = lanes.min(first);
  last = lanes.max(last);
  const index_t token = first < vocab ? first : last;
  d.token = std::int32_t(token);
  d.logprob = float(::log(q(token)));
  d.model_logprob = float(double(z[token]) - lse);
  return d;
}

// One request against logits [rows, vocab]: its row's draw with its uniform
// u(seed, stream, index), or RowOutOfRange. The kernels check the rows here,
// on the backend, so the requests need not come back to the host.
template <class T, class Lanes>
NLA_HOST_DEVICE TokenDraw draw_token_for_request(const T* logits, index_t rows, index_t vocab,
                                                 const TokenDrawRequest& r, std::uint64_t seed,
                                                 double temperature, const std::uint8_t* allowed,
                                                 Lanes lanes, double* weights = nullptr) {
  if (r.row < 0 || r.row >= rows) {
    TokenDraw d;
    d.status = TokenDrawStatus::RowOutOfRange;
    return d;
  }
  return draw_token_in_row(logits + r.row * vocab, vocab, allowed, temperature,
                           random_uniform(seed, r.stream, r.index), lanes, weights);
}

// Why a request drew no token, for error messages ("" when it drew one).
inline std::string describe_failure(const TokenDraw& d, const TokenDrawRequest& r, index_t rows) {
  switch (d.status) {
    case TokenDrawStatus::Drawn:
      return "";
    case TokenDrawStatus::NotDrawn:
      return "no draw was made";
    case TokenDrawStatus::NonFiniteLogit:
      return fmt::format("the logit of token {} is not finite", d.nonfinite);
    case TokenDrawStatus::NoAllowedToken:
      return "the sampling mask allows no token";
    case TokenDrawStatus::RowOutOfRange:
      return fmt::format("the request asks for row {} of {} rows of logits", r.row, rows);
  }
  return "unknown draw status";
}

}  // namespace nla
