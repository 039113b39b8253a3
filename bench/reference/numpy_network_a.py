"""Network A (784-16-16-10, sigmoid, quadratic cost, SGD lr 3.0, batch 100,
N(0, 1/fan_in) weights, zero biases) written by hand in NumPy: an independent check of
what one and two epochs of this recipe reach (86-87% and ~91.5% here).

    python bench/reference/numpy_network_a.py DATA_DIR   # the four raw MNIST files
"""
import sys

import numpy as np

d = sys.argv[1]


def images(f):
    return np.fromfile(f"{d}/{f}", dtype=np.uint8)[16:].reshape(-1, 784).astype(np.float32) / 255


def labels(f):
    return np.fromfile(f"{d}/{f}", dtype=np.uint8)[8:]


X, Y = images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte")
Xt, Yt = images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte")
sig = lambda z: 1 / (1 + np.exp(-z))
for seed in range(3):
    rng = np.random.default_rng(seed)
    sizes = [784, 16, 16, 10]
    W = [rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    B = [np.zeros(b, np.float32) for b in sizes[1:]]
    for epoch in range(2):
        order = rng.permutation(len(X))
        for i in range(0, len(X), 100):
            idx = order[i:i + 100]
            a = [X[idx]]
            for w, b in zip(W, B):
                a.append(sig(a[-1] @ w + b))
            y = np.eye(10, dtype=np.float32)[Y[idx]]
            delta = (a[-1] - y) * a[-1] * (1 - a[-1]) / len(idx)  # dC/dz, C = 1/(2n) sum ||a - y||^2
            for l in range(2, -1, -1):
                gw, gb = a[l].T @ delta, delta.sum(0)
                if l > 0:
                    delta = (delta @ W[l].T) * a[l] * (1 - a[l])
                W[l] -= 3.0 * gw
                B[l] -= 3.0 * gb
        a = Xt
        for w, b in zip(W, B):
            a = sig(a @ w + b)
        print(f"seed {seed} epoch {epoch + 1}: test accuracy {(a.argmax(1) == Yt).mean():.4f}")
