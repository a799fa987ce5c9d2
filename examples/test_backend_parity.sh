#!/usr/bin/env bash
# ctest example.gpu_nla_backend_parity: target training and the whole NLA
# pipeline on the Cuda backend (built on Thrust's OpenMP device system)
# against the Cpu backend, same seed. Sampling draws the same counter-based
# numbers on both, so every explanation, and with it every count-based
# figure, must be identical; the loss and FVE figures may differ by the
# GEMMs' summation order only (relative 1e-4). Then the Cuda run's RL
# checkpoint must load into a Cpu run.
#   test_backend_parity.sh PROGRAM OUT_DIR ARGS...
set -euo pipefail
program=$1 out=$2
shift 2
rm -rf "$out" && mkdir -p "$out"
for backend in cpu cuda; do
  "$program" --backend "$backend" --out "$out/$backend" --checkpoint-every 2 "$@" \
    > "$out/$backend.stdout"
done
python3 - "$out/cpu.stdout" "$out/cuda.stdout" <<'PY'
import json, math, sys
def summary(path):
    return json.loads(open(path).read().strip().splitlines()[-1])
cpu, cuda = summary(sys.argv[1]), summary(sys.argv[2])
timing = {"minutes", "phase_seconds", "rl_samples_per_s", "rl_step_s", "rl_step_breakdown_s",
          "allreduce_share", "tokens_per_s"}
bad = []
def compare(key, a, b):
    if key.split(".")[-1] in timing:
        return
    if isinstance(a, dict):
        for k in a:
            compare(f"{key}.{k}", a[k], b.get(k))
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            bad.append(f"{key}: {a} vs {b}")
        for i, (x, y) in enumerate(zip(a, b)):
            compare(f"{key}[{i}]", x, y)
    elif isinstance(a, float) and isinstance(b, (int, float)):
        if not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6):
            bad.append(f"{key}: cpu {a}, cuda {b}")
    elif a != b:
        bad.append(f"{key}: cpu {a!r}, cuda {b!r}")
for k in cpu:
    compare(k, cpu[k], cuda.get(k))
if bad:
    print("FAIL: the Cuda pipeline differs from the Cpu one:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"fve_rl cpu {cpu['fve_rl']:.6f} cuda {cuda['fve_rl']:.6f}; "
      "every other figure agrees")
PY
"$program" --backend cpu --load-nla "$out/cuda.rl" --out "$out/loaded" "$@" | tail -n 1 \
  | grep -q '"fve_rl":' || { echo "FAIL: the Cuda run's checkpoint did not load on the Cpu"; exit 1; }
echo "backend parity ok"
