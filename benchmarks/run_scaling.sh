#!/usr/bin/env bash
# Weak scaling and all-reduce bandwidth of data-parallel training on MPI
# ranks of this machine: runs nla_data_parallel_benchmark under mpirun with
# each rank count and prints one JSON line per benchmark and rank count:
#   {"benchmark", "ranks", "ms", "tokens_per_s", "efficiency", ...}
# efficiency (weak scaling) = tokens_per_s(w) / (w * tokens_per_s(1)).
#
# Usage: benchmarks/run_scaling.sh [--build-dir build] [--ranks "1 2 4"]
#            [--threads-per-rank 1]
# Ranks beyond the cores oversubscribe them: the efficiency then measures the
# machine, not the method; say so beside the figures.
set -euo pipefail

build_dir="build"
ranks="1 2 4"
threads=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --threads-per-rank) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "run_scaling.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
bench="$build_dir/benchmarks/nla_data_parallel_benchmark"
[[ -x $bench ]] || { echo "run_scaling.sh: $bench not built (needs NLA_ENABLE_MPI)" >&2; exit 1; }

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
for w in $ranks; do
  echo "run_scaling.sh: $w rank(s), $threads thread(s) each" >&2
  OMP_NUM_THREADS=$threads OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun -np "$w" --oversubscribe --bind-to none "$bench" --benchmark_format=json \
    > "$results/$w.json"
done
/usr/bin/python3 - "$results" $ranks <<'PY'
import json, sys
folder, ranks = sys.argv[1], [int(r) for r in sys.argv[2:]]
runs = {w: {b["name"]: b for b in json.load(open(f"{folder}/{w}.json"))["benchmarks"]} for w in ranks}
context = json.load(open(f"{folder}/{ranks[0]}.json"))["context"]
for name in runs[ranks[0]]:
    one = runs[ranks[0]][name]
    for w in ranks:
        b = runs[w][name]
        line = {"benchmark": name.split("/iterations")[0], "ranks": w,
                "ms": round(b["real_time"], 3), "host": context.get("host_name"),
                "cpus": context.get("num_cpus")}
        if "tokens_per_s" in b:
            line["tokens_per_s"] = round(b["tokens_per_s"], 1)
            line["allreduce_share"] = round(b["allreduce_s_per_step"] * 1e3 / b["real_time"], 3)
            line["efficiency"] = round(b["tokens_per_s"] / (w / ranks[0] * one["tokens_per_s"]), 3)
        else:
            line["bus_GB_per_s"] = round(b["bus_bytes_per_s"] / 1e9, 3)
            line["parameters"] = int(b["parameters"])
        print(json.dumps(line))
PY
