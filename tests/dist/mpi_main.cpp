// The MPI test suite's main: one MpiCommunicator for the whole run (every
// rank runs every test in the same order), and a rank's failures fail the
// job: the exit status is the number of ranks with a failing test.
#include "dist/mpi_world.hpp"
#include "support/catch_session.hpp"

namespace nla::testing {
namespace {
MpiCommunicator* world_instance = nullptr;
}
MpiCommunicator& world() {
  return *world_instance;
}
}  // namespace nla::testing

int main(int argc, char** argv) {
  nla::MpiCommunicator comm;
  comm.set_timeout(120);
  nla::testing::world_instance = &comm;
  const int failed = nla::testing::run_catch_session(argc, argv) != 0 ? 1 : 0;
  std::int64_t failed_ranks = failed;
  nla::all_reduce_sum(comm, &failed_ranks, 1);
  return int(failed_ranks);
}
