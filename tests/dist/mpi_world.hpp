#pragma once
// The communicator of the MPI test suite (tests/dist/mpi_main.cpp) and a
// scratch directory every rank of it shares.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "nla/dist/mpi_communicator.hpp"

namespace nla::testing {

MpiCommunicator& world();

// A fresh directory named by rank 0 and removed by it, the same on every rank.
class SharedTempDir {
 public:
  explicit SharedTempDir(const std::string& name) {
    std::string mine;
    if (world().rank() == 0) {
      mine = (std::filesystem::temp_directory_path() /
              ("nla_mpi_test_" + std::to_string(::getpid()) + "_" + name))
                 .string();
      std::filesystem::remove_all(mine);
      std::filesystem::create_directories(mine);
    }
    const auto all =
        all_gather_sequences(world(), std::vector<std::uint8_t>(mine.begin(), mine.end()));
    path_ = std::string(all[0].begin(), all[0].end());
  }
  SharedTempDir(const SharedTempDir&) = delete;
  SharedTempDir& operator=(const SharedTempDir&) = delete;
  ~SharedTempDir() {
    world().barrier();
    std::error_code ec;
    if (world().rank() == 0) std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace nla::testing
