#!/usr/bin/env bash
# Runs every `nla` subcommand on tiny fixtures and checks results, messages
# and exit statuses (0 success, 2 bad usage, 1 failure).
#   test_cli.sh NLA_BINARY SOURCE_DIR WORLD_TARGET_PREFIX WORK_DIR
set -uo pipefail
nla="$1" src="$2" world="$3" work="$4"
hf="$src/tests/data/hf"
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
failures=0

# expect STATUS REGEX -- COMMAND...: the command's exit status must be STATUS
# and its stdout + stderr must match REGEX (grep -E).
expect() {
  local status="$1" regex="$2"
  shift 3
  local out rc
  out="$("$@" 2>&1)"
  rc=$?
  if [[ $rc -ne $status ]] || ! grep -Eq -- "$regex" <<<"$out"; then
    echo "FAIL: $* -> exit $rc (want $status), output:"
    echo "$out" | tail -n 5
    echo "  (wanted /$regex/)"
    failures=$((failures + 1))
  else
    echo "ok: ${*:2:2} ... -> $rc"
  fi
}

# Help everywhere.
for sub in extract "train sft" "train rl" explain reconstruct steer eval plot; do
  # shellcheck disable=SC2086
  expect 0 "Usage:.*$sub" -- "$nla" $sub --help
done
expect 2 "A subcommand is required|subcommand" -- "$nla"

# The pipeline on the synthetic world's smoke target.
expect 0 '"command":"extract","count":[1-9]' -- \
  "$nla" extract --model "$world" --world-seed 5 --out acts --documents 12
expect 2 'no warm-start checkpoint in fresh: run `nla train sft --out fresh` first' -- \
  "$nla" train rl --model "$world" --data acts --out fresh --steps 2 --batch 2 --group 4
expect 0 '"command":"train sft"' -- \
  "$nla" train sft --model "$world" --data acts --out run --steps 4 --batch 4 \
  --checkpoint-every 2 --withhold rhyme --seed 3
echo '{"steps": 6, "batch": 4, "checkpoint-every": 2}' > sft.json
expect 0 '"command":"train sft".*"steps":6' -- \
  "$nla" train sft --model "$world" --data acts --out run --config sft.json --resume --seed 3
expect 2 'already ran 6 of --steps 6; raise --steps' -- \
  "$nla" train sft --model "$world" --data acts --out run --config sft.json --resume --seed 3
expect 0 '"command":"train rl".*"steps":2' -- \
  "$nla" train rl --model "$world" --data acts --out run --steps 2 --batch 2 --group 4 \
  --max-tokens 8 --checkpoint-every 1
expect 2 'already of the rl phase' -- \
  "$nla" train rl --model "$world" --data acts --out run --steps 3 --batch 2 --group 4
expect 0 '"command":"train rl".*"steps":3' -- \
  "$nla" train rl --model "$world" --data acts --out run --steps 3 --batch 2 --group 4 \
  --max-tokens 8 --resume
expect 2 'RL in run already ran 3 of --steps 3' -- \
  "$nla" train rl --model "$world" --data acts --out run --steps 3 --batch 2 --group 4 \
  --max-tokens 8 --resume
expect 0 '"claims":\[.*"explanations":\[' -- \
  "$nla" explain --nla run/release --data acts --count 2 --samples 3 --max-tokens 6
expect 0 '"norm":[0-9.]+,"text":"name Pip","vector":\[' -- \
  "$nla" reconstruct --nla run/release --text "name Pip" --text "place cave" --npy rec.npy
[[ -s rec.npy ]] || { echo "FAIL: reconstruct wrote no rec.npy"; failures=$((failures + 1)); }
expect 0 '"alpha":1.0,"continuation"' -- \
  "$nla" steer --model "$world" --nla run/release --prompt "Pip the fox lived in the" \
  --original "place cave" --edited "place forest" --alphas 0,1 --max-new-tokens 3
expect 0 '"command":"eval".*"fve":.*"per_attribute":\{"cipher"' -- \
  "$nla" eval --nla run/release --data acts --max-tokens 6
expect 0 '"command":"plot","png":"fve.png","points":[1-9]' -- \
  "$nla" plot --log run/log.jsonl --out fve.png --keys fve,av_loss
expect 0 '"command":"plot","png":"rl.png","points":3' -- \
  "$nla" plot --log run/log.jsonl --out rl.png --keys fve --phase rl
expect 1 "no 'av_loss' values against 'step' in run/log.jsonl \(phase rl\)" -- \
  "$nla" plot --log run/log.jsonl --out rl.png --keys av_loss --phase rl
[[ -s fve.png ]] || { echo "FAIL: plot wrote no fve.png"; failures=$((failures + 1)); }

# A Hugging Face checkpoint: text extraction, and a forward hook's .npy import.
printf 'The fox found a lamp.\n\nIn the forest the cat saw the night.\n\nDigits 12 and 345.\n' > text.txt
expect 0 '"command":"extract".*"d_model":32' -- \
  "$nla" extract --model "$hf/gpt2" --text text.txt --split train --out hf_acts \
  --per-document 2 --min-position 2
expect 0 '"command":"extract","count":24,"d_model":32' -- \
  "$nla" extract --from-npy "$hf/gpt2/hidden_states_1.npy" --model "$hf/gpt2" --layer 0 \
  --out new/dir/imported

# Bad usage: exit 2, with the reason.
expect 2 'steps: Value -3 not in range|-3' -- "$nla" train sft --model "$world" --data acts \
  --out run --steps -3
expect 2 'The following argument was not expected: --nonsense|nonsense' -- \
  "$nla" extract --model "$world" --out x --nonsense
expect 2 '--out is required' -- "$nla" extract --model "$world"
expect 2 'needs --layer' -- "$nla" extract --from-npy "$hf/gpt2/hidden_states_1.npy" --out x
expect 2 'marked needs the synthetic world' -- \
  "$nla" extract --model "$hf/gpt2" --text text.txt --positions marked --out x
expect 2 'reconstruct needs --text or --file' -- "$nla" reconstruct --nla run/release
echo '{"stepz": 4}' > bad.json
expect 2 'stepz' -- "$nla" train sft --model "$world" --data acts --out run --config bad.json
echo '{"steps": ' > broken.json
expect 1 "config file 'broken.json': not valid JSON" -- \
  "$nla" train sft --model "$world" --data acts --out run --config broken.json
# Bad files: exit 1, naming the file and the fault.
expect 1 "neither a Hugging Face directory" -- "$nla" extract --model /nonexistent --out x
expect 1 "nla_meta.json': cannot open" -- "$nla" explain --nla /nonexistent --data acts
printf 'garbage' > broken.npy
expect 1 "broken.npy" -- "$nla" extract --from-npy broken.npy --n-layers 4 --layer 1 --out x
cp acts.json wrong.json && sed -i 's/"layer": 2/"layer": 1/; s/"stream": 3/"stream": 2/' wrong.json
cp acts.npy wrong.npy && cp acts.jsonl wrong.jsonl
expect 1 "the NLA explains d_model 128 at layer 2, the dataset holds d_model 128 at layer 1" -- \
  "$nla" eval --nla run/release --data wrong
printf '{"step": 1}\nnot json\n' > bad.jsonl
expect 1 'bad.jsonl:2: not JSON' -- "$nla" plot --log bad.jsonl --out x.png --keys fve

if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
