"""PyTorch reference for examples/bench.rs: the networks A to D of docs/networks.md with the same
data, hyper-parameters, batch order policy (reshuffled every epoch from a seed) and
thread count. Prints the same RESULT line as the Rust harness.

    python bench/reference/torch_mnist.py --net a --epochs 3 --threads 2 --data-dir DIR
"""
import argparse
import gzip
import os
import resource
import time

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def find(d, name):
    for candidate in (os.path.join(d, name), os.path.join(d, name + ".gz")):
        if os.path.exists(candidate):
            return candidate
    raise SystemExit(f"{d} lacks {name}")


def load(d):
    def images(n):
        x = read_idx(find(d, n)).astype(np.float32) / 255.0
        return torch.from_numpy(x.reshape(x.shape[0], -1))

    def labels(n):
        return torch.from_numpy(read_idx(find(d, n)).astype(np.int64))

    return (images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
            images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


def lenet():
    """Network D (docs/networks.md), Xavier-uniform weights and zero biases as nn::Model::lenet."""
    model = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 28, 28)),
        torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(),
        torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    )
    for m in model:
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), 128


def build(net):
    if net == "d":
        return lenet()
    if net == "a":
        layers, act, last = [784, 16, 16, 10], torch.nn.Sigmoid, torch.nn.Sigmoid
    elif net == "b":
        layers, act, last = [784, 128, 128, 10], torch.nn.ReLU, None
    else:
        layers, act, last = [784, 1024, 1024, 10], torch.nn.ReLU, None
    mods = []
    for i, (a, b) in enumerate(zip(layers[:-1], layers[1:])):
        lin = torch.nn.Linear(a, b)
        if net == "a":  # N(0, 1/fan_in) weights, zero biases, as nn::Init::ScaledNormal
            torch.nn.init.normal_(lin.weight, 0.0, (1.0 / a) ** 0.5)
        else:  # He normal, zero biases, as nn::Init::He
            torch.nn.init.normal_(lin.weight, 0.0, (2.0 / a) ** 0.5)
        torch.nn.init.zeros_(lin.bias)
        mods.append(lin)
        if i + 2 < len(layers):
            mods.append(act())
        elif last is not None:
            mods.append(last())
    model = torch.nn.Sequential(*mods)
    if net == "a":
        opt, batch = torch.optim.SGD(model.parameters(), lr=3.0), 100
    elif net == "b":
        opt, batch = torch.optim.Adam(model.parameters(), lr=1e-3), 128
    else:
        opt, batch = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), 256
    return model, opt, batch


def cost(net, out, y):
    if net == "a":  # quadratic cost 1/(2n) sum ||a - y||^2
        onehot = torch.nn.functional.one_hot(y, 10).to(out.dtype)
        return ((out - onehot) ** 2).sum() / (2 * out.shape[0])
    return torch.nn.functional.cross_entropy(out, y)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--net", default="a")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--test-every-epoch", action="store_true",
                   help="also print the test accuracy after each epoch (outside the timing)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr, xte, yte = load(a.data_dir)
    model, opt, batch = build(a.net)
    gen = torch.Generator().manual_seed(a.seed)
    times = []
    for epoch in range(a.epochs):
        start = time.perf_counter()
        order = torch.randperm(xtr.shape[0], generator=gen)
        total = 0.0
        for i in range(0, xtr.shape[0], batch):
            idx = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = cost(a.net, model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item()
        times.append(time.perf_counter() - start)
        line = f"net {a.net} epoch {epoch + 1} {times[-1]:.3f}s cost {total / ((xtr.shape[0] + batch - 1) // batch):.5f}"
        if a.test_every_epoch:
            with torch.no_grad():
                line += f" test accuracy {(model(xte).argmax(1) == yte).float().mean().item():.4f}"
        print(line)
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    median = sorted(times)[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"RESULT impl=pytorch net={a.net} threads={a.threads} epochs={len(times)} samples_per_s={xtr.shape[0] / median:.0f} "
          f"median_epoch_s={median:.4f} peak_rss_mib={rss:.1f} accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
