"""PyTorch reference for examples/bench.rs: the networks A to D of docs/networks.md with the same
data, hyper-parameters, batch order policy (reshuffled every epoch from a seed) and
thread count. Prints the same RESULT line as the Rust harness.

    python bench/reference/torch_mnist.py --net a --epochs 3 --threads 2 --data-dir DIR

Network a96 (alias 3b1b-96) is A's 784-16-16-10 shape trained for accuracy, as
nn::Network::A96: ReLU, He-normal weights, cross-entropy, AdamW with OneCycleLR (PyTorch's
defaults, momentum not cycled) over the run's epochs, and every training image shifted
each epoch by its own random offset of up to --shift pixels (drawn from the seed and the
epoch). Its defaults: lr 1e-2 (the one-cycle's peak), batch 128, weight decay 0, shift 1;
the recipe trains 40 epochs:

    python bench/reference/torch_mnist.py --net a96 --epochs 40 --seed 1 --data-dir DIR

Network e (alias pytorch) is PyTorch's own MNIST example (pytorch/examples, mnist/main.py),
as examples/pytorch_mnist.rs: its Net, Adadelta at 1.0, StepLR(1, 0.7) stepped each epoch,
batch 64, dropout on in training and off for the test. Its accuracy after every epoch:

    python bench/reference/torch_mnist.py --net e --epochs 14 --seed 1 --test-every-epoch --data-dir DIR
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


def a96(hidden, lr, weight_decay):
    """Network A96 (docs/networks.md): He-normal weights (N(0, 2/fan_in)) and zero biases
    for ReLU, N(0, 1/fan_in) for sigmoid (as nn::Init::He and ScaledNormal), logits out."""
    act = {"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid}[hidden]
    gain = 2.0 if hidden == "relu" else 1.0
    mods = []
    sizes = [784, 16, 16, 10]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(a, b)
        torch.nn.init.normal_(lin.weight, 0.0, (gain / a) ** 0.5)
        torch.nn.init.zeros_(lin.bias)
        mods.append(lin)
        if i + 2 < len(sizes):
            mods.append(act())
    model = torch.nn.Sequential(*mods)
    # AdamW's weight_decay defaults to 0.01 in PyTorch; the recipe says what it is.
    return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def shifted(images, max_shift, gen):
    """Every [28, 28] image moved by its own offset (dx, dy), each uniform in
    -max_shift..max_shift, zeros moved in (nn::Dataset::shifted)."""
    k = max_shift
    n = images.shape[0]
    padded = torch.nn.functional.pad(images, (k, k, k, k))
    dx = torch.randint(-k, k + 1, (n,), generator=gen)
    dy = torch.randint(-k, k + 1, (n,), generator=gen)
    out = torch.empty_like(images)
    for i in range(-k, k + 1):
        for j in range(-k, k + 1):
            sel = ((dx == i) & (dy == j)).nonzero().squeeze(1)
            # Output (y, x) reads input (y - dy, x - dx), i.e. padded (y - dy + k, x - dx + k).
            out[sel] = padded[sel, k - j:k - j + 28, k - i:k - i + 28]
    return out


class Standardize(torch.nn.Module):
    """(x - mean) / std inside the model, as nn::Standardize (the example's Normalize)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        return (x - self.mean) / self.std


def pytorch_example():
    """Network E (docs/networks.md): PyTorch's own MNIST example, mnist/main.py's Net and
    recipe, as nn::Model::pytorch_mnist. Layers keep PyTorch's default initialisation
    (U(+-1/sqrt(fan_in)), nn::Init::UniformFanIn); the log-softmax with the negative
    log-likelihood is cross_entropy."""
    model = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 28, 28)),
        Standardize(0.1307, 0.3081),
        torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Dropout(0.25),
        torch.nn.Flatten(),
        torch.nn.Linear(9216, 128), torch.nn.ReLU(), torch.nn.Dropout(0.5),
        torch.nn.Linear(128, 10),
    )
    return model, torch.optim.Adadelta(model.parameters(), lr=1.0), 64


def build(net):
    if net == "d":
        return lenet()
    if net == "e":
        return pytorch_example()
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


def accuracy(model, x, y):
    """Test accuracy in evaluation mode, in batches of 1000 (as the example's test batch)."""
    model.eval()
    with torch.no_grad():
        right = sum((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
                    for i in range(0, x.shape[0], 1000))
    return right / x.shape[0]


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
    p.add_argument("--hidden", default="relu", choices=["relu", "sigmoid"], help="a96 only")
    p.add_argument("--lr", type=float, default=1e-2, help="a96 only: the one-cycle peak")
    p.add_argument("--batch", type=int, default=128, help="a96 only")
    p.add_argument("--weight-decay", type=float, default=0.0, help="a96 only (AdamW's)")
    p.add_argument("--shift", type=int, default=1, help="a96 only: augmentation, pixels")
    p.add_argument("--schedule", default="one-cycle", choices=["one-cycle", "constant"],
                   help="a96 only")
    p.add_argument("--test-every-epoch", action="store_true",
                   help="also print the test accuracy after each epoch (outside the timing)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr, xte, yte = load(a.data_dir)
    a.net = {"3b1b-96": "a96", "pytorch": "e"}.get(a.net, a.net)
    scheduler = epoch_scheduler = None
    if a.net == "a96":
        model, opt = a96(a.hidden, a.lr, a.weight_decay)
        batch = a.batch
        if a.schedule == "one-cycle":
            steps = a.epochs * ((xtr.shape[0] + batch - 1) // batch)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=a.lr, total_steps=steps, cycle_momentum=False)
    else:
        model, opt, batch = build(a.net)
        if a.net == "e":  # stepped once an epoch
            epoch_scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    gen = torch.Generator().manual_seed(a.seed)
    # The augmentation's own stream, so that it leaves the batch order's alone.
    augment = torch.Generator().manual_seed(a.seed + 0xA96)
    train_images = xtr
    times = []
    for epoch in range(a.epochs):
        start = time.perf_counter()
        if a.net == "a96" and a.shift > 0:
            xtr = shifted(train_images.reshape(-1, 28, 28), a.shift, augment).reshape(-1, 784)
        order = torch.randperm(xtr.shape[0], generator=gen)
        model.train()
        total = 0.0
        for i in range(0, xtr.shape[0], batch):
            idx = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = cost(a.net, model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item()
        if epoch_scheduler is not None:
            epoch_scheduler.step()
        times.append(time.perf_counter() - start)
        line = f"net {a.net} epoch {epoch + 1} {times[-1]:.3f}s cost {total / ((xtr.shape[0] + batch - 1) // batch):.5f}"
        if a.test_every_epoch:
            line += f" test accuracy {accuracy(model, xte, yte):.4f}"
        print(line, flush=True)
    acc = accuracy(model, xte, yte)
    median = sorted(times)[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"RESULT impl=pytorch net={a.net} threads={a.threads} epochs={len(times)} samples_per_s={xtr.shape[0] / median:.0f} "
          f"median_epoch_s={median:.4f} peak_rss_mib={rss:.1f} accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
