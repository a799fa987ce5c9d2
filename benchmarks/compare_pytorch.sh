#!/usr/bin/env bash
# Run an nla C++ benchmark and the PyTorch reference with the same thread
# count and print one comparison JSON line per config on stdout.
#
# Usage: benchmarks/compare_pytorch.sh [--task train|generate] [--build-dir build]
#            [--threads 2] [--configs "tiny small"] [--flavour gpt2] [--pytorch-args "..."]
#
#   train    (default) TrainStep/<flavour>/<config>, tokens_per_s per training step.
#   generate Generate/<flavour>/<config>, new_tokens_per_s of KV-cache sampling
#            (prefill + decode; tiny: batch 64, 32 + 32 tokens; small: 16, 64 + 64).
#
# Progress and the tools' own chatter go to stderr so stdout stays parseable.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=script_args.sh
source "${script_dir}/script_args.sh"

task="train"
build_dir="build"
threads=2
configs="tiny small"
flavour="gpt2"
pytorch_args=""
# Debian's python3-torch lives in /usr/lib/python3/dist-packages, which a pyenv
# or venv python on PATH would not see, so default to the system interpreter.
python="${PYTHON:-/usr/bin/python3}"

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}


while [[ $# -gt 0 ]]; do
    case "$1" in
        --task) need_value "$@"; task="$2"; shift 2 ;;
        --build-dir) need_value "$@"; build_dir="$2"; shift 2 ;;
        --threads) need_value "$@"; threads="$2"; shift 2 ;;
        --configs) need_value "$@"; configs="$2"; shift 2 ;;
        --flavour) need_value "$@"; flavour="$2"; shift 2 ;;
        # Extra reference flags, e.g. "--omp-wait-policy passive" (word-split on purpose).
        --pytorch-args) need_value "$@"; pytorch_args="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

if ! [[ "${threads}" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: --threads must be a positive integer, got '${threads}'" >&2
    exit 2
fi

# Per task: the C++ benchmark family, and the throughput key that both the
# Google Benchmark counter and the reference's JSON line carry.
case "${task}" in
    train) bench_family="TrainStep"; metric="tokens_per_s" ;;
    generate) bench_family="Generate"; metric="new_tokens_per_s" ;;
    *) echo "error: --task must be train or generate, got '${task}'" >&2; exit 2 ;;
esac

# A relative build dir is taken relative to where the user runs us from, like cmake's -B.
bench_bin="${build_dir%/}/benchmarks/nla_benchmarks"
if [[ ! -x "${bench_bin}" ]]; then
    echo "error: C++ benchmark binary not found at '${bench_bin}'." >&2
    echo "       Build it first, e.g.:" >&2
    echo "         cmake -S . -B ${build_dir} -DCMAKE_BUILD_TYPE=Release -DNLA_BUILD_BENCHMARKS=ON" >&2
    echo "         cmake --build ${build_dir} --target nla_benchmarks" >&2
    exit 1
fi

if ! "${python}" -c 'import torch' >/dev/null 2>&1; then
    echo "error: '${python}' cannot import torch (on Debian: apt-get install python3-torch)," >&2
    echo "       or point PYTHON at an interpreter that has it." >&2
    exit 1
fi

# Reads a Google Benchmark JSON report on stdin and prints the counter named by
# argv[1] (tokens_per_s, new_tokens_per_s) of the first benchmark; fails loudly
# rather than printing a bogus 0.
read -r -d '' parse_nla <<'PY' || true
import json, sys
metric = sys.argv[1]
report = json.load(sys.stdin)
benches = report.get("benchmarks") or []
if not benches:
    sys.exit("no benchmark matched the filter")
value = benches[0].get(metric)
if value is None:
    sys.exit("benchmark %r has no %s counter" % (benches[0].get("name"), metric))
print(float(value))
PY

read -r -d '' parse_torch <<'PY' || true
import json, sys
metric = sys.argv[1]
# The reference prints exactly one JSON line; take the last non-empty one to be safe.
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
if not lines:
    sys.exit("pytorch_reference.py printed nothing")
print(float(json.loads(lines[-1])[metric]))
PY

read -r -d '' emit <<'PY' || true
import json, sys
task, metric, config, flavour, threads, nla, torch_tps = sys.argv[1:8]
nla, torch_tps = float(nla), float(torch_tps)
line = {"task": task} if task != "train" else {}  # train lines keep their original keys
line.update({
    "config": config,
    "flavour": flavour,
    "threads": int(threads),
    "nla_" + metric: round(nla, 1),
    "pytorch_" + metric: round(torch_tps, 1),
    # > 1 means nla is faster.
    "speedup": round(nla / torch_tps, 3) if torch_tps > 0 else None,
})
print(json.dumps(line))
PY

for config in ${configs}; do
    echo "== ${task} ${flavour}/${config}: nla (${threads} threads)" >&2
    # Both OpenMP and any BLAS pool get the same count as the reference gets.
    # (A benchmark that sets its own MinTime, as Generate/* does, ignores the flag.)
    nla_json="$(OMP_NUM_THREADS="${threads}" OPENBLAS_NUM_THREADS="${threads}" \
        "${bench_bin}" \
        --benchmark_filter="^${bench_family}/${flavour}/${config}(/|\$)" \
        --benchmark_format=json \
        --benchmark_min_time=2)"
    nla_tps="$(printf '%s' "${nla_json}" | "${python}" -c "${parse_nla}" "${metric}")"

    echo "== ${task} ${flavour}/${config}: pytorch (${threads} threads)" >&2
    # The reference's generate shapes default to the ones Generate/* uses; keep
    # --gen-batch/--prompt-len/--new-tokens out of --pytorch-args to compare.
    # shellcheck disable=SC2086  # pytorch_args is meant to be word-split
    torch_json="$("${python}" "${script_dir}/pytorch_reference.py" --task "${task}" \
        --flavour "${flavour}" --config "${config}" --threads "${threads}" ${pytorch_args})"
    torch_tps="$(printf '%s' "${torch_json}" | "${python}" -c "${parse_torch}" "${metric}")"

    "${python}" -c "${emit}" "${task}" "${metric}" "${config}" "${flavour}" "${threads}" \
        "${nla_tps}" "${torch_tps}"
done
