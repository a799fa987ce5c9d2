// Encodes text with a byte-level BPE tokenizer: each line of stdin becomes
// one line of stdout holding its token ids as a JSON array.
//
//   printf 'Hello world\n' | nla_tokenize --gpt2 build/test-data/gpt2    # [15496,995]
//   nla_tokenize --hf tokenizer.json --special < prompts.txt
//   printf '[15496,995]\n' | nla_tokenize --gpt2 DIR --decode            # Hello world
//
// A line is its bytes without the '\n' (a '\r' before it is kept). Exit codes:
// 0 success, 1 a bad or missing tokenizer file or bad input, 2 bad usage.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/text/bpe_tokenizer.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "Encode stdin line by line with a byte-level BPE tokenizer; print each line's token ids "
      "as a JSON array."};
  std::string gpt2_dir, hf_file;
  bool special = false, decode = false;
  auto* sources = app.add_option_group("tokenizer", "where the vocabulary comes from");
  sources->add_option("--gpt2", gpt2_dir, "directory with GPT-2's encoder.json and vocab.bpe")
      ->type_name("DIR");
  sources->add_option("--hf", hf_file, "Hugging Face tokenizer.json (BPE, ByteLevel)")
      ->type_name("FILE");
  sources->require_option(1);
  app.add_flag("--special", special,
               "turn special-token text such as <|endoftext|> into its id (default: plain text)");
  app.add_flag("--decode", decode, "the reverse: read JSON arrays of ids, print their text");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    const nla::BpeTokenizer tokenizer = gpt2_dir.empty() ? nla::BpeTokenizer::from_hf_json(hf_file)
                                                         : nla::BpeTokenizer::from_gpt2(gpt2_dir);
    const nla::SpecialTokenMode mode =
        special ? nla::SpecialTokenMode::kMatch : nla::SpecialTokenMode::kAsText;
    std::ios::sync_with_stdio(false);
    std::string line;
    std::vector<std::int32_t> ids;
    for (long line_number = 1; std::getline(std::cin, line); ++line_number) {
      if (decode) {
        nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (!json.is_array() || !std::all_of(json.begin(), json.end(), [](const auto& v) {
              return v.is_number_integer() && v >= INT32_MIN && v <= INT32_MAX;
            })) {
          std::cerr << "nla_tokenize: stdin line " << line_number
                    << ": expected a JSON array of token ids\n";
          return 1;
        }
        std::cout << tokenizer.decode(json.get<std::vector<std::int32_t>>()) << '\n';
      } else {
        ids.clear();
        tokenizer.encode_append(line, ids, mode);
        std::cout << nlohmann::json(ids).dump() << '\n';
      }
    }
    std::cout.flush();
    if (!std::cout) {
      std::cerr << "nla_tokenize: cannot write to stdout\n";
      return 1;
    }
  } catch (const nla::Error& e) {
    std::cerr << "nla_tokenize: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
