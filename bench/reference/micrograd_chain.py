"""Baseline for benches/scalar_tape.rs: the same 5-node-per-step chain in micrograd
(pip install micrograd), record + backward, in millions of nodes per second.
micrograd's backward is recursive, so chains are 10,000 nodes long and repeated."""
import sys
import time

from micrograd.engine import Value

sys.setrecursionlimit(100000)
reps, iters = 20, 2000   # 5 nodes per iteration -> 10k nodes per chain
start = time.perf_counter()
for r in range(reps):
    x = Value(0.5); y = x
    for i in range(iters):
        y = y * 0.9999999 + x
        y = (y * 1.0000001).relu()
        y = y + i * 1e-9
    y.backward()
t = time.perf_counter() - start
nodes = reps * iters * 5
print(f"micrograd: {nodes/t/1e6:.3f} M nodes/s (record+backward, chains of {iters*5} nodes)")
