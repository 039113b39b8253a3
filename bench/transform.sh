#!/usr/bin/env bash
# Times a function transform of network B's cost (docs/networks.md) at batch 128,
# forward pass included, ours (`examples/bench.rs`) beside PyTorch's
# (bench/reference/), alternately, several rounds, in f32:
#
#   hvp         one Hessian-vector product: ours (`--hvp`, autodiff::func::hvp) against
#               torch_hvp.py's double backward and torch.func.jvp over torch.func.grad
#   per-sample  every parameter's gradient for each example: ours batched
#               (`--per-sample`, autodiff::func::per_sample) against our own loop of
#               single-example passes, torch_per_sample.py's
#               torch.func.vmap(torch.func.grad) and its loop of autograd.grad calls
#
# Prints for every other variant both sides' median times and speedup = their_ms /
# our_ms (min, median, max over rounds; above 1 means ours is faster), and the same for
# each side's fastest call over all rounds (a second view when other work shares the
# cores). Then one f64 call on each side, and the results' norms next to each other:
# both sides draw the same parameters (and direction), so the norms agree to rounding.
#
#   bench/transform.sh hvp|per-sample [--rounds N] [--threads N] [--reps N]
#
# --reps: timed calls per run and side (default 200); each run reports their median.
# PyTorch lives in a venv outside the repository: $BENCH_VENV, default
# ~/.cache/backprop/bench-venv, created with `pip install torch numpy` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

case ${1-} in
  hvp) flag=--hvp script=torch_hvp.py norm=hvp_norm what="one HVP" ;;
  per-sample) flag=--per-sample script=torch_per_sample.py norm=grads_norm what="per-sample gradients" ;;
  *) echo "usage: bench/transform.sh hvp|per-sample [--rounds N] [--threads N] [--reps N]" >&2; exit 2 ;;
esac
shift
rounds=3 threads=$(nproc) reps=200
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=${2-}; shift 2 || shift ;;
    --threads) threads=${2-}; shift 2 || shift ;;
    --reps) reps=${2-}; shift 2 || shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
whole_numbers rounds threads reps

torch_venv

bench_and_data

results=$(mktemp)
trap 'rm -f "$results"' EXIT
ours() { ./target/release/examples/bench "$flag" --threads "$threads" --data-dir "$data_dir" "$@" | grep -E '^(RESULT|CHECK) ' >>"$results"; }
theirs() { "$venv/bin/python" "bench/reference/$script" --threads "$threads" --data-dir "$data_dir" "$@" | grep -E '^(RESULT|CHECK) ' >>"$results"; }
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  ours --reps "$reps"
  theirs --reps "$reps"
done
echo "f64 check" >&2
ours --dtype f64 --reps 1 --warmup 0
theirs --dtype f64 --reps 1 --warmup 0

"$venv/bin/python" - "$results" "$threads" "$reps" "$what" "$norm" <<'PY'
import statistics, sys
results, threads, reps, what, norm_key = sys.argv[1:]
rows = [(line.split()[0], dict(kv.split("=", 1) for kv in line.split()[1:])) for line in open(results)]
timed = [r for kind, r in rows if kind == "RESULT" and r["dtype"] == "f32"]
impls = list(dict.fromkeys(r["impl"] for r in timed))
ours = [float(r["median_ms"]) for r in timed if r["impl"] == "backprop"]
print(f"{what} of network B's cost, batch 128, f32, {threads} thread(s), median of {reps} per run, {len(ours)} round(s)")
# The fastest call of each side (best) is a second view when other work shares the cores.
ours_best = min(float(r["min_ms"]) for r in timed if r["impl"] == "backprop")
print(f"{'variant':<24}{'ours ms':>9}{'its ms':>10}{'speedup min':>13}{'median':>8}{'max':>7}"
      f"{'ours best':>11}{'its best':>12}{'speedup':>9}")
for impl in impls:
    if impl == "backprop":
        continue
    theirs = [float(r["median_ms"]) for r in timed if r["impl"] == impl]
    theirs_best = min(float(r["min_ms"]) for r in timed if r["impl"] == impl)
    speedups = [t / o for o, t in zip(ours, theirs)]
    print(f"{impl:<24}{statistics.median(ours):>9.3f}{statistics.median(theirs):>10.3f}"
          f"{min(speedups):>13.2f}{statistics.median(speedups):>8.2f}{max(speedups):>7.2f}"
          f"{ours_best:>11.3f}{theirs_best:>12.3f}{theirs_best / ours_best:>9.2f}")
print("norms (relative difference from ours):")
for dtype in ("f32", "f64"):
    checks = {r["impl"]: float(r[norm_key]) for kind, r in rows if kind == "CHECK" and r["dtype"] == dtype}
    base = checks["backprop"]
    others = "".join(f"  {impl} {n:.15g} ({abs(n - base) / base:.1e})" for impl, n in checks.items() if impl != "backprop")
    print(f"  {dtype}: backprop {base:.15g}{others}")
PY
