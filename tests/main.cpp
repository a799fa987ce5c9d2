// The main of the Catch2 test binaries (the implementation: catch_session.cpp).
#include "support/catch_session.hpp"

int main(int argc, char** argv) {
  return nla::testing::run_catch_session(argc, argv);
}
