#pragma once
// NumPy .npy files of float32 matrices: a streaming writer and a validating
// reader.
//
// Format (NumPy format version 1.0):
//   magic     "\x93NUMPY", major 1, minor 0
//   length    u16 little-endian: bytes of the header text that follows
//   header    a Python dict literal, e.g.
//             {'descr': '<f4', 'fortran_order': False, 'shape': (N, d), }
//             padded with spaces and ended by '\n'
//   data      N * d little-endian float32 values, row-major
//
// The writer does not know N until it is finished, so it writes a header of
// fixed size (kNpyHeaderBytes = 128, a multiple of 64 as NumPy aligns) whose
// shape is padded with spaces, streams rows after it, and on finish()
// rewrites the header with the real N in the same 128 bytes. The header text
// is then 118 bytes long (< 128), which matters: xtensor 0.24 reads the u16
// length through a signed char, so a length byte >= 0x80 reads wrongly there.
//
// The file is written as `path + ".tmp.<pid>.<k>"` and renamed over `path`
// by finish() (fsync of the file, rename, fsync of the directory), so a crash
// or an exception leaves either the old file or the new one. A writer
// destroyed unfinished removes its temporary file.
//
// The reader trusts nothing before it has checked the magic, the version, the
// header dict (exactly 'descr' '<f4', 'fortran_order' False and a 2-D
// 'shape'), and that the file size is header + N * d * 4 bytes. Every
// violation is an nla::Error naming the file and the fault ("truncated",
// "corrupt header", "wrong dtype", "wrong rank").

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <xtensor/xtensor.hpp>

#include "nla/core/error.hpp"
#include "nla/io/file.hpp"

namespace nla::io {

// A file written under a temporary name and committed by a rename, for
// writers that stream (io::write_file_atomically needs the whole content in
// one callback). Appends are buffered; write_at patches bytes already written.
// Destroyed uncommitted, it removes the temporary file and leaves `path` as
// it was.
class PendingFile {
 public:
  static constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

  PendingFile(const char* op, std::string noun, std::string path)
      : op_(op),
        noun_(std::move(noun)),
        path_(std::move(path)),
        temp_path_(make_temp_path(path_)),
        fd_(::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) {
    if (fd_.get() < 0) fail_errno("create");
    buffer_.reserve(kBufferBytes);
  }
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile() {
    if (!committed_) ::unlink(temp_path_.c_str());
  }

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  bool committed() const { return committed_; }
  // Bytes appended so far (buffered ones included).
  std::uint64_t size() const { return flushed_ + buffer_.size(); }

  void append(const void* data, std::size_t n) {
    check_open("append");
    const char* p = static_cast<const char*>(data);
    if (buffer_.size() + n > kBufferBytes) flush();
    if (n >= kBufferBytes) {
      write_through(p, n, -1);
      flushed_ += n;
    } else {
      buffer_.insert(buffer_.end(), p, p + n);
    }
  }

  // Overwrites n bytes at `offset`; [offset, offset + n) must lie within size().
  void write_at(std::uint64_t offset, const void* data, std::size_t n) {
    check_open("write_at");
    NLA_CHECK(offset + n <= size(), op_,
              "{} '{}': write_at [{}, {}) is beyond the {} bytes written", noun_, path_, offset,
              offset + n, size());
    flush();
    write_through(static_cast<const char*>(data), n, static_cast<off_t>(offset));
  }

  // Flushes, syncs and closes the temporary file, renames it over path() and
  // syncs the directory so the rename is durable.
  void commit() {
    check_open("commit");
    flush();
    if (::fsync(fd_.get()) != 0) fail_errno("sync");
    if (fd_.close() != 0) fail_errno("close");
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      file_error(op_, noun_, path_, "cannot rename temporary file '{}' over it: {}", temp_path_,
                 errno_text(err));
    }
    committed_ = true;
    // Some file systems cannot sync a directory (EINVAL); the file is synced.
    std::string dir = std::filesystem::path(path_).parent_path().string();
    if (dir.empty()) dir = ".";
    FileDescriptor dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() < 0 || (::fsync(dir_fd.get()) != 0 && errno != EINVAL)) {
      const int err = errno;
      file_error(op_, noun_, path_, "written, but cannot sync directory '{}': {}", dir,
                 errno_text(err));
    }
  }

 private:
  // `path.tmp.<pid>.<k>`: the counter keeps two pending files of one process apart.
  static std::string make_temp_path(const std::string& path) {
    static std::atomic<unsigned> counter{0};
    return fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
  }
  void check_open(const char* what) const {
    NLA_CHECK(!committed_, op_, "{} '{}': {} after the file was committed", noun_, path_, what);
  }
  void flush() {
    if (buffer_.empty()) return;
    write_through(buffer_.data(), buffer_.size(), -1);
    flushed_ += buffer_.size();
    buffer_.clear();
  }
  void write_through(const char* p, std::size_t n, off_t offset) {
    if (!write_all(fd_.get(), p, n, offset)) fail_errno("write");
  }
  [[noreturn]] void fail_errno(const char* what) const {
    const int err = errno;
    file_error(op_, noun_, path_, "cannot {} temporary file '{}': {}", what, temp_path_,
               errno_text(err));
  }

  const char* op_;
  std::string noun_, path_, temp_path_;
  FileDescriptor fd_;
  std::vector<char> buffer_;
  std::uint64_t flushed_ = 0;
  bool committed_ = false;
};

// Bytes before the data in the files NpyWriter writes.
inline constexpr std::size_t kNpyHeaderBytes = 128;

namespace npy_detail {

constexpr char kNoun[] = "npy file";
constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicBytes = 6;
constexpr std::size_t kPreambleBytes = kMagicBytes + 2 + 2;  // magic, version, u16 length

// The 128 bytes of a version-1.0 header for a [rows, columns] float32 matrix.
// Room: the dict is at most 51 + 2 * 20 + 2 + 1 + 3 = 97 bytes for any two
// u64 dimensions, under the 117 available before the '\n'.
inline std::string header(std::uint64_t rows, std::uint64_t columns) {
  const std::string dict =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, columns);
  const std::size_t text_bytes = kNpyHeaderBytes - kPreambleBytes;
  std::string out(kMagic, kMagicBytes);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(text_bytes & 0xff);
  out += static_cast<char>(text_bytes >> 8);
  out += dict;
  out.append(text_bytes - 1 - dict.size(), ' ');
  out += '\n';
  return out;
}

// A .npy header as read: the values of its three keys.
struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;
  std::uint64_t data_offset = 0;  // bytes before the data
};

// A parser of the Python dict literal NumPy writes: string keys; values a
// string, True/False or a tuple of integers. Whitespace anywhere between
// tokens, an optional trailing comma.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const char* op, const std::string& path)
      : s_(text), op_(op), path_(path) {}

  Header parse() {
    Header h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        h.descr = string_literal();
        seen_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        seen_fortran = true;
      } else if (key == "shape") {
        h.shape = tuple();
        seen_shape = true;
      } else {
        fail("unexpected key '{}' (expected 'descr', 'fortran_order', 'shape')", key);
      }
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}}' at header byte {}", i_);
    }
    expect('}');
    skip_space();
    if (i_ != s_.size()) fail("unexpected text after the dict at header byte {}", i_);
    if (!seen_descr) fail("missing key 'descr'");
    if (!seen_fortran) fail("missing key 'fortran_order'");
    if (!seen_shape) fail("missing key 'shape'");
    return h;
  }

 private:
  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    file_error(op_, kNoun, path_, "corrupt header: {}",
               fmt::format(format, std::forward<Args>(args)...));
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail("expected '{}' at header byte {}", c, i_);
    ++i_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string at header byte {}", i_);
    const std::size_t end = s_.find(quote, i_ + 1);
    if (end == std::string_view::npos) fail("unterminated string at header byte {}", i_);
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_space();
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    fail("expected True or False at header byte {}", i_);
  }
  std::vector<std::uint64_t> tuple() {
    std::vector<std::uint64_t> dims;
    expect('(');
    for (;;) {
      skip_space();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("expected a dimension at header byte {}", i_);
      std::uint64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const std::uint64_t digit = static_cast<std::uint64_t>(peek() - '0');
        if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10)
          fail("dimension too large at header byte {}", i_);
        v = v * 10 + digit;
        ++i_;
      }
      dims.push_back(v);
      skip_space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in the shape at header byte {}", i_);
    }
    expect(')');
    return dims;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  const char* op_;
  const std::string& path_;
};

// Reads and checks the preamble and the header dict of an open file.
inline Header read_header(const char* op, const std::string& path, const RegularFile& file) {
  unsigned char pre[12];
  if (file.bytes < kPreambleBytes)
    file_error(op, kNoun, path, "truncated: {} bytes, shorter than the {}-byte .npy preamble",
               file.bytes, kPreambleBytes);
  if (read_at(file.fd.get(), pre, sizeof(pre), 0) < static_cast<ssize_t>(kPreambleBytes)) {
    const int err = errno;
    file_error(op, kNoun, path, "cannot read the header: {}", errno_text(err));
  }
  if (std::memcmp(pre, kMagic, kMagicBytes) != 0)
    file_error(op, kNoun, path, "not a .npy file: the magic string \\x93NUMPY is missing");
  const unsigned major = pre[kMagicBytes], minor = pre[kMagicBytes + 1];
  // Version 1.0 has a u16 header length; 2.0 and 3.0 (UTF-8 header) a u32.
  std::uint64_t length_bytes = 0;
  if (major == 1 && minor == 0)
    length_bytes = 2;
  else if ((major == 2 || major == 3) && minor == 0)
    length_bytes = 4;
  else
    file_error(op, kNoun, path, "unsupported .npy format version {}.{}", major, minor);
  const std::uint64_t start = kMagicBytes + 2 + length_bytes;
  if (file.bytes < start)
    file_error(op, kNoun, path, "truncated: {} bytes, shorter than the {}-byte preamble",
               file.bytes, start);
  std::uint64_t text_bytes = 0;
  for (std::uint64_t k = 0; k < length_bytes; ++k)
    text_bytes |= static_cast<std::uint64_t>(pre[kMagicBytes + 2 + k]) << (8 * k);
  if (file.bytes < start + text_bytes)
    file_error(op, kNoun, path, "truncated: the header says it is {} bytes, the file ends after {}",
               text_bytes, file.bytes - start);
  std::string text(static_cast<std::size_t>(text_bytes), '\0');
  if (read_at(file.fd.get(), text.data(), text.size(), start) !=
      static_cast<ssize_t>(text.size())) {
    const int err = errno;
    file_error(op, kNoun, path, "cannot read the header: {}", errno_text(err));
  }
  if (text.empty() || text.back() != '\n')
    file_error(op, kNoun, path, "corrupt header: it does not end with a newline");
  Header h = HeaderParser(text, op, path).parse();
  h.data_offset = start + text_bytes;
  return h;
}

// A shape as Python writes a tuple: "()", "(3,)", "(3, 4)".
inline std::string shape_text(const std::vector<std::uint64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i)
    out += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace npy_detail

// Writes a float32 [rows, columns] .npy file row by row; rows is counted as
// they arrive. Nothing appears at `path` until finish().
class NpyWriter {
 public:
  NpyWriter(const std::string& path, std::size_t columns)
      : file_("NpyWriter", npy_detail::kNoun, path), columns_(columns) {
    NLA_CHECK(columns > 0, "NpyWriter", "npy file '{}': columns must be positive", path);
    const std::string h = npy_detail::header(0, columns_);
    file_.append(h.data(), h.size());
  }

  const std::string& path() const { return file_.path(); }
  std::size_t rows() const { return rows_; }
  std::size_t columns() const { return columns_; }
  bool finished() const { return file_.committed(); }

  // row: [columns]
  void write_row(const float* row) { write_rows(row, 1); }
  // rows: [count, columns], row-major
  void write_rows(const float* rows, std::size_t count) {
    file_.append(rows, count * columns_ * sizeof(float));
    rows_ += count;
  }

  // Rewrites the header with the row count and commits the file.
  void finish() {
    const std::string h = npy_detail::header(rows_, columns_);
    file_.write_at(0, h.data(), h.size());
    file_.commit();
  }

 private:
  PendingFile file_;
  std::size_t columns_;
  std::size_t rows_ = 0;
};

// Loads a float32 2-D .npy file, little-endian and C order, as [rows, columns].
inline xt::xtensor<float, 2> load_npy_matrix(const std::string& path) {
  const char* op = "load_npy_matrix";
  using npy_detail::kNoun;
  static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
                "float must be IEEE-754 binary32");
  const RegularFile file = open_regular_file(op, kNoun, path);
  const npy_detail::Header h = npy_detail::read_header(op, path, file);
  if (h.descr != "<f4")
    file_error(op, kNoun, path, "wrong dtype '{}', expected '<f4' (little-endian float32)",
               h.descr);
  if (h.fortran_order)
    file_error(op, kNoun, path, "fortran_order is True; only C-order (row-major) is supported");
  if (h.shape.size() != 2)
    file_error(op, kNoun, path, "wrong rank: shape {} has {} dimension(s), expected 2",
               npy_detail::shape_text(h.shape), h.shape.size());
  const std::uint64_t rows = h.shape[0], columns = h.shape[1];
  const std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max() - h.data_offset;
  if (columns != 0 && rows > max_bytes / 4 / columns)
    file_error(op, kNoun, path, "corrupt header: shape ({}, {}) is too large", rows, columns);
  const std::uint64_t data_bytes = rows * columns * 4;
  if (file.bytes < h.data_offset + data_bytes)
    file_error(op, kNoun, path,
               "truncated: shape ({}, {}) needs {} data bytes after the {}-byte header, the file "
               "has {}",
               rows, columns, data_bytes, h.data_offset, file.bytes - h.data_offset);
  if (file.bytes > h.data_offset + data_bytes)
    file_error(op, kNoun, path,
               "{} unexpected bytes after the data of shape ({}, {}) (file has {} bytes, expected "
               "{})",
               file.bytes - h.data_offset - data_bytes, rows, columns, file.bytes,
               h.data_offset + data_bytes);
  xt::xtensor<float, 2> out = xt::xtensor<float, 2>::from_shape(
      {static_cast<std::size_t>(rows), static_cast<std::size_t>(columns)});
  const ssize_t got = read_at(file.fd.get(), out.data(), data_bytes, h.data_offset);
  if (got < 0) {
    const int err = errno;
    file_error(op, kNoun, path, "cannot read the data: {}", errno_text(err));
  }
  if (static_cast<std::uint64_t>(got) != data_bytes)
    file_error(op, kNoun, path, "truncated while reading: got {} of {} data bytes", got,
               data_bytes);
  return out;
}

}  // namespace nla::io
