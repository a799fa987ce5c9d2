#pragma once
// POSIX file I/O shared by the readers and writers of files (checkpoints,
// tokenizer files): an owning file descriptor, reads and writes that retry on
// EINTR, whole-file reads, and atomic replacement of a file.
//
// Every error is an nla::Error that names the op and the file, with a noun the
// caller picks: "load_checkpoint: checkpoint 'x.ckpt': cannot open: <errno
// text>", "BpeTokenizer::from_hf_json: file 'tokenizer.json': empty file".
//
// An atomic write writes `path + ".tmp.<pid>"`, fsyncs it, renames it over
// `path` and fsyncs the directory, so a crash or a full disk leaves either the
// old file or the new one, never a torn one, and the rename itself is durable.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "nla/core/error.hpp"

namespace nla::io {

// Throws nla::Error(op, "<noun> '<path>': <message>").
template <class... Args>
[[noreturn]] void file_error(const char* op, std::string_view noun, const std::string& path,
                             fmt::format_string<Args...> format, Args&&... args) {
  throw Error(
      op, fmt::format("{} '{}': ", noun, path) + fmt::format(format, std::forward<Args>(args)...));
}

inline std::string errno_text(int err) {
  return std::strerror(err);
}

// Owns a file descriptor; close() reports the error that ::close returns.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&&) = delete;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int close() { return ::close(std::exchange(fd_, -1)); }

 private:
  int fd_;
};

// Writes all n bytes at the file offset (or at `offset` when >= 0); on failure
// returns false with errno set.
inline bool write_all(int fd, const void* data, std::size_t n, off_t offset = -1) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t written = offset >= 0 ? ::pwrite(fd, p, n, offset) : ::write(fd, p, n);
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += written;
    n -= static_cast<std::size_t>(written);
    if (offset >= 0) offset += written;
  }
  return true;
}

// Reads up to n bytes at `offset`; returns the count (short only at end of
// file), or -1 with errno set.
inline ssize_t read_at(int fd, void* data, std::size_t n, std::uint64_t offset) {
  char* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return static_cast<ssize_t>(done);
}

// A regular file open for reading, and its size when it was opened.
struct RegularFile {
  FileDescriptor fd;
  std::uint64_t bytes;
};

// Opens `path` for reading; throws unless it is a regular file.
inline RegularFile open_regular_file(const char* op, std::string_view noun,
                                     const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    file_error(op, noun, path, "cannot open: {}", errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    file_error(op, noun, path, "cannot stat: {}", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) file_error(op, noun, path, "not a regular file");
  return {std::move(fd), static_cast<std::uint64_t>(st.st_size)};
}

// The whole content of a regular file; throws if it is empty. Reads to the end
// of the file rather than trusting the size from stat.
inline std::string read_file(const char* op, std::string_view noun, const std::string& path) {
  constexpr std::size_t kChunkBytes = std::size_t{1} << 16;
  const RegularFile file = open_regular_file(op, noun, path);
  std::string text;
  for (;;) {
    const std::size_t old_size = text.size();
    text.resize(old_size + kChunkBytes);
    const ssize_t got = read_at(file.fd.get(), &text[old_size], kChunkBytes, old_size);
    if (got < 0) {
      const int err = errno;
      file_error(op, noun, path, "cannot read: {}", errno_text(err));
    }
    text.resize(old_size + static_cast<std::size_t>(got));
    if (static_cast<std::size_t>(got) < kChunkBytes) break;
  }
  if (text.empty()) file_error(op, noun, path, "empty file (0 bytes)");
  return text;
}

// The open temporary file of write_file_atomically, as its writer sees it (a
// view: write_file_atomically owns the descriptor and removes the file).
class TemporaryFile {
 public:
  TemporaryFile(int fd, const std::string& path, const char* op, std::string_view noun,
                const std::string& target)
      : fd_(fd), path_(path), op_(op), noun_(noun), target_(target) {}
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;

  int fd() const { return fd_; }
  // The temporary file's own path, `target + ".tmp.<pid>"`.
  const std::string& path() const { return path_; }

  // Writes all n bytes at the file offset (or at `offset` when >= 0); throws
  // "cannot write temporary file '<path>': <errno text>" on failure.
  void write(const void* data, std::size_t n, off_t offset = -1) const {
    if (!write_all(fd_, data, n, offset)) fail_errno("write");
  }

  // Throws "cannot <what> temporary file '<path>': <text of errno>".
  [[noreturn]] void fail_errno(const char* what) const {
    const int err = errno;
    file_error(op_, noun_, target_, "cannot {} temporary file '{}': {}", what, path_,
               errno_text(err));
  }

 private:
  int fd_;
  const std::string& path_;
  const char* op_;
  std::string_view noun_;
  const std::string& target_;
};

// Replaces `path` atomically (see the top of this file) with what
// writer(const TemporaryFile&) writes. On any failure, an exception from the
// writer included, the temporary file is removed and whatever was at `path`
// is untouched; an exception from the writer propagates unchanged.
template <class Writer>
void write_file_atomically(const char* op, std::string_view noun, const std::string& path,
                           Writer&& writer) {
  // Removes the temporary file unless the rename committed it.
  class Guard {
   public:
    explicit Guard(const std::string& temp_path) : temp_path_(temp_path) {}
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() {
      if (!committed_) ::unlink(temp_path_.c_str());
    }
    void commit() { committed_ = true; }

   private:
    const std::string& temp_path_;
    bool committed_ = false;
  };

  const std::string temp_path = path + ".tmp." + std::to_string(::getpid());
  FileDescriptor fd(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  const TemporaryFile temp(fd.get(), temp_path, op, noun, path);  // leaves errno as it is
  if (fd.get() < 0) temp.fail_errno("create");
  Guard guard(temp_path);
  std::forward<Writer>(writer)(temp);
  if (::fsync(fd.get()) != 0) temp.fail_errno("sync");
  if (fd.close() != 0) temp.fail_errno("close");
  if (::rename(temp_path.c_str(), path.c_str()) != 0) {
    const int err = errno;
    file_error(op, noun, path, "cannot rename temporary file '{}' over it: {}", temp_path,
               errno_text(err));
  }
  guard.commit();
  // Make the rename durable. Some file systems cannot sync a directory
  // (EINVAL); the file itself is already synced there.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  FileDescriptor dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0 || (::fsync(dir_fd.get()) != 0 && errno != EINVAL)) {
    const int err = errno;
    file_error(op, noun, path, "written, but cannot sync directory '{}': {}", dir, errno_text(err));
  }
}

// Replaces `path` atomically with `text` (configs, indexes, pointers).
inline void write_text_atomically(const char* op, std::string_view noun, const std::string& path,
                                  std::string_view text) {
  write_file_atomically(op, noun, path,
                        [&](const TemporaryFile& f) { f.write(text.data(), text.size()); });
}

}  // namespace nla::io
