#include <catch2/catch.hpp>
#include <nla/nla.hpp>

using namespace nla;

TEST_CASE("shapes report size, rows and cols, and name themselves in errors", "[core]") {
  Shape s{2, 3, 4};
  REQUIRE(s.rank() == 3);
  REQUIRE(s.size() == 24);
  REQUIRE(s.rows() == 6);
  REQUIRE(s.cols() == 4);
  REQUIRE(s[-1] == 4);
  REQUIRE(s.str() == "[2, 3, 4]");
  REQUIRE_THROWS_WITH(s[3], Catch::Contains("axis 3") && Catch::Contains("[2, 3, 4]"));
  REQUIRE_THROWS_AS((Shape{1, 2, 3, 4, 5}), nla::Error);
  REQUIRE_THROWS_AS((Shape{2, -1}), nla::Error);
}

TEST_CASE("views reshape and slice without copying, and check their bounds", "[core]") {
  Tensor<float, Cpu> t(Shape{4, 6});
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = float(i);
  auto v = t.view();
  auto r = v.reshape(Shape{2, 12});
  REQUIRE(r.data() == t.data());
  auto s = v.slice(1, 3);
  REQUIRE(s.shape() == (Shape{2, 6}));
  REQUIRE(s.data()[0] == 6.0f);
  REQUIRE_THROWS_WITH(v.reshape(Shape{5, 5}),
                      Catch::Contains("[4, 6]") && Catch::Contains("[5, 5]"));
  REQUIRE_THROWS_AS(v.slice(2, 5), nla::Error);
  TensorView<const float, Cpu> c = v;  // mutable converts to const
  REQUIRE(c.data() == v.data());
}

TEST_CASE("tensor resize grows the buffer only when needed", "[core]") {
  Tensor<double, Cpu> t(Shape{8});
  const double* before = t.data();
  t.resize(Shape{2, 2});
  REQUIRE(t.data() == before);
  REQUIRE(t.size() == 4);
  t.resize(Shape{2, 4});
  REQUIRE(t.data() == before);
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
}

TEST_CASE("NLA_CHECK throws nla::Error naming the op", "[core][errors]") {
  try {
    NLA_CHECK(1 + 1 == 3, "arithmetic", "expected {} got {}", 3, 2);
    FAIL("no exception");
  } catch (const nla::Error& e) {
    REQUIRE(std::string(e.what()) == "arithmetic: expected 3 got 2");
    REQUIRE(e.op() == "arithmetic");
  }
}

TEST_CASE("check_finite names the first NaN or Inf", "[core][errors]") {
  Cpu cpu;
  Tensor<float, Cpu> t(Shape{2, 3});
  t.data()[4] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(check_finite(cpu, t.view(), "inject", "values"),
                      Catch::Contains("inject") && Catch::Contains("flat index 4"));
}

TEST_CASE("overlaps tells views that share an element from adjacent ones", "[core]") {
  Tensor<float, Cpu> t(Shape{10});
  const TensorView<float, Cpu> a(t.data(), Shape{4}), b(t.data() + 4, Shape{6}),
      c(t.data() + 3, Shape{2});
  CHECK_FALSE(overlaps(a, b));
  CHECK_FALSE(overlaps(b, a));
  CHECK(overlaps(a, c));
  CHECK(overlaps(c, b));
  CHECK(overlaps(a, a));
  CHECK_FALSE(overlaps(a, TensorView<float, Cpu>()));
}
