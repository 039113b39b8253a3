"""PyTorch reference for `examples/bench.rs --hvp`: one Hessian-vector product of network
B's cost (docs/networks.md: 784-128-128-10, ReLU, softmax cross-entropy, batch mean) on
the first 128 MNIST training images, timed two ways:

  torch-double-backward  g = autograd.grad(loss, params, create_graph=True), then
                         autograd.grad(sum_i <g_i, v_i>, params) (reverse over reverse)
  torch-func-jvp-grad    torch.func.jvp(torch.func.grad(f), (params,), (v,))
                         (forward over reverse)

Each timed HVP includes the forward pass. Prints, per variant, the median over --reps
repetitions after --warmup untimed ones, and a CHECK line with the cost and the HVP's
norm; bench/transform.sh hvp reads both beside the Rust harness's.

    python bench/reference/torch_hvp.py --threads 2 --data-dir DIR [--dtype f32|f64]

The parameters and the direction v come from a generator both sides implement
(`normals` below and `examples/bench.rs`), so the norms can be compared: He weights
N(0, 2/fan_in) stored [inputs, outputs], zero biases, v ~ N(0, 1) for every parameter.
"""
import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch

from torch_mnist import find, read_idx

SIZES = [784, 128, 128, 10]
BATCH = 128


def splitmix64(stream, n):
    """The first n outputs of SplitMix64 started from state `stream`."""
    with np.errstate(over="ignore"):
        z = np.uint64(stream) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def normals(stream, n):
    """n standard normals (f64) by Box-Muller from pairs of SplitMix64 draws, each draw
    mapped to u = (top 53 bits + 1) / 2^53 in (0, 1]."""
    u = ((splitmix64(stream, 2 * n) >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0 ** -53
    return np.sqrt(-2.0 * np.log(u[0::2])) * np.cos(2.0 * np.pi * u[1::2])


def parameters(dtype):
    """(params, v): weight l from stream 2l, scaled by sqrt(2/fan_in); biases zero; the
    direction for parameter p (W1, b1, W2, b2, W3, b3 in that order) from stream 100 + p."""
    params = []
    for l, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        w = normals(2 * l, fan_in * fan_out).reshape(fan_in, fan_out) * np.sqrt(2.0 / fan_in)
        params += [w, np.zeros(fan_out)]
    v = [normals(100 + p, x.size).reshape(x.shape) for p, x in enumerate(params)]
    to = lambda xs: tuple(torch.from_numpy(x).to(dtype).contiguous() for x in xs)
    return to(params), to(v)


def batch(data_dir, dtype):
    """The first BATCH training images, pixels in [0, 1] flattened, and their labels."""
    images = read_idx(find(data_dir, "train-images-idx3-ubyte"))[:BATCH]
    labels = read_idx(find(data_dir, "train-labels-idx1-ubyte"))[:BATCH]
    x = torch.from_numpy(images.reshape(BATCH, -1).astype(np.float64) / 255.0).to(dtype)
    return x, torch.from_numpy(labels.astype(np.int64))


def cost(params, x, y):
    """Network B's cost, each layer x W + b with W stored [inputs, outputs]."""
    w1, b1, w2, b2, w3, b3 = params
    h = torch.relu(torch.addmm(b1, x, w1))
    h = torch.relu(torch.addmm(b2, h, w2))
    return torch.nn.functional.cross_entropy(torch.addmm(b3, h, w3), y)


def time_it(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def positive(s):
    n = int(s)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def non_negative(s):
    n = int(s)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {n}")
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=positive, default=os.cpu_count())
    p.add_argument("--reps", type=positive, default=200, help="timed HVPs (the median is reported)")
    # torch.func's first ~25 calls here took ~400 ms each (a profiling JIT at work), then ~5 ms.
    p.add_argument("--warmup", type=non_negative, default=50, help="untimed HVPs first")
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--data-dir", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    # torch.func's first call scripts a helper with the deprecated torch.jit.script.
    warnings.filterwarnings("ignore", message=".*torch.jit.script. is deprecated", category=FutureWarning)
    dtype = {"f32": torch.float32, "f64": torch.float64}[a.dtype]
    params, v = parameters(dtype)
    x, y = batch(a.data_dir, dtype)

    leaves = tuple(t.clone().requires_grad_() for t in params)

    def double_backward():
        loss = cost(leaves, x, y)
        g = torch.autograd.grad(loss, leaves, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
        return loss, torch.autograd.grad(dot, leaves)

    grad_cost = torch.func.grad_and_value(lambda ps: cost(ps, x, y))

    def func_jvp_grad():
        (g, loss), (hv, _) = torch.func.jvp(grad_cost, (params,), (v,))
        return loss, hv

    results = {}
    for impl, fn in [("torch-double-backward", double_backward), ("torch-func-jvp-grad", func_jvp_grad)]:
        median_ms, min_ms = time_it(fn, a.warmup, a.reps)
        loss, hv = fn()
        results[impl] = hv
        norm = sum(float((h.double() ** 2).sum()) for h in hv) ** 0.5
        common = f"impl={impl} net=b op=hvp batch={BATCH} threads={a.threads} dtype={a.dtype}"
        print(f"RESULT {common} reps={a.reps} median_ms={median_ms:.4f} min_ms={min_ms:.4f}")
        print(f"CHECK {common} loss={float(loss.detach()):.17g} hvp_norm={norm:.17g}")
    a_hv, b_hv = results.values()
    diff = max(float((p - q).abs().max()) for p, q in zip(a_hv, b_hv))
    print(f"the two variants' HVPs differ by at most {diff:.3g} in any element")


if __name__ == "__main__":
    main()
