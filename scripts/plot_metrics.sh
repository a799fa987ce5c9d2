#!/usr/bin/env bash
# Plots metrics from a JSONL training log against "step" into a PNG.
#   scripts/plot_metrics.sh LOG.jsonl OUT.png [KEY ...]
# Default keys: train_loss val_loss. A thin wrapper over `nla plot` (the
# command line's implementation), found as $NLA, build/tools/nla or `nla`.
set -euo pipefail

if [[ $# -lt 2 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,5s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  [[ $# -ge 2 ]] && exit 0 || exit 2
fi
log="$1" png="$2"
shift 2
keys=("$@")
[[ ${#keys[@]} -gt 0 ]] || keys=(train_loss val_loss)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
nla="${NLA:-$root/build/tools/nla}"
[[ -x "$nla" ]] || nla="$(command -v nla || true)"
[[ -n "$nla" ]] || { echo "plot_metrics.sh: build the nla tool first (cmake --build build --target nla_cli)" >&2; exit 1; }
"$nla" plot --log "$log" --out "$png" --keys "$(IFS=,; echo "${keys[*]}")" > /dev/null
echo "plot_metrics.sh: wrote $png" >&2
