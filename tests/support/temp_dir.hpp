#pragma once
// A fresh, empty directory for one test case, removed with everything in it
// when the test case ends.

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace nla::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& name = "dir") {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() / ("nla_test_" + std::to_string(::getpid()) +
                                                      "_" + std::to_string(counter++) + "_" + name);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Names of everything in the directory.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    return names;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace nla::testing
