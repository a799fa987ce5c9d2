// The Catch2 implementation, compiled once and linked into every test
// binary. Catch::Session is declared only where the implementation is, so
// the binaries' mains (tests/main.cpp, tests/dist/mpi_main.cpp) run the
// tests through run_catch_session.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/catch_session.hpp"

int nla::testing::run_catch_session(int argc, char** argv) {
  return Catch::Session().run(argc, argv);
}
