// The Catch2 implementation, compiled once and linked into every test
// binary; each binary has its own main (tests/main.cpp, tests/dist/mpi_main.cpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
