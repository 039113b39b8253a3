#!/usr/bin/env bash
# Gradient checkpointing (`nn::Model::recompute`) measured: training steps of LeNet
# (network D) at batch 1,024 and of network C at batch 4,096 (docs/networks.md), each
# with and without recomputed blocks, in separate processes (peak RSS only grows within
# one), alternately, several rounds. Prints per network and mode the median step time
# (median over rounds of each run's median), the peak resident memory of the steps above
# the process's baseline (median and min over rounds), and what the forward pass leaves
# on the tape. Blocks: LeNet's two convolution stages (layers 1..4 and 4..7), C's two
# hidden layers (0..2).
#
#   bench/recompute.sh [--rounds N] [--steps N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 steps=20 threads=$(nproc)
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=${2-}; shift 2 || shift ;;
    --steps) steps=${2-}; shift 2 || shift ;;
    --threads) threads=${2-}; shift 2 || shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for name in rounds steps threads; do
  if [[ ! ${!name} =~ ^[1-9][0-9]*$ ]]; then
    echo "--$name needs a whole number of at least 1, got '${!name}'" >&2
    exit 2
  fi
done

cargo build --release --example bench >&2
data_dir=$(./target/release/examples/bench --locate-data)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  for run in "d 1024" "c 4096"; do
    read -r net batch <<<"$run"
    for mode in none default; do
      extra=()
      [[ $mode == default ]] && extra=(--recompute default)
      ./target/release/examples/bench --net "$net" --batch "$batch" --steps "$steps" \
        --threads "$threads" --data-dir "$data_dir" "${extra[@]}" | grep '^RESULT ' >>"$results"
    done
  done
done

echo "training steps, $threads thread(s), $steps steps per run ($((steps - 1)) timed), $rounds round(s)"
awk '
function median(list,   n, a, i, j, t) {
  n = split(list, a, " ")
  for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function minimum(list,   n, a, i, m) {
  n = split(list, a, " "); m = a[1]
  for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]
  return m
}
{
  delete kv
  for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
  key = kv["net"] " " kv["batch"] " " kv["recompute"]
  if (!(key in seen)) { seen[key] = 1; order[++n] = key }
  ms[key] = ms[key] " " kv["median_ms"]; peak[key] = peak[key] " " kv["step_peak_mib"]
  tape[key] = kv["tape_mib"]; cost[key] = kv["cost"]
}
END {
  printf "%-4s %6s %-12s %10s %16s %14s %9s %10s\n", "net", "batch", "recomputed", "step ms", "peak MiB (min)", "tape MiB", "cost", ""
  for (k = 1; k <= n; k++) {
    split(order[k], f, " ")
    printf "%-4s %6s %-12s %10.1f %9.1f (%5.1f) %14.1f %9s\n", f[1], f[2], f[3], median(ms[order[k]]), median(peak[order[k]]), minimum(peak[order[k]]), tape[order[k]], cost[order[k]]
  }
}' "$results"
