#!/usr/bin/env bash
# Times one Hessian-vector product of network B's cost (docs/networks.md) at batch 128,
# forward pass included: ours (`examples/bench.rs --hvp`, autodiff::func::hvp) and
# PyTorch's two ways (bench/reference/torch_hvp.py: double backward, and
# torch.func.jvp over torch.func.grad), alternately, several rounds, in f32. Prints for
# each PyTorch variant both sides' median times and speedup = their_ms / our_ms (min,
# median, max over rounds; above 1 means ours is faster), and the same for each side's
# fastest HVP over all rounds (a second view when other work shares the cores). Then
# one f64 HVP on each side, and the HVPs' norms next to each other: the two sides draw
# the same parameters and direction, so the norms agree to rounding.
#
#   bench/hvp.sh [--rounds N] [--threads N] [--reps N]
#
# --reps: timed HVPs per run and side (default 200); each run reports their median.
# PyTorch lives in a venv outside the repository: $BENCH_VENV, default
# ~/.cache/backprop/bench-venv, created with `pip install torch numpy` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 threads=$(nproc) reps=200
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=${2-}; shift 2 || shift ;;
    --threads) threads=${2-}; shift 2 || shift ;;
    --reps) reps=${2-}; shift 2 || shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for name in rounds threads reps; do
  if [[ ! ${!name} =~ ^[1-9][0-9]*$ ]]; then
    echo "--$name needs a whole number of at least 1, got '${!name}'" >&2
    exit 2
  fi
done

venv=${BENCH_VENV:-$HOME/.cache/backprop/bench-venv}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import torch, numpy' 2>/dev/null; then
  echo "creating $venv with torch and numpy (one-time, large download)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch numpy
fi

cargo build --release --example bench >&2
# Fetch the data if needed, and hand both implementations the same directory.
data_dir=$(./target/release/examples/bench --locate-data)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
ours() { ./target/release/examples/bench --hvp --threads "$threads" --data-dir "$data_dir" "$@" | grep -E '^(RESULT|CHECK) ' >>"$results"; }
theirs() { "$venv/bin/python" bench/reference/torch_hvp.py --threads "$threads" --data-dir "$data_dir" "$@" | grep -E '^(RESULT|CHECK) ' >>"$results"; }
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  ours --reps "$reps"
  theirs --reps "$reps"
done
echo "f64 check" >&2
ours --dtype f64 --reps 1 --warmup 0
theirs --dtype f64 --reps 1 --warmup 0

"$venv/bin/python" - "$results" "$threads" "$reps" <<'PY'
import statistics, sys
rows = [(line.split()[0], dict(kv.split("=", 1) for kv in line.split()[1:])) for line in open(sys.argv[1])]
timed = [r for kind, r in rows if kind == "RESULT" and r["dtype"] == "f32"]
ours = [float(r["median_ms"]) for r in timed if r["impl"] == "backprop"]
print(f"one HVP of network B's cost, batch 128, f32, {sys.argv[2]} thread(s), median of {sys.argv[3]} per run, {len(ours)} round(s)")
# The fastest HVP of each side (best) is a second view when other work shares the cores.
ours_best = min(float(r["min_ms"]) for r in timed if r["impl"] == "backprop")
print(f"{'PyTorch variant':<24}{'ours ms':>9}{'torch ms':>10}{'speedup min':>13}{'median':>8}{'max':>7}"
      f"{'ours best':>11}{'torch best':>12}{'speedup':>9}")
for impl in ("torch-double-backward", "torch-func-jvp-grad"):
    theirs = [float(r["median_ms"]) for r in timed if r["impl"] == impl]
    theirs_best = min(float(r["min_ms"]) for r in timed if r["impl"] == impl)
    speedups = [t / o for o, t in zip(ours, theirs)]
    print(f"{impl:<24}{statistics.median(ours):>9.3f}{statistics.median(theirs):>10.3f}"
          f"{min(speedups):>13.2f}{statistics.median(speedups):>8.2f}{max(speedups):>7.2f}"
          f"{ours_best:>11.3f}{theirs_best:>12.3f}{theirs_best / ours_best:>9.2f}")
print("HVP norms (relative difference from ours):")
for dtype in ("f32", "f64"):
    checks = {r["impl"]: float(r["hvp_norm"]) for kind, r in rows if kind == "CHECK" and r["dtype"] == dtype}
    base = checks["backprop"]
    others = "".join(f"  {impl} {n:.15g} ({abs(n - base) / base:.1e})" for impl, n in checks.items() if impl != "backprop")
    print(f"  {dtype}: backprop {base:.15g}{others}")
PY
