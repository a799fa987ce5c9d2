#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "nla/io/jsonl.hpp"
#include "support/temp_dir.hpp"

using namespace nla;

TEST_CASE("JSONL lines survive invalid UTF-8 in sampled text", "[io]") {
  testing::TempDir dir("jsonl");
  const std::string path = dir.file("log.jsonl");
  {
    JsonlWriter log(path);
    log.write({{"step", 1}, {"said", std::string("ok \xF5\x80 end")}});
    log.write({{"step", 2}, {"said", "plain"}});
  }
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  const auto first = nlohmann::json::parse(line);
  REQUIRE(first["step"] == 1);
  REQUIRE(first["said"].get<std::string>() == "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
  std::getline(in, line);
  REQUIRE(nlohmann::json::parse(line)["said"] == "plain");
}
