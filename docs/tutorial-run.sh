#!/usr/bin/env bash
# Runs the command-line steps of docs/tutorial.md on the synthetic world's
# target and writes what the tutorial quotes into runs/tutorial/.
#   docs/tutorial-run.sh [BUILD_DIR]     (default build; needs runs/target.ckpt,
#                                         from build/examples/train_target --seed 1 --out runs/target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nla="${1:-build}/tools/nla"
out=runs/tutorial
mkdir -p "$out"
"$nla" extract --model runs/target --world-seed 1 --split train --documents 1500 --out runs/acts/train
"$nla" extract --model runs/target --world-seed 1 --split test --documents 200 --out runs/acts/test
"$nla" train sft --model runs/target --data runs/acts/train --out runs/nla --withhold rhyme
"$nla" train rl --model runs/target --data runs/acts/train --out runs/nla
"$nla" plot --log runs/nla/log.jsonl --out runs/nla/sft.png --keys fve,av_loss --phase sft
"$nla" plot --log runs/nla/log.jsonl --out runs/nla/rl.png --keys fve,reward_mean --phase rl
"$nla" explain --nla runs/nla/release --data runs/acts/test --count 3 --samples 8 > "$out/explain.jsonl"
"$nla" eval --nla runs/nla/release --data runs/acts/test > "$out/eval.jsonl"
"$nla" steer --model runs/target --nla runs/nla/release \
  --prompt "Pip the fox lived in the forest. One day Pip found a lamp and felt happy.
In the" --original "place forest; word the." --edited "place castle; word the." \
  --alphas 0,1,2 --max-new-tokens 2 > "$out/steer.jsonl"
