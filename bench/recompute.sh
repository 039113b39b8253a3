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
#   bench/recompute.sh [--rounds N] [--steps N] [--threads N] [--torch]
#
# --torch: also run bench/reference/torch_recompute.py (torch.utils.checkpoint over the
# same blocks, same batches) after ours in each round and print its rows in the table,
# with the peak of live tensor bytes its profiler counts ("live"). PyTorch lives in a
# venv outside the repository: $BENCH_VENV, default ~/.cache/backprop/bench-venv,
# created with `pip install torch numpy` on first use (as bench/transform.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

rounds=3 steps=20 threads=$(nproc) torch=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=${2-}; shift 2 || shift ;;
    --steps) steps=${2-}; shift 2 || shift ;;
    --threads) threads=${2-}; shift 2 || shift ;;
    --torch) torch=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
whole_numbers rounds steps threads

if ((torch)); then
  torch_venv
fi

bench_and_data
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
      if ((torch)); then
        "$venv/bin/python" bench/reference/torch_recompute.py --net "$net" --batch "$batch" \
          --steps "$steps" --threads "$threads" --data-dir "$data_dir" "${extra[@]}" 2>/dev/null |
          grep '^RESULT ' >>"$results"
      fi
    done
  done
done

echo "training steps, $threads thread(s), $steps steps per run ($((steps - 1)) timed; torch: $steps after a warm-up), $rounds round(s)"
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
  # torch_recompute.py says "default" for the blocks ours names.
  if (kv["impl"] == "backprop" && kv["recompute"] != "none") blocks[kv["net"]] = kv["recompute"]
  if (kv["recompute"] == "default" && kv["net"] in blocks) kv["recompute"] = blocks[kv["net"]]
  key = kv["net"] " " kv["batch"] " " kv["recompute"] " " kv["impl"]
  if (!(key in seen)) { seen[key] = 1; order[++n] = key }
  ms[key] = ms[key] " " kv["median_ms"]; peak[key] = peak[key] " " kv["step_peak_mib"]
  if ("live_peak_mib" in kv) live[key] = live[key] " " kv["live_peak_mib"]
  tape[key] = kv["tape_mib"]; cost[key] = kv["cost"]
}
END {
  printf "%-4s %6s %-12s %-9s %10s %16s %9s %14s %9s\n", "net", "batch", "recomputed", "impl", "step ms", "peak MiB (min)", "live MiB", "tape MiB", "cost"
  for (k = 1; k <= n; k++) {
    split(order[k], f, " ")
    l = order[k] in live ? sprintf("%9.1f", median(live[order[k]])) : sprintf("%9s", "-")
    printf "%-4s %6s %-12s %-9s %10.1f %9.1f (%5.1f) %s %14.1f %9s\n", f[1], f[2], f[3], f[4], median(ms[order[k]]), median(peak[order[k]]), minimum(peak[order[k]]), l, tape[order[k]], cost[order[k]]
  }
}' "$results"
