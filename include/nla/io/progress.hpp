#pragma once
// A one-line progress report for long loops, redrawn in place on a terminal
// (and printed as plain lines when stderr is a file):
//   step 120/600 20% | loss 2.314 | 8.1k tok/s | 0:14 elapsed, ETA 0:55
// The rate is over the whole run so far; ETA = remaining / rate.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace nla {

inline std::string format_duration(double seconds) {
  const long s = seconds < 0 ? 0 : long(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  // total: number of steps; units: what `work` counts (e.g. "tok").
  Progress(long total, std::string units, double min_interval_s = 0.5)
      : total_(total),
        units_(std::move(units)),
        interval_(min_interval_s),
        tty_(isatty(fileno(stderr))),
        start_(Clock::now()),
        last_(start_) {}

  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  // After step `done` (1-based) with `work` units so far; `extra` is printed
  // after the step counter (e.g. "loss 2.314").
  void update(long done, double work, const std::string& extra, bool force = false) {
    const auto now = Clock::now();
    if (!force && done < total_ && std::chrono::duration<double>(now - last_).count() < interval_)
      return;
    last_ = now;
    const double t = elapsed(), rate = t > 0 ? work / t : 0.0;
    const double eta = done > 0 ? t * double(total_ - done) / double(done) : 0.0;
    const std::string line =
        fmt::format("step {}/{} {:3.0f}% | {} | {} {}/s | {} elapsed, ETA {}", done, total_,
                    100.0 * double(done) / double(total_ > 0 ? total_ : 1), extra, human(rate),
                    units_, format_duration(t), format_duration(eta));
    std::fprintf(stderr, tty_ ? "\r\033[K%s" : "%s\n", line.c_str());
    if (tty_ && done >= total_) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  static std::string human(double x) {
    return x >= 1e6   ? fmt::format("{:.2f}M", x / 1e6)
           : x >= 1e3 ? fmt::format("{:.1f}k", x / 1e3)
                      : fmt::format("{:.0f}", x);
  }

  long total_;
  std::string units_;
  double interval_;
  bool tty_;
  Clock::time_point start_, last_;
};

}  // namespace nla
