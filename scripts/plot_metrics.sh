#!/usr/bin/env bash
# Plots metrics from a JSONL training log against "step" into a PNG.
#   scripts/plot_metrics.sh LOG.jsonl OUT.png [KEY ...]
# Default keys: train_loss val_loss. Records lacking a key are skipped for that
# key (evaluation lines interleave with per-step lines). Needs python3 and
# gnuplot (scripts/install-deps.sh installs both).
set -euo pipefail

if [[ $# -lt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,6s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  [[ $# -ge 2 ]] && exit 0 || exit 2
fi
log="$1"
png="$2"
shift 2
keys=("$@")
[[ ${#keys[@]} -gt 0 ]] || keys=(train_loss val_loss)
[[ -r "$log" ]] || { echo "plot_metrics.sh: cannot read '$log'" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# One two-column file per key: step, value.
python3 - "$log" "$tmp" "${keys[@]}" <<'PY'
import json, sys
log, out, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
files = {k: open(f"{out}/{k}.dat", "w") for k in keys}
with open(log) as f:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            sys.exit(f"plot_metrics.sh: {log}:{n}: not JSON ({e})")
        for k in keys:
            if "step" in r and isinstance(r.get(k), (int, float)):
                files[k].write(f"{r['step']} {r[k]}\n")
for k, f in files.items():
    f.close()
PY

plots=()
for k in "${keys[@]}"; do
  [[ -s "$tmp/$k.dat" ]] || { echo "plot_metrics.sh: no '$k' values in $log" >&2; exit 1; }
  plots+=("'$tmp/$k.dat' using 1:2 with lines lw 2 title '$k'")
done
joined="$(IFS=,; echo "${plots[*]}")"
gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output '$png'
set title '$(basename "$log")'
set xlabel 'step'
set grid
set key top right
plot $joined
GP
echo "plot_metrics.sh: wrote $png" >&2
