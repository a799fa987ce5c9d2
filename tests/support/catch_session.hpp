#pragma once
// Runs the Catch2 tests selected by the command line (tests/catch_session.cpp).

namespace nla::testing {
int run_catch_session(int argc, char** argv);
}
