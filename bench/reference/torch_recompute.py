"""PyTorch reference for `examples/bench.rs --steps N --batch B [--recompute default]`
(bench/recompute.sh): training steps of LeNet (network D) or network C on fixed batches of
MNIST, with and without torch.utils.checkpoint.checkpoint(..., use_reentrant=False) over the
blocks our `--recompute default` names: LeNet's two convolution stages (conv, pool, ReLU;
our layers 1..4 and 4..7) and C's two hidden layers as one block (our 0..2). Prints the
same kind of RESULT line as the Rust harness.

    python bench/reference/torch_recompute.py --net d --batch 1024 --steps 20 --threads 2 \\
        --data-dir DIR [--recompute default]

One process per configuration: peak RSS only grows. After loading the data, building the
model and one untimed warm-up step, the script reads VmRSS, resets the high-water mark
(/proc/self/clear_refs, as examples/bench.rs does) and runs --steps timed steps (forward,
backward, optimizer step; the optimizer of torch_mnist.py's recipe). step_peak_mib is
VmHWM after the steps minus VmRSS just before them; baseline_rss_mib is VmHWM after the
warm-up. tape_mib is the bytes of the distinct tensors autograd saves for backward during
the forward pass (a saved_tensors_hooks count in the warm-up step, parameters included as
they are saved; the checkpointed blocks' tensors are not saved, only recomputed). For CPU
tensors PyTorch keeps no allocator statistics, so peak RSS (glibc malloc, default
settings) is the memory figure; live_peak_mib is the allocator-independent one: the peak
of live tensor bytes above the step's start in one more step after the timed ones, from
the profiler's memory events (torch.profiler, profile_memory=True).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import torch
from torch.utils.checkpoint import checkpoint

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_mnist import build, cost, find, read_idx  # noqa: E402


def proc_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0), as examples/bench.rs's reset_peak_rss."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class Checkpointed(torch.nn.Module):
    """A block of layers run under torch.utils.checkpoint when `on`."""

    def __init__(self, layers, on):
        super().__init__()
        self.block = torch.nn.Sequential(*layers)
        self.on = on

    def forward(self, x):
        if self.on:
            return checkpoint(self.block, x, use_reentrant=False)
        return self.block(x)


def model_for(net, recompute):
    """torch_mnist.build's model and optimizer, its layers grouped into our blocks."""
    model, opt, _ = build(net)
    m = list(model)
    if net == "d":
        # torch_mnist's LeNet applies ReLU before pooling; ours (and the brief's blocks)
        # pool first. Max pooling and ReLU commute, so the function and the parameters
        # are the same; the order here is ours, so that the saved values are too.
        unflatten, conv1, relu1, pool1, conv2, relu2, pool2 = m[:7]
        layers = [unflatten,
                  Checkpointed([conv1, pool1, relu1], recompute),
                  Checkpointed([conv2, pool2, relu2], recompute)] + m[7:]
    elif net == "c":
        # Linear, ReLU, Linear, ReLU, Linear: both hidden layers as one block.
        layers = [Checkpointed(m[:4], recompute)] + m[4:]
    else:
        raise SystemExit("--net d or c")
    return torch.nn.Sequential(*layers), opt


def saved_bytes(step):
    """Bytes of the distinct tensors autograd saves while `step` runs its forward pass."""
    seen = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step(forward_only=True)
    return loss, sum(seen.values())


def live_peak_bytes(step):
    """Peak of live CPU tensor bytes during `step` above its start, as PyTorch's profiler
    sees the c10 allocator's allocations and frees ("Total Allocated" of its [memory]
    events counts from the profile's start): independent of malloc and RSS."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    return max([0] + [e["args"]["Total Allocated"] for e in events
                      if e.get("name") == "[memory]" and e["args"].get("Device Type") == 0])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--net", default="d", choices=["c", "d"])
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--recompute", choices=["default"],
                   help="checkpoint the blocks examples/bench.rs's --recompute default names")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    # Only the training images and labels, and from them a few fixed batches, cycled, as
    # examples/bench.rs's step_bench: batch b holds images (b * batch + i) mod 60,000.
    raw = read_idx(find(a.data_dir, "train-images-idx3-ubyte"))
    labels = read_idx(find(a.data_dir, "train-labels-idx1-ubyte"))
    n = raw.shape[0]
    batches = []
    for b in range(min(a.steps, 4)):
        idx = [(b * a.batch + i) % n for i in range(a.batch)]
        x = torch.from_numpy(raw[idx].reshape(a.batch, -1).astype("float32") / 255.0)
        y = torch.from_numpy(labels[idx].astype("int64"))
        batches.append((x, y))
    del raw, labels

    model, opt = model_for(a.net, a.recompute is not None)
    state = {"i": 0}

    def step(forward_only=False):
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        loss = cost(a.net, model(x), y)
        if forward_only:
            return loss
        loss.backward()
        opt.step()
        return loss.item()

    # Warm-up, untimed: the forward pass under a saved-tensors count, then its backward
    # and update (the count's hooks are off again before backward).
    loss, tape = saved_bytes(step)
    loss.backward()
    opt.step()
    del loss
    state["i"] = 0
    baseline = proc_mib("VmHWM")

    before = proc_mib("VmRSS")
    reset_peak_rss()
    times = []
    last = 0.0
    for _ in range(a.steps):
        start = time.perf_counter()
        last = step()
        times.append((time.perf_counter() - start) * 1e3)
    peak = proc_mib("VmHWM")
    # One more step, after the RSS is read, under the profiler's allocation count.
    live = live_peak_bytes(step) / (1024.0 * 1024.0)
    times.sort()
    print(f"RESULT impl=torch net={a.net} op=step batch={a.batch} threads={a.threads} steps={a.steps} "
          f"recompute={'default' if a.recompute else 'none'} median_ms={times[len(times) // 2]:.2f} "
          f"min_ms={times[0]:.2f} peak_rss_mib={peak:.1f} baseline_rss_mib={baseline:.1f} "
          f"rss_before_mib={before:.1f} step_peak_mib={peak - before:.1f} "
          f"tape_mib={tape / (1024.0 * 1024.0):.1f} live_peak_mib={live:.1f} cost={last:.5f}")


if __name__ == "__main__":
    main()
