#!/usr/bin/env bash
# ctest example.multi_gpu_nla: the NLA pipeline on 2 MPI ranks at a toy size.
# Checks the final JSON line, that rank 0 alone wrote the logs (one record per
# RL step, not one per rank), and that the RL checkpoint resumes on 1 rank.
#   test_multi_gpu_nla.sh MPIEXEC multi_gpu_nla TARGET_PREFIX OUT_DIR
set -euo pipefail
mpiexec=$1 program=$2 target=$3 out=$4
rm -rf "$out" && mkdir -p "$out"
common=(--target "$target" --world-seed 5 --train-docs 24 --test-docs 12 --sft-steps 4
        --sft-batch 8 --rl-batch 2 --anchors 2 --group 4 --max-tokens 8 --plot-script ""
        --checkpoint-every 2 --seed 2)
"$mpiexec" -n 2 --oversubscribe "$program" "${common[@]}" --rl-steps 2 --shard-optimizer \
  --out "$out/nla" | tee "$out/stdout.txt"
final=$(tail -n 1 "$out/stdout.txt")
for key in '"ranks":2' '"allreduce_share":' '"rl_samples_per_s":' '"fve_rl":' '"communicator":"mpi"'; do
  grep -q "$key" <<<"$final" || { echo "FAIL: final line lacks $key"; exit 1; }
done
rl_lines=$(grep -c '"phase":"rl"' "$out/nla.jsonl" || true)
[[ $rl_lines == 2 ]] || { echo "FAIL: $rl_lines RL records in the log, expected 2 (rank 0 alone writes)"; exit 1; }
grep -q '"allreduce_share"' "$out/nla.jsonl" || { echo "FAIL: no allreduce_share in the log"; exit 1; }
[[ -f "$out/nla.rl/latest" ]] || { echo "FAIL: no RL checkpoint"; exit 1; }
# A 2-rank checkpoint (sharded optimiser) loads in one process.
"$mpiexec" -n 1 "$program" "${common[@]}" --load-nla "$out/nla.rl" --out "$out/one" | tail -n 1 \
  | grep -q '"ranks":1' || { echo "FAIL: the 2-rank checkpoint did not load on 1 rank"; exit 1; }
echo "multi_gpu_nla: 2 ranks ok"
