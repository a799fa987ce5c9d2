#pragma once
// Metrics as JSON Lines: one JSON object per line, appended and flushed per
// record, so a run that dies keeps every line it wrote and a plot script can
// read the log while training is still going.

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"

namespace nla {

class JsonlWriter {
 public:
  JsonlWriter() = default;
  // An empty path writes nothing; `append` keeps the lines of a resumed run.
  explicit JsonlWriter(const std::string& path, bool append = false) : path_(path) {
    if (path.empty()) return;
    out_.open(path, append ? std::ios::app : std::ios::trunc);
    NLA_CHECK(out_.good(), "JsonlWriter", "cannot open '{}' for writing", path);
  }

  void write(const nlohmann::json& record) {
    if (!out_.is_open()) return;
    // Sampled text can hold invalid UTF-8 (a byte-level tokenizer may stop
    // inside a character): such bytes are written as U+FFFD, not an error.
    out_ << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out_.flush();
    NLA_CHECK(out_.good(), "JsonlWriter", "write to '{}' failed", path_);
  }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace nla
