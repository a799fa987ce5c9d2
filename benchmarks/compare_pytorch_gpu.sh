#!/usr/bin/env bash
# The GPU benchmarks of docs/performance.md, nla beside PyTorch on the same
# GPU in the same run: examples/cuda_throughput against
# benchmarks/pytorch_reference.py --device cuda. Prints one JSON line per
# case on stdout: both results, the ratio nla / PyTorch and the goal.
#
# Usage: benchmarks/compare_pytorch_gpu.sh [--build-dir build] [--cases "1 2 ..."]
#            [--config NAME] [--prompt 64] [--new-tokens 64] [--device cuda|cpu]
#            [--nla-binary PATH]
#
#   case  work                            nla        PyTorch                 goal
#   1     train gpt2-124m, batch 16       fp32       fp32 eager              -
#   2     train gpt2-124m, batch 16       tf32       tf32 eager              >= 1
#   3     train gpt2-124m, batch 16       bf16       bf16 autocast           -
#   4     train gpt2-124m, batch 16       bf16       bf16 torch.compile      >= 1
#   5     train small, batch 64           fp32       fp32 eager              >= 2
#   6     train small, batch 64           bf16       bf16 autocast           >= 2
#   7     generate gpt2-124m, batch 64,   bf16       bf16, our KV-cache loop -
#         prompt 64, 64 new tokens
#   8     the same                        bf16       transformers generate   >= 20
#
# --config replaces every case's model (tiny, with --prompt 16 --new-tokens 16,
# for a dry run) and --device cpu
# runs PyTorch on the CPU; with --nla-binary build/examples/cuda_throughput_thrust_omp
# the whole script runs on a machine without a GPU (cases PyTorch cannot run
# there print their error). Progress goes to stderr.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=script_args.sh
source "${script_dir}/script_args.sh"
build_dir="build"
cases="1 2 3 4 5 6 7 8"
config_override=""
device="cuda"
nla_binary=""
prompt=64
new_tokens=64
python="${PYTHON:-python3}"

usage() { sed -n '2,28s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-dir) need_value "$@"; build_dir="$2"; shift 2 ;;
        --cases) need_value "$@"; cases="$2"; shift 2 ;;
        --config) need_value "$@"; config_override="$2"; shift 2 ;;
        --prompt) need_value "$@"; prompt="$2"; shift 2 ;;
        --new-tokens) need_value "$@"; new_tokens="$2"; shift 2 ;;
        --device) need_value "$@"; device="$2"; shift 2 ;;
        --nla-binary) need_value "$@"; nla_binary="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
nla_binary="${nla_binary:-${build_dir}/examples/cuda_throughput}"
if [[ ! -x "${nla_binary}" ]]; then
    echo "error: ${nla_binary} not found; build the cuda_throughput target first" >&2
    exit 2
fi

# One row per case: task config precision batch "PyTorch flags" goal.
row() {
    case "$1" in
        1) echo "train gpt2-124m fp32 16 |--precision fp32| null" ;;
        2) echo "train gpt2-124m tf32 16 |--precision tf32| 1" ;;
        3) echo "train gpt2-124m bf16 16 |--precision bf16| null" ;;
        4) echo "train gpt2-124m bf16 16 |--precision bf16 --compile| 1" ;;
        5) echo "train small fp32 64 |--precision fp32| 2" ;;
        6) echo "train small bf16 64 |--precision bf16| 2" ;;
        7) echo "generate gpt2-124m bf16 64 |--task generate --precision bf16| null" ;;
        8) echo "generate gpt2-124m bf16 64 |--task hf-generate --precision bf16| 20" ;;
        *) echo "error: no case '$1' (1-8)" >&2; exit 2 ;;
    esac
}

for c in ${cases}; do
    spec="$(row "${c}")"
    read -r task config precision batch <<<"${spec%%|*}"
    torch_flags="$(echo "${spec}" | cut -d'|' -f2)"
    goal="$(echo "${spec}" | cut -d'|' -f3 | tr -d ' ')"
    config="${config_override:-${config}}"
    if [[ "${task}" == train ]]; then
        nla_args=(--task train --batch "${batch}" --steps 20 --warmup 3)
        torch_args=(--batch "${batch}" --steps 20)
        metric="tokens_per_s"
    else
        nla_args=(--task generate --batch "${batch}" --prompt "${prompt}"
                  --new-tokens "${new_tokens}" --steps 3 --warmup 1)
        torch_args=(--gen-batch "${batch}" --prompt-len "${prompt}"
                    --new-tokens "${new_tokens}")
        metric="new_tokens_per_s"
    fi
    echo "case ${c}: ${task} ${config} ${precision}, PyTorch ${torch_flags}" >&2
    nla_line="$("${nla_binary}" "${nla_args[@]}" --config "${config}" --precision "${precision}" \
        | tail -n 1)" || nla_line="{\"error\": \"cuda_throughput failed\"}"
    # shellcheck disable=SC2086  # the flags are words on purpose
    torch_line="$("${python}" "${script_dir}/pytorch_reference.py" --device "${device}" \
        --config "${config}" "${torch_args[@]}" ${torch_flags} 2>/tmp/nla_torch_err.$$ \
        | tail -n 1)" || torch_line="$(tail -n 1 /tmp/nla_torch_err.$$ \
        | "${python}" -c 'import json,sys; print(json.dumps({"error": sys.stdin.read().strip()}))')"
    rm -f /tmp/nla_torch_err.$$
    CASE="${c}" METRIC="${metric}" GOAL="${goal}" NLA="${nla_line}" TORCH="${torch_line}" \
        "${python}" -c '
import json, os
nla, torch = json.loads(os.environ["NLA"]), json.loads(os.environ["TORCH"])
metric = os.environ["METRIC"]
ratio = None
if metric in nla and metric in torch:
    ratio = round(nla[metric] / torch[metric], 3)
print(json.dumps({"case": int(os.environ["CASE"]), "metric": metric, "ratio": ratio,
                  "goal": json.loads(os.environ["GOAL"]), "nla": nla, "pytorch": torch}))
'
done
