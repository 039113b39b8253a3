#!/usr/bin/env bash
# Runs our training benchmark and the PyTorch reference alternately, several rounds,
# and prints each network's ratio ours/theirs of samples per second (min, median, max).
# The networks are those of docs/networks.md; docs/performance.md keeps the results.
#
#   bench/compare.sh [--net a|b|c|d|e|gpt|all] [--rounds N] [--epochs N] [--threads N]
#
# Both sides train the same number of epochs: --epochs, or by default 10 for network A
# (its epochs take tens of milliseconds, so a median of three sits inside a single
# noise burst of a shared machine), 1 for E (PyTorch's own example: tens of seconds an
# epoch) and 3 for the others. `all` is A to D.
#
# `--net gpt` is nanoGPT's character-level GPT on Shakespeare: examples/shakespeare.rs
# against bench/reference/torch_gpt.py, both with `--iters N --threads T`, where
# --epochs means training iterations (default 200 a round); its table gives iterations
# per second (evaluation excluded), the validation loss after the last step and the
# peak RSS of each side.
#
# PyTorch lives in a venv outside the repository: $BENCH_VENV, default
# ~/.cache/backprop/bench-venv, created with `pip install torch numpy` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

net=all rounds=3 epochs= threads=$(nproc)
while [[ $# -gt 0 ]]; do
  case $1 in
    --net) net=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $net == all ]] && nets=(a b c d) || nets=("$net")

torch_venv

if [[ $net == gpt ]]; then
  cargo build --release --example shakespeare >&2
else
  bench_and_data
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for n in "${nets[@]}"; do
    echo "round $r/$rounds, network $n" >&2
    case $n in a) e=10 ;; e) e=1 ;; gpt) e=200 ;; *) e=3 ;; esac
    e=${epochs:-$e}
    if [[ $n == gpt ]]; then
      ./target/release/examples/shakespeare --iters "$e" --threads "$threads" | grep '^RESULT' >>"$results"
      "$venv/bin/python" bench/reference/torch_gpt.py --iters "$e" --threads "$threads" | grep '^RESULT' >>"$results"
      continue
    fi
    ./target/release/examples/bench --net "$n" --epochs "$e" --threads "$threads" --data-dir "$data_dir" | grep '^RESULT' >>"$results"
    "$venv/bin/python" bench/reference/torch_mnist.py --net "$n" --epochs "$e" --threads "$threads" --data-dir "$data_dir" | grep '^RESULT' >>"$results"
  done
done

"$venv/bin/python" - "$results" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(sys.argv[1])]

def shares(ours, ratios):
    # Both do the same arithmetic, so PyTorch's share of the peak (measured by ours, in
    # the same sitting) is ours divided by the speed ratio.
    share = statistics.median(float(o["peak_share"]) for o in ours)
    return f"{share:.2f} / {share / statistics.median(ratios):.2f}"
gpt = [r for r in rows if r["net"] == "gpt"]
rows = [r for r in rows if r["net"] != "gpt"]
if gpt:
    ours = [r for r in gpt if r["impl"] == "backprop"]
    theirs = [r for r in gpt if r["impl"] == "pytorch"]
    ratios = [float(o["iters_per_s"]) / float(t["iters_per_s"]) for o, t in zip(ours, theirs)]
    med = lambda rs, k: statistics.median(float(x[k]) for x in rs)
    print(f"{'net':<4}{'ours it/s':>11}{'torch it/s':>12}{'ratio min':>11}{'median':>9}{'max':>8}{'ours val':>10}{'torch val':>11}{'ours RSS MiB':>14}{'torch RSS MiB':>15}{'peak share ours / torch':>25}")
    print(f"{'gpt':<4}{med(ours, 'iters_per_s'):>11.2f}{med(theirs, 'iters_per_s'):>12.2f}{min(ratios):>11.2f}"
          f"{statistics.median(ratios):>9.2f}{max(ratios):>8.2f}{med(ours, 'val_loss'):>10.4f}{med(theirs, 'val_loss'):>11.4f}"
          f"{med(ours, 'peak_rss_mib'):>14.1f}{med(theirs, 'peak_rss_mib'):>15.1f}{shares(ours, ratios):>25}")
if not rows:
    sys.exit()
print(f"{'net':<4}{'ours samples/s':>16}{'torch samples/s':>17}{'ratio min':>11}{'median':>9}{'max':>8}{'ours acc':>10}{'torch acc':>11}{'ours RSS MiB':>14}{'torch RSS MiB':>15}{'peak share ours / torch':>25}")
for net in sorted({r["net"] for r in rows}):
    ours = [r for r in rows if r["net"] == net and r["impl"] == "backprop"]
    theirs = [r for r in rows if r["net"] == net and r["impl"] == "pytorch"]
    ratios = [float(o["samples_per_s"]) / float(t["samples_per_s"]) for o, t in zip(ours, theirs)]
    med = lambda rs, k: statistics.median(float(x[k]) for x in rs)
    print(f"{net:<4}{med(ours, 'samples_per_s'):>16.0f}{med(theirs, 'samples_per_s'):>17.0f}{min(ratios):>11.2f}"
          f"{statistics.median(ratios):>9.2f}{max(ratios):>8.2f}{med(ours, 'accuracy'):>10.4f}{med(theirs, 'accuracy'):>11.4f}"
          f"{med(ours, 'peak_rss_mib'):>14.1f}{med(theirs, 'peak_rss_mib'):>15.1f}{shares(ours, ratios):>25}")
PY
