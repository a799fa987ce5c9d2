#pragma once
// A summarizer that runs an external command, e.g. a script that asks a
// strong model for the summaries (the paper's warm start used Opus).
//
// Protocol. The command is run by `/bin/sh -c`. Its stdin is one JSON line
// per row:
//   {"id": <row index>, "prefix": "...", "token_text": "..."}
// and its stdout must be one line per row, in the same order: a JSON object
// with a string "summary" (and, optionally, the row's "id", which is then
// checked), or a bare JSON string. Lines that are only whitespace are
// ignored. A non-zero exit status, a signal, a timeout, a wrong number of
// lines, a line that is not JSON or has no summary: each is an nla::Error
// naming the command and quoting the end of its stderr.
//
// Why temporary files and not pipes: with two pipes the parent would have to
// write stdin and drain stdout at once (a child that answers each line before
// reading the next fills the stdout pipe while the parent is still blocked
// writing stdin: a deadlock on big inputs). The requests are written to an
// unlinked temporary file first and stdout/stderr go to two more, so neither
// side ever waits on the other, and the only wait is for the exit status,
// which is where the timeout applies. The child runs in its own process
// group, so a timeout kills the shell and everything it started.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "nla/core/error.hpp"
#include "nla/io/file.hpp"
#include "nla/summarize/summarizer.hpp"

// POSIX: the environment handed to posix_spawn (declared by <unistd.h> only
// with _GNU_SOURCE; the same C-linkage declaration again is harmless).
extern "C" char** environ;

namespace nla {

struct CommandOptions {
  std::string command;                   // run as `/bin/sh -c <command>`
  double timeout_seconds = 0.0;          // per run of the command; 0: no limit
  std::size_t batch_size = 0;            // rows per run; 0: all rows in one run
  std::size_t stderr_tail_bytes = 2000;  // how much of stderr an error quotes

  void check() const {
    NLA_CHECK(!command.empty(), "CommandSummarizer", "the command is empty");
    NLA_CHECK(timeout_seconds >= 0.0 && std::isfinite(timeout_seconds), "CommandSummarizer",
              "timeout_seconds {} must be finite and >= 0 (0: no limit)", timeout_seconds);
  }
};

namespace command_detail {

constexpr const char* kOp = "CommandSummarizer";

// An anonymous temporary file: created, unlinked at once, closed with the
// object; the descriptor is close-on-exec, so only the dup2 into the child
// shares it.
inline io::FileDescriptor anonymous_file(const char* what) {
  std::string pattern = (std::filesystem::temp_directory_path() / "nla_command_XXXXXX").string();
  io::FileDescriptor fd(::mkostemp(pattern.data(), O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    NLA_FAIL(kOp, "cannot create a temporary file for the command's {} in '{}': {}", what, pattern,
             io::errno_text(err));
  }
  ::unlink(pattern.c_str());
  return fd;
}

// Everything in the file from offset 0.
inline std::string read_whole(int fd, const char* what) {
  constexpr std::size_t kChunkBytes = std::size_t{1} << 16;
  std::string text;
  for (;;) {
    const std::size_t old_size = text.size();
    text.resize(old_size + kChunkBytes);
    const ssize_t got = io::read_at(fd, &text[old_size], kChunkBytes, old_size);
    if (got < 0) {
      const int err = errno;
      NLA_FAIL(kOp, "cannot read the command's {} back: {}", what, io::errno_text(err));
    }
    text.resize(old_size + static_cast<std::size_t>(got));
    if (static_cast<std::size_t>(got) < kChunkBytes) return text;
  }
}

// The last `bytes` bytes of stderr, trimmed, for error messages.
inline std::string tail(std::string_view text, std::size_t bytes) {
  while (!text.empty() && summarize_detail::is_space(text.back())) text.remove_suffix(1);
  std::string out;
  if (text.size() > bytes) {
    text = text.substr(text.size() - bytes);
    out = "...";
  }
  out += text;
  return out.empty() ? "(empty)" : out;
}

// The output and exit status of one run.
struct RunResult {
  std::string out;
  std::string err;
  int status = 0;  // as from waitpid
};

// Runs `/bin/sh -c command` with `input` on stdin; kills its process group
// and throws when it runs longer than timeout_seconds (> 0).
inline RunResult run_command(const CommandOptions& options, const std::string& input) {
  io::FileDescriptor in = anonymous_file("stdin");
  io::FileDescriptor out = anonymous_file("stdout");
  io::FileDescriptor err = anonymous_file("stderr");
  // pwrite at offset 0 leaves the shared file offset at 0 for the child.
  if (!input.empty() && !io::write_all(in.get(), input.data(), input.size(), 0)) {
    const int e = errno;
    NLA_FAIL(kOp, "cannot write the requests to a temporary file: {}", io::errno_text(e));
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attributes);
  ::posix_spawn_file_actions_adddup2(&actions, in.get(), STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, out.get(), STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, err.get(), STDERR_FILENO);
  // Own process group (killable as a whole); default SIGPIPE and an empty
  // signal mask, whatever the caller's process set for itself.
  sigset_t default_signals, empty_mask;
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);
  sigemptyset(&empty_mask);
  ::posix_spawnattr_setflags(
      &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  ::posix_spawnattr_setpgroup(&attributes, 0);
  ::posix_spawnattr_setsigdefault(&attributes, &default_signals);
  ::posix_spawnattr_setsigmask(&attributes, &empty_mask);
  std::string command = options.command;
  char shell[] = "sh";
  char dash_c[] = "-c";
  char* argv[] = {shell, dash_c, command.data(), nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attributes);
  NLA_CHECK(spawned == 0, kOp, "cannot start '/bin/sh -c {}': {}", options.command,
            io::errno_text(spawned));

  // Poll for the exit with a growing sleep (1 ms to 20 ms) when there is a
  // deadline; block otherwise.
  using Clock = std::chrono::steady_clock;
  const bool limited = options.timeout_seconds > 0.0;
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(limited ? options.timeout_seconds : 0.0));
  long sleep_ns = 1'000'000;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, limited ? WNOHANG : 0);
    if (r == pid) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      NLA_FAIL(kOp, "waiting for '{}' failed: {}", options.command, io::errno_text(e));
    }
    if (Clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      NLA_FAIL(kOp, "command '{}' did not finish within {} s and was killed; stderr: {}",
               options.command, options.timeout_seconds,
               tail(read_whole(err.get(), "stderr"), options.stderr_tail_bytes));
    }
    const timespec pause{0, sleep_ns};
    ::nanosleep(&pause, nullptr);
    sleep_ns = std::min(sleep_ns * 2, 20'000'000L);
  }
  return {read_whole(out.get(), "stdout"), read_whole(err.get(), "stderr"), status};
}

// The summary on one output line; `id` is the row index it must answer.
inline std::string parse_line(const std::string& line, std::size_t line_number, std::size_t id,
                              const CommandOptions& options, const std::string& err) {
  const auto excerpt = [&line] { return line.size() > 200 ? line.substr(0, 200) + "..." : line; };
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    NLA_FAIL(kOp, "line {} of the output of '{}' is not JSON ({}): {}; stderr: {}", line_number,
             options.command, e.what(), excerpt(), tail(err, options.stderr_tail_bytes));
  }
  if (value.is_string()) return value.get<std::string>();
  NLA_CHECK(value.is_object() && value.contains("summary") && value["summary"].is_string(), kOp,
            "line {} of the output of '{}' is neither a JSON string nor an object with a string "
            "\"summary\": {}",
            line_number, options.command, excerpt());
  if (value.contains("id"))
    NLA_CHECK(value["id"].is_number_unsigned() && value["id"].get<std::size_t>() == id, kOp,
              "line {} of the output of '{}' has id {}, expected {} (one line per row, in "
              "order)",
              line_number, options.command, value["id"].dump(), id);
  return value["summary"].get<std::string>();
}

}  // namespace command_detail

class CommandSummarizer : public Summarizer {
 public:
  explicit CommandSummarizer(CommandOptions options) : options_(std::move(options)) {
    options_.check();
  }

  std::string name() const override { return "command"; }
  const CommandOptions& options() const { return options_; }

  // The stdin line for row `id` (see the protocol at the top).
  static std::string request_line(const nlohmann::json& row, std::size_t id) {
    nlohmann::json request = {{"id", id},
                              {"prefix", row_string(row, "prefix", command_detail::kOp)},
                              {"token_text", row_string(row, "token_text", command_detail::kOp)}};
    // Invalid UTF-8 in a prefix becomes U+FFFD rather than an exception.
    return request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
  }

  std::vector<std::string> summarize(const std::vector<nlohmann::json>& rows) override {
    std::vector<std::string> summaries;
    summaries.reserve(rows.size());
    const std::size_t batch = options_.batch_size == 0 ? rows.size() : options_.batch_size;
    for (std::size_t begin = 0; begin < rows.size(); begin += batch)
      run_batch(rows, begin, std::min(rows.size(), begin + batch), summaries);
    return summaries;
  }

 private:
  // Appends the summaries of rows [begin, end) to `summaries`.
  void run_batch(const std::vector<nlohmann::json>& rows, std::size_t begin, std::size_t end,
                 std::vector<std::string>& summaries) const {
    using command_detail::kOp;
    using command_detail::tail;
    std::string input;
    for (std::size_t i = begin; i < end; ++i) input += request_line(rows[i], i);
    const command_detail::RunResult run = command_detail::run_command(options_, input);

    if (WIFSIGNALED(run.status)) {
      const int signal = WTERMSIG(run.status);
      NLA_FAIL(kOp, "command '{}' was killed by signal {} ({}); stderr: {}", options_.command,
               signal, ::strsignal(signal), tail(run.err, options_.stderr_tail_bytes));
    }
    const int code = WIFEXITED(run.status) ? WEXITSTATUS(run.status) : -1;
    if (code != 0) {
      const char* hint = code == 127   ? " (command not found)"
                         : code == 126 ? " (command not executable)"
                                       : "";
      NLA_FAIL(kOp, "command '{}' exited with status {}{}; stderr: {}", options_.command, code,
               hint, tail(run.err, options_.stderr_tail_bytes));
    }

    std::vector<std::string> lines;
    std::size_t start = 0;
    std::vector<std::size_t> line_numbers;
    for (std::size_t number = 1; start < run.out.size(); ++number) {
      std::size_t stop = run.out.find('\n', start);
      if (stop == std::string::npos) stop = run.out.size();
      std::string line = run.out.substr(start, stop - start);
      start = stop + 1;
      if (std::all_of(line.begin(), line.end(), summarize_detail::is_space)) continue;
      lines.push_back(std::move(line));
      line_numbers.push_back(number);
    }
    NLA_CHECK(lines.size() == end - begin, kOp,
              "command '{}' wrote {} summary lines for {} rows (one per row expected); stderr: {}",
              options_.command, lines.size(), end - begin,
              tail(run.err, options_.stderr_tail_bytes));
    for (std::size_t k = 0; k < lines.size(); ++k)
      summaries.push_back(
          command_detail::parse_line(lines[k], line_numbers[k], begin + k, options_, run.err));
  }

  CommandOptions options_;
};

}  // namespace nla
