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

// --backend cpu|cuda, in programs built with the Cuda backend: cuda puts
// every model on the GPU (in a thrust-omp build, on Thrust's OpenMP system).
inline CLI::Option* add_backend_option(CLI::App& app, std::string& backend) {
  return app
      .add_option("--backend", backend,
                  "cpu, or cuda: every model on the Cuda backend (one GPU; in a thrust-omp "
                  "build, Thrust's OpenMP system)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

}  // namespace nla::examples
