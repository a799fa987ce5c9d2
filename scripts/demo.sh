#!/usr/bin/env bash
# The main demo: a natural language autoencoder trained end to end on the CPU.
#   scripts/demo.sh [extra tiny_nla flags, e.g. --seed 7 --centre]
# 1. train_target trains the target model on the synthetic world for 1,000
#    steps (skipped when runs/target.ckpt exists; delete it to retrain), about
#    2.5 minutes on 2 cores (longer training teaches the rhyme better but moves
#    the object out of the extraction layer, see README);
# 2. tiny_nla extracts activations, warm-starts the verbalizer and the
#    reconstructor, runs joint RL, evaluates on the test split, explains with
#    confidence and steers; it ends with one JSON line and writes
#    runs/nla.jsonl, runs/nla.fve.png and runs/nla.reward.png.
# Installs missing Debian packages first.
# scripts/demo.sh --tiny-lm runs the small language-model demo instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=build

bash scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNLA_BUILD_EXAMPLES=ON
mkdir -p runs
if [[ "${1:-}" == "--tiny-lm" ]]; then
  shift
  cmake --build "$build" -j "$(nproc)" --target train_tiny_lm nla_cli
  "$build/examples/train_tiny_lm" --log runs/tiny_lm.jsonl "$@"
  bash scripts/plot_metrics.sh runs/tiny_lm.jsonl runs/tiny_lm.png train_loss val_loss
  exit 0
fi
cmake --build "$build" -j "$(nproc)" --target train_target tiny_nla nla_cli
if [[ ! -f runs/target.ckpt ]]; then
  # The NLA figures in the README were measured on this target: GPT-2
  # flavour, trained briefly, so every attribute still sits at the extraction
  # layer (see train_target in the README).
  "$build/examples/train_target" --out runs/target --seed 1 --flavour gpt2 --steps 1000
fi
"$build/examples/tiny_nla" --target runs/target --world-seed 1 --out runs/nla "$@"
