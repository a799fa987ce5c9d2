// Token draws on the backend (core/token_draw.hpp, ops/token_draw.hpp)
// against the host reference of rl/sampling.hpp.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "nla/nla.hpp"

using namespace nla;

namespace {

// The reference draw: the full sampling law on the host, then an inverse-CDF
// draw, as Generator does under top-k / top-p.
TokenDraw reference_draw(const std::vector<float>& z, double temperature,
                         const std::vector<std::int32_t>& allowed, double u) {
  SamplingOptions o;
  o.temperature = temperature;
  o.allowed_tokens = allowed;
  return sample_token(z.data(), index_t(z.size()), o, u);
}

std::vector<std::uint8_t> mask_of(const std::vector<std::int32_t>& allowed, index_t vocab) {
  std::vector<std::uint8_t> mask(allowed.empty() ? 0 : vocab, 0);
  for (std::int32_t t : allowed) mask[t] = 1;
  return mask;
}

// Runs `count` lanes of one row as host threads, in lockstep at every
// collective, so the chunked multi-lane algorithm of a GPU warp (chunk sums,
// exclusive scan, min/max over lanes) is checked without a GPU.
class ThreadLanes {
 public:
  struct Shared {
    int count;
    std::mutex mutex;
    std::condition_variable cv;
    int arrived = 0;
    std::uint64_t generation = 0;
    std::vector<double> values;

    explicit Shared(int n) : count(n), values(std::size_t(n)) {}

    void arrive_and_wait() {
      std::unique_lock<std::mutex> lock(mutex);
      const std::uint64_t mine = generation;
      if (++arrived == count) {
        arrived = 0;
        ++generation;
        cv.notify_all();
      } else {
        cv.wait(lock, [&] { return generation != mine; });
      }
    }
    // Every lane publishes x and gets every lane's value; the second barrier
    // keeps the next round's writes after this round's reads.
    std::vector<double> exchange(int lane, double x) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        values[std::size_t(lane)] = x;
      }
      arrive_and_wait();
      std::vector<double> all;
      {
        std::lock_guard<std::mutex> lock(mutex);
        all = values;
      }
      arrive_and_wait();
      return all;
    }
  };

  int lane, count;
  Shared* shared;

  template <class A>
  A sum(A x) const {
    double s = 0;
    for (double v : shared->exchange(lane, double(x))) s += v;
    return A(s);
  }
  template <class A>
  A max(A x) const {
    const auto all = shared->exchange(lane, double(x));
    return A(*std::max_element(all.begin(), all.end()));
  }
  template <class A>
  A min(A x) const {
    const auto all = shared->exchange(lane, double(x));
    return A(*std::min_element(all.begin(), all.end()));
  }
  template <class A>
  A exclusive_scan(A x) const {
    const auto all = shared->exchange(lane, double(x));
    double s = 0;
    for (int l = 0; l < lane; ++l) s += all[std::size_t(l)];
    return A(s);
  }
};

TokenDraw threaded_draw(const std::vector<float>& z, const std::uint8_t* mask, double temperature,
                        double u, int lanes) {
  ThreadLanes::Shared shared(lanes);
  std::vector<TokenDraw> out(static_cast<std::size_t>(lanes));
  std::vector<std::thread> threads;
  for (int l = 0; l < lanes; ++l)
    threads.emplace_back([&, l] {
      out[std::size_t(l)] = draw_token_in_row(z.data(), index_t(z.size()), mask, temperature, u,
                                              ThreadLanes{l, lanes, &shared});
    });
  for (auto& t : threads) t.join();
  for (const TokenDraw& d : out) REQUIRE(d.token == out[0].token);  // every lane agrees
  return out[0];
}

std::vector<float> random_logits(index_t vocab, std::uint64_t seed, double scale) {
  std::vector<float> z(static_cast<std::size_t>(vocab));
  for (index_t i = 0; i < vocab; ++i)
    z[i] = float(scale * random_normal(seed, 1, std::uint64_t(i)));
  return z;
}

}  // namespace

TEST_CASE("a one-lane token draw is the host reference's, bit for bit", "[ops][sampling]") {
  const index_t vocab = 300;
  std::vector<double> scratch(static_cast<std::size_t>(vocab));
  for (double temperature : {0.0, 0.6, 1.0, 1.7}) {
    for (bool masked : {false, true}) {
      std::vector<std::int32_t> allowed;
      if (masked)
        for (std::int32_t t = 3; t < vocab; t += 7) allowed.push_back(t);
      const auto mask = mask_of(allowed, vocab);
      for (std::uint64_t trial = 0; trial < 200; ++trial) {
        const auto z = random_logits(vocab, trial, 3.0);
        const double u = random_uniform(11, trial, 0);
        CAPTURE(temperature, masked, trial);
        const TokenDraw want = reference_draw(z, temperature, allowed, u);
        // Without scratch the CDF walk recomputes the weights; with it, it
        // reads them: the same numbers either way.
        for (double* weights : {static_cast<double*>(nullptr), scratch.data()}) {
          const TokenDraw got = draw_token_in_row(z.data(), vocab, masked ? mask.data() : nullptr,
                                                  temperature, u, RowLanes{0, 1}, weights);
          REQUIRE(got.token == want.token);
          REQUIRE(got.status == TokenDrawStatus::Drawn);
          REQUIRE(got.logprob == want.logprob);
          REQUIRE(got.model_logprob == want.model_logprob);
        }
      }
    }
  }
}

TEST_CASE("a multi-lane token draw (chunks, scan over lanes) gives the reference's token",
          "[ops][sampling]") {
  // 7 lanes leave a short last chunk; 32 is a warp; 40 lanes over 37 tokens
  // leave lanes with empty chunks.
  for (int lanes : {7, 32}) {
    for (index_t vocab : {index_t(37), index_t(500)}) {
      for (double temperature : {0.0, 1.0, 0.8}) {
        std::vector<std::int32_t> allowed = {2, 5, 30, 31, 36};
        for (bool masked : {false, true}) {
          const auto mask = mask_of(masked ? allowed : std::vector<std::int32_t>{}, vocab);
          for (std::uint64_t trial = 0; trial < 12; ++trial) {
            const auto z = random_logits(vocab, 100 + trial, 2.0);
            const double u = random_uniform(5, trial, std::uint64_t(lanes));
            CAPTURE(lanes, vocab, temperature, masked, trial);
            const TokenDraw want =
                reference_draw(z, temperature, masked ? allowed : std::vector<std::int32_t>{}, u);
            const TokenDraw got =
                threaded_draw(z, masked ? mask.data() : nullptr, temperature, u, lanes);
            REQUIRE(got.token == want.token);
            REQUIRE(got.logprob == Approx(want.logprob).margin(1e-6));
            REQUIRE(got.model_logprob == Approx(want.model_logprob).margin(1e-6));
          }
        }
      }
    }
  }
  const auto z = random_logits(37, 3, 1.0);
  const TokenDraw d = threaded_draw(z, nullptr, 1.0, 0.5, 40);
  REQUIRE(d.token == reference_draw(z, 1.0, {}, 0.5).token);
}

TEST_CASE("a token draw never returns a token of zero mass", "[ops][sampling]") {
  // u beyond the total mass (rounding) must give the last token with mass,
  // never a masked one after it.
  std::vector<float> z = {0.0f, 1.0f, 2.0f, 0.5f};
  const std::vector<std::uint8_t> mask = {1, 1, 0, 0};
  const double u = std::nextafter(1.0, 0.0);
  for (int lanes : {1, 3}) {
    const TokenDraw d = lanes == 1
                            ? draw_token_in_row(z.data(), 4, mask.data(), 1.0, u, RowLanes{0, 1})
                            : threaded_draw(z, mask.data(), 1.0, u, lanes);
    REQUIRE(d.token == 1);
  }
}

TEST_CASE("a token draw reports a non-finite logit or an empty mask instead of drawing",
          "[ops][sampling]") {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> z = {0.0f, 1.0f, bad, 2.0f, bad};
    for (int lanes : {1, 2}) {
      const TokenDraw d = lanes == 1
                              ? draw_token_in_row(z.data(), 5, nullptr, 1.0, 0.3, RowLanes{0, 1})
                              : threaded_draw(z, nullptr, 1.0, 0.3, lanes);
      REQUIRE(d.token == -1);
      REQUIRE(d.status == TokenDrawStatus::NonFiniteLogit);
      REQUIRE(d.nonfinite == 2);
      REQUIRE(describe_failure(d, {}, 1) == "the logit of token 2 is not finite");
    }
  }
  const std::vector<float> z = {0.0f, 1.0f};
  const std::vector<std::uint8_t> none = {0, 0};
  const TokenDraw d = draw_token_in_row(z.data(), 2, none.data(), 1.0, 0.3, RowLanes{0, 1});
  REQUIRE(d.token == -1);
  REQUIRE(d.status == TokenDrawStatus::NoAllowedToken);
  REQUIRE(describe_failure(d, {}, 1) == "the sampling mask allows no token");
}

TEST_CASE("draw_tokens draws every request from its row and rejects bad arguments",
          "[ops][sampling]") {
  Cpu cpu;
  const index_t rows = 3, vocab = 50;
  Tensor<float, Cpu> logits(Shape{rows, vocab});
  for (index_t i = 0; i < logits.size(); ++i)
    logits.data()[i] = float(2 * random_normal(9, 2, std::uint64_t(i)));
  Tensor<TokenDrawRequest, Cpu> requests(Shape{4});
  const TokenDrawRequest wanted[] = {{2, 7, 0}, {0, 7, 1}, {2, 8, 0}, {1, 0, 5}};
  std::copy(std::begin(wanted), std::end(wanted), requests.data());
  Tensor<TokenDraw, Cpu> out(Shape{4});
  draw_tokens<float>(cpu, out.view(), logits.view(), requests.view(), 21, 1.0, {});
  for (index_t i = 0; i < 4; ++i) {
    const TokenDrawRequest& r = wanted[i];
    const std::vector<float> row(logits.data() + r.row * vocab,
                                 logits.data() + (r.row + 1) * vocab);
    const TokenDraw want = reference_draw(row, 1.0, {}, random_uniform(21, r.stream, r.index));
    CHECK(out.data()[i].token == want.token);
    CHECK(out.data()[i].logprob == want.logprob);
  }

  // A row the logits do not have is reported in its record; the others draw.
  for (index_t bad_row : {index_t(3), index_t(-1)}) {
    requests.data()[3].row = bad_row;
    draw_tokens<float>(cpu, out.view(), logits.view(), requests.view(), 21, 1.0, {});
    REQUIRE(out.data()[3].status == TokenDrawStatus::RowOutOfRange);
    REQUIRE(out.data()[3].token == -1);
    REQUIRE(describe_failure(out.data()[3], requests.data()[3], rows) ==
            fmt::format("the request asks for row {} of 3 rows of logits", bad_row));
    for (index_t i = 0; i < 3; ++i) REQUIRE(out.data()[i].status == TokenDrawStatus::Drawn);
  }
  requests.data()[3].row = 0;
  REQUIRE_THROWS_WITH(
      draw_tokens<float>(cpu, out.view(), logits.view(), requests.view(), 1, -1.0, {}),
      Catch::Contains("temperature -1"));
  Tensor<std::uint8_t, Cpu> short_mask(Shape{vocab - 1});
  REQUIRE_THROWS_WITH(draw_tokens<float>(cpu, out.view(), logits.view(), requests.view(), 1, 1.0,
                                         short_mask.view()),
                      Catch::Contains("mask has 49 entries for a vocabulary of 50"));
  Tensor<TokenDraw, Cpu> too_few(Shape{3});
  REQUIRE_THROWS_WITH(
      draw_tokens<float>(cpu, too_few.view(), logits.view(), requests.view(), 1, 1.0, {}),
      Catch::Contains("out has 3 entries for 4 requests"));
}
