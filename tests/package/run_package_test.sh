#!/usr/bin/env bash
# Proves that an outside project can use nla both ways (tests/package/consumer):
#   a) installed: cmake --install BUILD_DIR, then find_package(nla) from the prefix;
#   b) vendored:  add_subdirectory(SOURCE_DIR) in the consumer's tree.
# Each mode configures, builds and runs the consumer, which prints the logits
# shape of one forward pass of a tiny GPT-2.
#   run_package_test.sh BUILD_DIR SOURCE_DIR [CXX_COMPILER] [CMAKE_GENERATOR]
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR [CXX_COMPILER] [CMAKE_GENERATOR]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
cxx=${3:-}
generator=${4:-}
consumer="$source_dir/tests/package/consumer"
work="$build_dir/package-test"
cmake=${CMAKE:-cmake}  # ctest passes the cmake that configured the build
rm -rf "$work"
mkdir -p "$work"

# One translation unit at -O0: the point is that it compiles, links and runs.
common=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0")
[ -n "$cxx" ] && common+=("-DCMAKE_CXX_COMPILER=$cxx")
[ -n "$generator" ] && common+=(-G "$generator")

check_output() {  # mode, output of the consumer
  echo "$2"
  if ! grep -q '^logits shape \[2, 5, 32\]$' <<<"$2"; then
    echo "run_package_test.sh: $1: unexpected consumer output" >&2
    exit 1
  fi
}

echo "== find_package(nla) from an install prefix"
"$cmake" --install "$build_dir" --prefix "$work/prefix"
for f in include/nla/nla.hpp share/cmake/nla/nlaConfig.cmake \
         share/cmake/nla/nlaConfigVersion.cmake share/cmake/nla/nlaTargets.cmake; do
  [ -f "$work/prefix/$f" ] || { echo "run_package_test.sh: $f was not installed" >&2; exit 1; }
done
# Every header of the source tree is installed.
missing=$(cd "$source_dir/include" && find nla -type f | while read -r h; do
  [ -f "$work/prefix/include/$h" ] || echo "$h"; done)
if [ -n "$missing" ]; then
  echo "run_package_test.sh: headers not installed:" $missing >&2
  exit 1
fi
"$cmake" -S "$consumer" -B "$work/find_package" "${common[@]}" "-DCMAKE_PREFIX_PATH=$work/prefix"
"$cmake" --build "$work/find_package" -j 1
check_output find_package "$("$work/find_package/nla_consumer")"

echo "== add_subdirectory(nla)"
"$cmake" -S "$consumer" -B "$work/add_subdirectory" "${common[@]}" \
      "-DNLA_SOURCE_DIR=$source_dir" -DNLA_ENABLE_CUDA=OFF
"$cmake" --build "$work/add_subdirectory" -j 1
check_output add_subdirectory "$("$work/add_subdirectory/nla_consumer")"

echo "package test passed"
