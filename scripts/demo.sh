#!/usr/bin/env bash
# Builds and runs the main demo: trains the tiny language model on the CPU,
# printing its loss falling and a sample, and plots the loss curve.
#   scripts/demo.sh [extra train_tiny_lm flags, e.g. --seed 7 --steps 300]
# Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=build

bash scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNLA_BUILD_EXAMPLES=ON
cmake --build "$build" -j "$(nproc)" --target train_tiny_lm
mkdir -p runs
"$build/examples/train_tiny_lm" --log runs/tiny_lm.jsonl "$@"
bash scripts/plot_metrics.sh runs/tiny_lm.jsonl runs/tiny_lm.png train_loss val_loss
