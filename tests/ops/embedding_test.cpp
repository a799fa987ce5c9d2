#include <catch2/catch.hpp>
#include <nla/nla.hpp>

#include "support/gradcheck.hpp"

using namespace nla;
using namespace nla::testing;

TEST_CASE("embedding lookup, positional accumulate, scatter-add backward", "[ops][gradcheck]") {
  Cpu cpu;
  auto table = random_tensor<double>(Shape{7, 5}, 1),
       pos_table = random_tensor<double>(Shape{4, 5}, 2);
  Tensor<std::int32_t, Cpu> ids(Shape{6}), pos(Shape{6});
  const std::int32_t id_values[6] = {3, 0, 3, 6, 3, 1};  // repeats exercise the scatter-add
  for (int i = 0; i < 6; ++i) {
    ids.data()[i] = id_values[i];
    pos.data()[i] = i % 4;
  }
  auto r = random_tensor<double>(Shape{6, 5}, 3);
  TensorD y(Shape{6, 5}), dtable(table.shape()), dpos(pos_table.shape());
  auto loss = [&] {
    embedding_forward(cpu, y.view(), ids.view(), table.view());
    embedding_forward(cpu, y.view(), pos.view(), pos_table.view(), true);
    return dot(y, r);
  };
  loss();
  REQUIRE(y.data()[2 * 5 + 1] == table.data()[3 * 5 + 1] + pos_table.data()[2 * 5 + 1]);
  zero(cpu, dtable.view());
  zero(cpu, dpos.view());
  embedding_backward(cpu, dtable.view(), ids.view(), r.view());
  embedding_backward(cpu, dpos.view(), pos.view(), r.view());
  gradcheck("dtable", table, dtable, loss);
  gradcheck("dpositions", pos_table, dpos, loss);
}

TEST_CASE("embedding rejects out-of-range ids, naming the index and value", "[ops][errors]") {
  Cpu cpu;
  TensorD table(Shape{7, 5}), y(Shape{2, 5});
  Tensor<std::int32_t, Cpu> ids(Shape{2});
  ids.data()[0] = 1;
  ids.data()[1] = 7;
  REQUIRE_THROWS_WITH(embedding_forward(cpu, y.view(), ids.view(), table.view()),
                      Catch::Contains("ids[1] = 7") && Catch::Contains("[0, 7)"));
  ids.data()[1] = -2;
  REQUIRE_THROWS_AS(embedding_backward(cpu, table.view(), ids.view(), y.view()), nla::Error);
}
