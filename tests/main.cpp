// The main of the Catch2 test binaries (the implementation: catch_session.cpp).
#include <catch2/catch.hpp>

int main(int argc, char** argv) { return Catch::Session().run(argc, argv); }
