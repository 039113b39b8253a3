#!/usr/bin/env bash
# Compares two builds of the training benchmark in one sitting: for every round and
# network, the old binary, the new binary and the PyTorch reference run in turn, so the
# machine's slow and fast stretches fall on both. Prints, per network, each build's
# ratio to PyTorch (min, median, max) and new/old for each round.
#
#   bench/before_after.sh OLD_BENCH NEW_BENCH [--net a|b|c|d|all] [--rounds N] [--threads N]
#
# OLD_BENCH and NEW_BENCH are `examples/bench` binaries, e.g. built with
# `cargo build --release --example bench` at two commits and copied aside. Epochs per
# round as in bench/compare.sh (10 for network A, 3 for the others). PyTorch comes from
# $BENCH_VENV, as in bench/compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $# -ge 2 ]] || { echo "usage: $0 OLD_BENCH NEW_BENCH [--net N] [--rounds N] [--threads N]" >&2; exit 2; }
old=$1 new=$2
shift 2
net=all rounds=3 threads=$(nproc)
while [[ $# -gt 0 ]]; do
  case $1 in
    --net) net=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for bin in "$old" "$new"; do
  [[ -x $bin ]] || { echo "$bin is not an executable bench binary" >&2; exit 2; }
done
[[ $net == all ]] && nets=(a b c d) || nets=("$net")
venv=${BENCH_VENV:-$HOME/.cache/backprop/bench-venv}
[[ -x $venv/bin/python ]] || { echo "no PyTorch venv at $venv (bench/compare.sh creates it)" >&2; exit 2; }

data_dir=$("$new" --locate-data)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for n in "${nets[@]}"; do
    echo "round $r/$rounds, network $n" >&2
    e=$([[ $n == a ]] && echo 10 || echo 3)
    run() { "$1" --net "$n" --epochs "$e" --threads "$threads" --data-dir "$data_dir" | grep '^RESULT'; }
    run "$old" | sed 's/impl=backprop/impl=old/' >>"$results"
    run "$new" | sed 's/impl=backprop/impl=new/' >>"$results"
    "$venv/bin/python" bench/reference/torch_mnist.py --net "$n" --epochs "$e" --threads "$threads" --data-dir "$data_dir" | grep '^RESULT' >>"$results"
  done
done

"$venv/bin/python" - "$results" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(sys.argv[1])]
print(f"{'net':<4}{'build':<7}{'samples/s':>11}{'ratio min':>11}{'median':>8}{'max':>7}{'accuracy':>10}")
for net in sorted({r["net"] for r in rows}):
    torch = [r for r in rows if r["net"] == net and r["impl"] == "pytorch"]
    runs = {b: [r for r in rows if r["net"] == net and r["impl"] == b] for b in ("old", "new")}
    for build, ours in runs.items():
        ratios = [float(o["samples_per_s"]) / float(t["samples_per_s"]) for o, t in zip(ours, torch)]
        med = lambda rs, k: statistics.median(float(x[k]) for x in rs)
        print(f"{net:<4}{build:<7}{med(ours, 'samples_per_s'):>11.0f}{min(ratios):>11.2f}"
              f"{statistics.median(ratios):>8.2f}{max(ratios):>7.2f}{med(ours, 'accuracy'):>10.4f}")
    per_round = [float(n["samples_per_s"]) / float(o["samples_per_s"]) for o, n in zip(runs["old"], runs["new"])]
    print(f"{net:<4}new/old by round: " + " ".join(f"{x:.3f}" for x in per_round))
PY
