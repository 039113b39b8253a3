"""PyTorch reference for `examples/bench.rs --per-sample`: every parameter's gradient for
each of the first 128 MNIST training images under network B's cost (docs/networks.md:
784-128-128-10, ReLU, softmax cross-entropy), timed two ways:

  torch-func-vmap-grad  torch.func.vmap(torch.func.grad(f)) over the examples, f one
                        example's cost (the torch.func recipe for per-sample gradients)
  torch-loop            one torch.autograd.grad per example, stacked

Each timed call includes the forward pass. Prints, per variant, the median over --reps
repetitions after --warmup untimed ones, and a CHECK line with the mean cost and the
norm of all per-sample gradients together; bench/transform.sh reads both beside the
Rust harness's.

    python bench/reference/torch_per_sample.py --threads 2 --data-dir DIR [--dtype f32|f64]

The parameters are bench/reference/torch_hvp.py's (the generator both sides implement),
so the norms can be compared.
"""
import argparse
import os
import warnings

import torch

from torch_hvp import BATCH, batch, non_negative, parameters, positive, time_it


def example_cost(params, x, y):
    """One example's cost under network B (x: [784], y: a class index)."""
    w1, b1, w2, b2, w3, b3 = params
    h = torch.relu(x @ w1 + b1)
    h = torch.relu(h @ w2 + b2)
    logits = h @ w3 + b3
    return torch.nn.functional.cross_entropy(logits[None], y[None])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=positive, default=os.cpu_count())
    p.add_argument("--reps", type=positive, default=200, help="timed calls (the median is reported)")
    p.add_argument("--warmup", type=non_negative, default=50, help="untimed calls first")
    p.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    p.add_argument("--data-dir", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", message=".*torch.jit.script. is deprecated", category=FutureWarning)
    dtype = {"f32": torch.float32, "f64": torch.float64}[a.dtype]
    params, _ = parameters(dtype)
    x, y = batch(a.data_dir, dtype)

    per_sample_grad = torch.func.vmap(
        torch.func.grad_and_value(example_cost), in_dims=(None, 0, 0)
    )

    def vmap_grad():
        grads, losses = per_sample_grad(params, x, y)
        return losses, grads

    leaves = tuple(t.clone().requires_grad_() for t in params)

    def loop():
        losses, rows = [], []
        for i in range(BATCH):
            loss = example_cost(leaves, x[i], y[i])
            rows.append(torch.autograd.grad(loss, leaves))
            losses.append(loss.detach())
        return torch.stack(losses), tuple(torch.stack(g) for g in zip(*rows))

    results = {}
    # The loop is two orders slower: at most 20 timed calls after at most 3 untimed ones.
    for impl, fn, reps, warmup in [
        ("torch-func-vmap-grad", vmap_grad, a.reps, a.warmup),
        ("torch-loop", loop, min(a.reps, 20), min(a.warmup, 3)),
    ]:
        median_ms, min_ms = time_it(fn, warmup, reps)
        losses, grads = fn()
        results[impl] = grads
        norm = sum(float((g.double() ** 2).sum()) for g in grads) ** 0.5
        common = f"impl={impl} net=b op=per_sample batch={BATCH} threads={a.threads} dtype={a.dtype}"
        print(f"RESULT {common} reps={reps} median_ms={median_ms:.4f} min_ms={min_ms:.4f}")
        print(f"CHECK {common} loss={float(losses.mean()):.17g} grads_norm={norm:.17g}")
    a_g, b_g = results.values()
    diff = max(float((p - q).abs().max()) for p, q in zip(a_g, b_g))
    print(f"the two variants' gradients differ by at most {diff:.3g} in any element")


if __name__ == "__main__":
    main()
