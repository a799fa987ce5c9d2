#include <cmath>
#include <vector>

#include <catch2/catch.hpp>
#include <nla/backend/cpu/gemm.hpp>
#include <nla/core/random.hpp>

using namespace nla;

namespace {

// A row-major [rows, cols] operand with `pad` unused elements after each row,
// so that row strides differ from widths.
template <class T>
struct Operand {
  index_t rows, cols, stride;
  std::vector<T> data;
  Operand(index_t r, index_t c, index_t pad, std::uint64_t seed)
      : rows(r), cols(c), stride(c + pad), data(static_cast<std::size_t>(r * (c + pad))) {
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = T(random_normal(seed, 0, i));
  }
  T at(index_t i, index_t j) const { return data[i * stride + j]; }
};

// C = alpha op(A) op(B) + beta C in double, from the definition.
template <class T>
std::vector<double> reference(bool ta, bool tb, index_t m, index_t n, index_t k, double alpha,
                              const Operand<T>& a, const Operand<T>& b, double beta,
                              const Operand<T>& c) {
  std::vector<double> out(static_cast<std::size_t>(m * n));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double sum = 0;
      for (index_t l = 0; l < k; ++l)
        sum += double(ta ? a.at(l, i) : a.at(i, l)) * double(tb ? b.at(j, l) : b.at(l, j));
      out[i * n + j] = alpha * sum + beta * double(c.at(i, j));
    }
  return out;
}

template <class T>
void check_against_reference(double tolerance) {
  Cpu cpu;
  std::uint64_t seed = 1;
  // m straddles cpu::kFewRows (the few-rows kernel below it, Eigen above),
  // the tiles' row counts (4) and column blocks (12); k straddles the vector
  // width, so every tail is taken.
  for (index_t m : {1, 2, 3, 5, 8, 16, 17, 33})
    for (index_t n : {1, 5, 12, 13, 29})
      for (index_t k : {1, 7, 8, 9, 33, 100})
        for (int t = 0; t < 4; ++t) {
          const bool ta = t & 1, tb = t & 2;
          const Operand<T> a(ta ? k : m, ta ? m : k, 3, seed++),
              b(tb ? n : k, tb ? k : n, 2, seed++);
          Operand<T> c(m, n, 1, seed++);
          for (double beta : {0.0, 0.5}) {
            const auto want = reference(ta, tb, m, n, k, 1.5, a, b, beta, c);
            Operand<T> got = c;
            cpu::gemm(cpu, ta, tb, m, n, k, T(1.5), a.data.data(), a.stride, b.data.data(),
                      b.stride, T(beta), got.data.data(), got.stride);
            for (index_t i = 0; i < m; ++i)
              for (index_t j = 0; j < n; ++j) {
                INFO("m " << m << " n " << n << " k " << k << " ta " << ta << " tb " << tb
                          << " beta " << beta << " at (" << i << ", " << j << ")");
                REQUIRE(double(got.at(i, j)) ==
                        Approx(want[i * n + j]).margin(tolerance * std::sqrt(double(k))));
              }
          }
        }
}

}  // namespace

TEST_CASE("gemm equals the definition for every transpose, stride and tail", "[backend]") {
  check_against_reference<float>(1e-5);
  check_against_reference<double>(1e-12);
}

TEST_CASE("a decode-sized A B^T gives each row the same bits whatever the other rows",
          "[backend]") {
  // Generation samples a sequence from its own logits: they must not change
  // with the batch around it, nor with where in a tile its row falls.
  Cpu cpu;
  const index_t k = 67, n = 41;
  const Operand<float> a(cpu::kFewRows, k, 0, 5), b(n, k, 0, 6);
  std::vector<float> batch(static_cast<std::size_t>(cpu::kFewRows * n));
  cpu::gemm(cpu, false, true, cpu::kFewRows, n, k, 1.0f, a.data.data(), k, b.data.data(), k, 0.0f,
            batch.data(), n);
  for (index_t rows : {1, 2, 3, 5})
    for (index_t first = 0; first + rows <= cpu::kFewRows; first += 3) {
      std::vector<float> part(static_cast<std::size_t>(rows * n));
      cpu::gemm(cpu, false, true, rows, n, k, 1.0f, a.data.data() + first * k, k, b.data.data(), k,
                0.0f, part.data(), n);
      for (index_t i = 0; i < rows * n; ++i) REQUIRE(part[i] == batch[first * n + i]);
    }
}
