#pragma once
// Command-line options that more than one example takes.

#include <map>
#include <string>

#include <CLI/CLI.hpp>

#include "nla/text/corpus.hpp"

namespace nla::examples {

// --text-separator: how a --text file splits into documents.
inline CLI::Option* add_text_separator_option(CLI::App& app, DocumentSeparator& separator) {
  return app
      .add_option("--text-separator", separator,
                  "how --text splits into documents: blank (lines), percent (fortune files), "
                  "line, file")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, DocumentSeparator>{{"blank", DocumentSeparator::BlankLine},
                                                   {"percent", DocumentSeparator::PercentLine},
                                                   {"line", DocumentSeparator::Line},
                                                   {"file", DocumentSeparator::WholeFile}}));
}

}  // namespace nla::examples
