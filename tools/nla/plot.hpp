#pragma once
// `nla plot`: keys of a JSONL log against a step key, one line per key, drawn
// by gnuplot into a PNG. Records lacking a key are skipped for that key
// (evaluation records interleave with per-step ones). The PNG is written
// under a temporary name and renamed into place.

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/core/shape.hpp"

namespace nla::cli {

// Returns the number of points drawn.
// phase: when not empty, only records whose "phase" is it (a run's log holds
// the warm start and RL, each counting steps from 1).
inline index_t plot_jsonl(const std::string& log, const std::string& png,
                          const std::vector<std::string>& keys, const std::string& x,
                          const std::string& phase = "") {
  namespace fs = std::filesystem;
  const char* op = "nla plot";
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  std::ifstream in(log);
  NLA_CHECK(in.good(), op, "cannot read '{}'", log);
  std::string line;
  for (index_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json r;
    try {
      r = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      NLA_FAIL(op, "{}:{}: not JSON ({})", log, n, e.what());
    }
    if (!r.is_object() || !r.contains(x) || !r[x].is_number()) continue;
    if (!phase.empty() && r.value("phase", "") != phase) continue;
    for (const std::string& k : keys)
      if (r.contains(k) && r[k].is_number())
        series[k].emplace_back(r[x].get<double>(), r[k].get<double>());
  }
  const fs::path tmp = fs::temp_directory_path() / fmt::format("nla_plot_{}", ::getpid());
  fs::create_directories(tmp);
  std::string plots;
  index_t points = 0;
  for (const std::string& k : keys) {
    NLA_CHECK(!series[k].empty(), op, "no '{}' values against '{}' in {}{}", k, x, log,
              phase.empty() ? "" : " (phase " + phase + ")");
    const fs::path dat = tmp / fmt::format("{}.dat", plots.size());
    std::ofstream out(dat);
    for (const auto& [a, b] : series[k]) out << fmt::format("{} {}\n", a, b);
    points += index_t(series[k].size());
    if (!plots.empty()) plots += ", ";
    plots += fmt::format("'{}' using 1:2 with lines lw 2 title '{}'", dat.string(), k);
  }
  const std::string partial = png + ".tmp";
  const std::string script = fmt::format(
      "set terminal pngcairo size 900,540 noenhanced\nset output '{}'\nset title '{}'\n"
      "set xlabel '{}'\nset grid\nset key outside right\nplot {}\n",
      partial, fs::path(log).filename().string() + (phase.empty() ? "" : ", " + phase), x, plots);
  FILE* gp = ::popen("gnuplot 2>&1", "w");
  NLA_CHECK(gp != nullptr, op, "cannot start gnuplot (scripts/install-deps.sh installs it)");
  std::fputs(script.c_str(), gp);
  const int status = ::pclose(gp);
  fs::remove_all(tmp);
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || !fs::exists(partial)) {
    fs::remove(partial);
    NLA_FAIL(op, "gnuplot failed (status {}) drawing '{}'; is gnuplot installed?", status, png);
  }
  fs::rename(partial, png);
  return points;
}

}  // namespace nla::cli
