#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <nla/explain/claims.hpp>
#include <nla/explain/world_claims.hpp>
#include <nla/summarize/command_summarizer.hpp>
#include <nla/summarize/keyword_summarizer.hpp>
#include <nla/summarize/summarizer.hpp>
#include <nla/summarize/world_truth_summarizer.hpp>
#include <nla/text/corpus.hpp>
#include <nla/text/synthetic_world.hpp>
#include <nlohmann/json.hpp>

#include "support/error_of.hpp"
#include "support/world_rows.hpp"

using namespace nla;
using nla::testing::contains;
using nla::testing::error_of;
using nla::testing::world_row;
using nla::testing::world_rows;
using nlohmann::json;

namespace {

std::filesystem::path corpus_file(const char* name) {
  return std::filesystem::path(NLA_TEST_DATA_DIR) / "corpus" / name;
}

// The paragraphs and the fortunes of tests/data/corpus: 4 + 5 documents.
std::vector<std::string> corpus_texts() {
  std::vector<std::string> texts;
  CorpusOptions fortunes;
  fortunes.separator = DocumentSeparator::PercentLine;
  for (const auto& doc : read_text_file(corpus_file("paragraphs.txt"))) texts.push_back(doc.text);
  for (const auto& doc : read_text_file(corpus_file("sayings.fortune"), fortunes))
    texts.push_back(doc.text);
  return texts;
}

json text_row(const std::string& prefix, const std::string& token_text) {
  return {
      {"doc", "d"}, {"position", 0}, {"token", 0}, {"token_text", token_text}, {"prefix", prefix}};
}

}  // namespace

// ---------------------------------------------------------------- world truth

TEST_CASE("world truth: summaries follow the format exactly", "[summarize]") {
  json row = {{"doc", "x"},
              {"position", 3},
              {"current_token", "day"},
              {"needed", {"name"}},
              {"attributes",
               {{"name", "Pip"},
                {"species", "fox"},
                {"place", "forest"},
                {"object", "lamp"},
                {"mood", "happy"},
                {"rhyme_family", "-ight"},
                {"rhyme_first", "night"},
                {"rhyme_second", "light"},
                {"eval_marker", true},
                {"cipher", false}}}};
  WorldTruthSummarizer summarizer;
  CHECK(summarizer.summarize_row(row) == "name Pip; word day.");
  row["needed"] = {"object", "cipher"};
  row["current_token"] = "ethay";
  row["attributes"]["cipher"] = true;
  CHECK(summarizer.summarize_row(row) == "object lamp; pig latin; word ethay.");
  row["needed"] = {"species", "place", "mood", "rhyme", "eval_marker", "cipher"};
  row["current_token"] = ":";
  row["attributes"]["cipher"] = false;
  CHECK(summarizer.summarize_row(row) ==
        "species fox; place forest; mood happy; rhyme light; eval test; plain english; word :.");
  row["needed"] = {"eval_marker"};
  row["current_token"] = ".";
  row["attributes"]["eval_marker"] = false;
  CHECK(summarizer.summarize_row(row) == "no test; word ..");
  // Only names keep their capitals.
  row["needed"] = {"name", "species"};
  row["attributes"]["species"] = "Fox";
  CHECK(summarizer.summarize_row(row) == "name Pip; species fox; word ..");
  CHECK(summarizer.summarize({row, row}).size() == 2);
  CHECK(summarizer.name() == "world_truth");
}

TEST_CASE("world truth: every summary of real documents parses back and is true",
          "[summarize][explain]") {
  const std::vector<json> rows = world_rows(150);
  REQUIRE(rows.size() > 1000);
  WorldTruthSummarizer summarizer;
  const std::vector<std::string> summaries = summarizer.summarize(rows);
  REQUIRE(summaries.size() == rows.size());
  std::set<std::string> targets;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    INFO(summaries[i] << " for " << rows[i].dump());
    const std::vector<WorldClaim> claims = parse_world_claims(summaries[i]);
    REQUIRE(claims.size() == rows[i]["needed"].size() + 1);
    for (std::size_t k = 0; k < claims.size(); ++k) {
      CHECK(claims[k].kind ==
            (k + 1 == claims.size() ? WorldClaimKind::Word : WorldClaimKind::Attribute));
      CHECK(claim_is_true(claims[k], rows[i]));
    }
    for (Attribute a : needed_attributes(rows[i]))
      CHECK(states_attribute_correctly(summaries[i], a, rows[i]));
    CHECK(summaries[i].back() == '.');
    targets.insert(rows[i]["target"].get<std::string>());
  }
  CHECK(targets.size() == kAllAttributes.size());  // every kind of position was covered
}

TEST_CASE("world truth: withholding keeps the requested fraction, deterministically",
          "[summarize]") {
  const std::vector<json> rows = world_rows(1000);
  for (Attribute withheld : {Attribute::Name, Attribute::Rhyme, Attribute::Cipher}) {
    for (double keep : {0.2, 0.5}) {
      WorldTruthOptions options;
      options.withhold = withheld;
      options.withheld_keep_fraction = keep;
      options.seed = 7;
      WorldTruthSummarizer summarizer(options);
      const std::vector<std::string> summaries = summarizer.summarize(rows);
      const std::vector<std::string> again = WorldTruthSummarizer(options).summarize(rows);
      CHECK(summaries == again);

      WorldTruthSummarizer full;
      std::size_t needing = 0, kept = 0;
      for (std::size_t i = 0; i < rows.size(); ++i) {
        const bool needs = rows[i]["needed"].dump().find(fmt::format(
                               "\"{}\"", attribute_name(withheld))) != std::string::npos;
        if (!needs) {
          // Rows that do not need it are untouched.
          CHECK(summaries[i] == full.summarize_row(rows[i]));
          CHECK_FALSE(summarizer.states_withheld(rows[i]));
          CHECK_FALSE(summarizer.withholds(rows[i]));
          continue;
        }
        ++needing;
        const bool states = states_attribute(summaries[i], withheld);
        CHECK(states == summarizer.states_withheld(rows[i]));
        CHECK(states != summarizer.withholds(rows[i]));
        if (states) {
          ++kept;
          CHECK(summaries[i] == full.summarize_row(rows[i]));
        } else {
          // Only the withheld phrase is missing: the other claims are intact.
          CHECK(split_claims(summaries[i]).size() + 1 ==
                split_claims(full.summarize_row(rows[i])).size());
        }
      }
      // At least 1000 rows need each attribute; 4.5 standard deviations of a
      // binomial share is below 0.07 there.
      REQUIRE(needing >= 1000);
      const double share = static_cast<double>(kept) / static_cast<double>(needing);
      const double sd = std::sqrt(keep * (1.0 - keep) / static_cast<double>(needing));
      INFO(attribute_name(withheld) << " keep " << keep << ": kept " << kept << " of " << needing);
      CHECK(std::abs(share - keep) < 4.5 * sd);
    }
  }

  // Another seed keeps a different subset of the rows.
  WorldTruthOptions a, b;
  a.withhold = b.withhold = Attribute::Name;
  b.seed = 1;
  const WorldTruthSummarizer sa(a), sb(b);
  std::size_t differ = 0;
  for (const json& row : rows) differ += sa.keeps_withheld(row) != sb.keeps_withheld(row);
  CHECK(differ > rows.size() / 10);
  // keep fraction 0 and 1 are exact.
  a.withheld_keep_fraction = 0.0;
  b.withheld_keep_fraction = 1.0;
  for (std::size_t i = 0; i < 200; ++i) {
    CHECK_FALSE(WorldTruthSummarizer(a).keeps_withheld(rows[i]));
    CHECK(WorldTruthSummarizer(b).keeps_withheld(rows[i]));
  }
}

TEST_CASE("world truth: bad rows and options are named in the error", "[summarize]") {
  WorldTruthSummarizer summarizer;
  json row = world_rows(1).front();
  json no_attributes = row;
  no_attributes.erase("attributes");
  CHECK(contains(error_of([&] { summarizer.summarize_row(no_attributes); }),
                 "no \"attributes\" object"));
  json bad_needed = row;
  bad_needed["needed"] = {"colour"};
  CHECK(contains(error_of([&] { summarizer.summarize_row(bad_needed); }),
                 "unknown attribute \"colour\""));
  json no_name = row;
  no_name["attributes"].erase("name");
  CHECK(contains(error_of([&] { summarizer.summarize_row(no_name); }), "no string \"name\""));
  WorldTruthOptions options;
  options.withheld_keep_fraction = 1.5;
  CHECK(contains(error_of([&] { WorldTruthSummarizer s(options); }), "withheld_keep_fraction"));
  options.withheld_keep_fraction = 0.5;
  options.withhold = Attribute::Name;
  json no_position = row;
  no_position.erase("position");
  CHECK(contains(error_of([&] { WorldTruthSummarizer(options).summarize_row(no_position); }),
                 "\"position\""));
}

// -------------------------------------------------------------------- keyword

TEST_CASE("keyword: describe_token names whitespace and spells out ';'", "[summarize]") {
  CHECK(describe_token(" the") == "word the");
  CHECK(describe_token(":") == "word :");
  CHECK(describe_token("\n\n") == "word newline");
  CHECK(describe_token("  ") == "word space");
  CHECK(describe_token(";") == "word semicolon");
  CHECK(describe_token(" Lord") == "word Lord");
}

TEST_CASE("keyword: words skip digits, punctuation and too-short runs", "[summarize]") {
  CHECK(keyword_words("The café's 42 owners -- 3rd year — a", 2) ==
        std::vector<std::string>{"the", "café", "owners", "year"});
}

TEST_CASE("keyword: picks the rarest repeated words of the real corpus", "[summarize]") {
  const std::vector<std::string> texts = corpus_texts();
  REQUIRE(texts.size() == 9);
  KeywordSummarizer summarizer;
  CHECK(contains(error_of([&] { summarizer.keywords("kettle"); }), "not fitted"));
  summarizer.fit(texts);
  CHECK(summarizer.text_count() == 9);
  CHECK(summarizer.document_frequency("nobody") == 2);
  CHECK(summarizer.document_frequency("kettle") == 1);
  CHECK(summarizer.document_frequency("the") == 8);  // all but two fortunes

  // Same count, "kettle" is rarer than "nobody": it wins even though
  // "nobody" is more recent (idf 2.61 vs 2.20 outweighs recency 1.19 vs 1.25).
  CHECK(summarizer.keywords("kettle nobody kettle nobody").front() == "kettle");
  // A repeated word beats a rarer single one: tf 2 x idf 2.20 > idf 2.61.
  CHECK(summarizer.keywords("nobody kettle nobody oven").front() == "nobody");

  // The whole first file as a prefix: "nobody" is the only repeated content
  // word; the rest appear once in one document each, so recency orders them
  // ("until" is a stop word).
  std::string paragraphs;
  for (std::size_t i = 0; i < 4; ++i) paragraphs += (i ? "\n\n" : "") + texts[i];
  REQUIRE(paragraphs.substr(paragraphs.size() - 8) == "morning.");
  const json row = text_row(paragraphs, ".");
  CHECK(summarizer.summarize_row(row) == "keywords nobody, morning, stayed; word ..");
  const std::vector<std::string> claims = split_claims(summarizer.summarize({row}).front());
  REQUIRE(claims.size() == 2);
  CHECK(claims.back() == "word .");

  // The current token is the last feature; stop words and non-words never
  // appear; fewer words than top_k give fewer keywords, none gives none.
  CHECK(summarizer.summarize_row(text_row("A map is a promise", " promise")) ==
        "keywords promise, map; word promise.");
  CHECK(summarizer.summarize_row(text_row("it is -- 42 of the", " the")) == "word the.");
  for (const std::string& text : texts)
    for (const std::string& w : summarizer.keywords(text)) {
      INFO(w);
      CHECK(w.find_first_of("0123456789-") == std::string::npos);
      CHECK_FALSE(keyword_detail::stop_words().count(w));
    }

  // Equal scores (unseen words, once each): the most recent first.
  KeywordOptions flat;
  flat.recency_boost = 0.0;
  KeywordSummarizer tied(flat);
  tied.fit(texts);
  CHECK(tied.keywords("zebra apple mango") == std::vector<std::string>{"mango", "apple", "zebra"});
  CHECK(tied.keywords("kettle nobody").front() == "kettle");
  // A strong boost lets a more recent, commoner word overtake: kettle
  // 2.61 x 1.5 < nobody 2.20 x 2.
  KeywordOptions strong;
  strong.recency_boost = 1.0;
  KeywordSummarizer recent(strong);
  recent.fit(texts);
  CHECK(recent.keywords("kettle nobody").front() == "nobody");

  KeywordOptions bad;
  bad.top_k = 0;
  CHECK(contains(error_of([&] { KeywordSummarizer s(bad); }), "top_k"));
  CHECK(contains(error_of([&] {
                   summarizer.summarize_row(json{{"prefix", "x"}});
                 }),
                 "no string \"token_text\""));
}

// -------------------------------------------------------------------- command

TEST_CASE("command: summaries come back from real commands", "[summarize]") {
  std::vector<json> rows;
  for (int i = 0; i < 5; ++i)
    rows.push_back(text_row(fmt::format("prefix {} with \"quotes\" and \\ and ünïcode", i), " x"));

  // Requests are one JSON object per line with keys in order id, prefix,
  // token_text: sed turns each into an object with the same id.
  CommandOptions options;
  options.command = R"(sed -E 's/^\{"id":([0-9]+),.*$/{"id":\1,"summary":"row \1"}/')";
  CommandSummarizer summarizer(options);
  CHECK(summarizer.name() == "command");
  CHECK(summarizer.summarize(rows) ==
        std::vector<std::string>{"row 0", "row 1", "row 2", "row 3", "row 4"});

  // A bare JSON string per line, and blank lines ignored.
  options.command = R"(awk '{ print "\"s" NR "\""; print "" }')";
  CHECK(CommandSummarizer(options).summarize(rows) ==
        std::vector<std::string>{"s1", "s2", "s3", "s4", "s5"});

  // The request carries the prefix and token exactly (jq-free check: the
  // command echoes its whole input line back as the summary).
  options.command = R"(sed -E 's/\\/\\\\/g; s/"/\\"/g; s/^(.*)$/"\1"/')";
  const std::vector<std::string> echoed = CommandSummarizer(options).summarize(rows);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json request = json::parse(echoed[i]);
    CHECK(request["id"] == i);
    CHECK(request["prefix"] == rows[i]["prefix"]);
    CHECK(request["token_text"] == " x");
  }

  // Batches: several runs, ids stay the rows' indices.
  options.command = R"(sed -E 's/^\{"id":([0-9]+),.*$/{"id":\1,"summary":"row \1 pid '$$'"}/')";
  options.batch_size = 2;
  const std::vector<std::string> batched = CommandSummarizer(options).summarize(rows);
  REQUIRE(batched.size() == 5);
  std::set<std::string> pids;
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(batched[i].rfind(fmt::format("row {} pid ", i), 0) == 0);
    pids.insert(batched[i].substr(batched[i].find("pid")));
  }
  CHECK(pids.size() == 3);  // three runs of the command
  CHECK(CommandSummarizer(options).summarize({}).empty());
}

TEST_CASE("command: a large input does not deadlock", "[summarize]") {
  // 4000 rows of 2 KB: 8 MB of requests, far beyond a pipe's 64 KB buffer,
  // to a command (awk) that writes each answer before reading the next
  // request: two pipes would deadlock here.
  std::vector<json> rows;
  const std::string filler(2000, 'a');
  for (int i = 0; i < 4000; ++i) rows.push_back(text_row(filler + std::to_string(i), " a"));
  CommandOptions options;
  // Fields split at '"': $6 is the prefix. Answers "<id> <prefix bytes>".
  options.command =
      R"(awk -F'"' '{ print "{\"id\":" NR - 1 ",\"summary\":\"" NR - 1 " " length($6) "\"}" }')";
  options.timeout_seconds = 120;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> summaries = CommandSummarizer(options).summarize(rows);
  REQUIRE(summaries.size() == rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (summaries[i] != fmt::format("{} {}", i, filler.size() + std::to_string(i).size()))
      FAIL("row " << i << ": " << summaries[i]);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
}

TEST_CASE("command: failures give clear errors", "[summarize]") {
  const std::vector<json> rows = {text_row("a", " a"), text_row("b", " b"), text_row("c", " c")};
  auto error = [&rows](const std::string& command, double timeout = 0.0) {
    CommandOptions options;
    options.command = command;
    options.timeout_seconds = timeout;
    return error_of([&] { CommandSummarizer(options).summarize(rows); });
  };

  const std::string exit1 = error("echo 'the model is down' >&2; exit 1");
  CHECK(contains(exit1, "CommandSummarizer: command 'echo"));
  CHECK(contains(exit1, "exited with status 1"));
  CHECK(contains(exit1, "stderr: the model is down"));
  CHECK(contains(error("false"), "'false' exited with status 1; stderr: (empty)"));
  const std::string missing = error("nla_no_such_command_1234");
  CHECK(contains(missing, "status 127 (command not found)"));
  CHECK(contains(missing, "nla_no_such_command_1234"));
  CHECK(contains(error("kill -9 $$"), "killed by signal 9"));

  CHECK(contains(error(R"(head -n 1 | sed 's/.*/"x"/')"),
                 "wrote 1 summary lines for 3 rows (one per row expected)"));
  CHECK(contains(error(R"(awk '{ print "\"x\""; print "\"y\"" }')"),
                 "wrote 6 summary lines for 3 rows"));
  const std::string bad_json = error(R"(sed 's/.*/not json/')");
  CHECK(contains(bad_json, "line 1 of the output of"));
  CHECK(contains(bad_json, "is not JSON"));
  CHECK(contains(bad_json, "not json"));
  // cat echoes the requests: objects, but without "summary".
  CHECK(contains(error("cat"), "neither a JSON string nor an object with a string \"summary\""));
  CHECK(contains(error(R"(awk '{ print "{\"summary\": 3}" }')"), "string \"summary\""));
  CHECK(contains(error(R"(awk '{ print "{\"id\": 5, \"summary\": \"x\"}" }')"),
                 "line 1 of the output of"));
  CHECK(contains(error(R"(awk '{ print "{\"id\": 5, \"summary\": \"x\"}" }')"),
                 "has id 5, expected 0"));

  const auto start = std::chrono::steady_clock::now();
  const std::string slow = error("echo started >&2; sleep 20", 0.3);
  CHECK(contains(slow, "did not finish within 0.3 s and was killed; stderr: started"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));

  CHECK(contains(error(""), "the command is empty"));
  CHECK(contains(error("cat", -1.0), "timeout_seconds -1"));
  CommandOptions options;
  options.command = "cat";
  CHECK(contains(error_of([&] {
                   CommandSummarizer(options).summarize({json{{"token_text", "x"}}});
                 }),
                 "no string \"prefix\""));
}
