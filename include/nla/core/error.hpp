#pragma once
// nla::Error and NLA_CHECK: every precondition the library checks throws one
// error type whose message names the op, the argument and the bad value.

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace nla {

class Error : public std::runtime_error {
 public:
  Error(std::string op, std::string what)
      : std::runtime_error(op + ": " + what), op_(std::move(op)) {}
  // The op (or module, or file) that raised the error, e.g. "linear_forward".
  const std::string& op() const noexcept { return op_; }

 private:
  std::string op_;
};

namespace detail {
template <class... Args>
[[noreturn]] void throw_error(const char* op, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(op, fmt::format(format, std::forward<Args>(args)...));
}
}  // namespace detail

}  // namespace nla

// NLA_CHECK(cond, "op", "format {}", args...): throws nla::Error("op: message")
// when cond is false. The message is only formatted on failure.
#define NLA_CHECK(cond, op, ...)                              \
  do {                                                        \
    if (!(cond)) ::nla::detail::throw_error(op, __VA_ARGS__); \
  } while (false)

#define NLA_FAIL(op, ...) ::nla::detail::throw_error(op, __VA_ARGS__)
