#include <catch2/catch.hpp>

#include "nla/nla.hpp"
#include "nla/text/world_tokens.hpp"

using namespace nla;

TEST_CASE("world documents tokenize with marked positions on token boundaries", "[text]") {
  SyntheticWorld world;
  std::vector<std::string> corpus;
  for (std::uint64_t i = 0; i < 300; ++i) corpus.push_back(world.generate(Split::Train, i).text);
  BpeTrainOptions o;
  o.vocab_size = 400;
  const auto tokenizer = BpeTokenizer::train(corpus, o);
  for (std::uint64_t i = 0; i < 100; ++i) {
    const WorldDocument doc = world.generate(Split::Test, i);
    const TokenizedDocument td = tokenize_world_document(tokenizer, doc);
    REQUIRE(td.tokens.front() == tokenizer.bos_id());
    REQUIRE(td.tokens.back() == tokenizer.eos_id());
    REQUIRE(tokenizer.decode(td.tokens, true) == doc.text);
    REQUIRE(td.marked.size() == doc.marked.size());
    for (std::size_t m = 0; m < doc.marked.size(); ++m) {
      // Tokens 1..marked decode to exactly the prefix the position describes.
      const auto k = std::size_t(td.marked[m]);
      REQUIRE(tokenizer.decode(td.tokens.data() + 1, k) ==
              std::string(doc.prefix(doc.marked[m].offset)));
    }
  }
}
