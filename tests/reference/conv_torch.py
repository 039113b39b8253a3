"""Outside oracle for the convolution tests in tests/oracle.rs: conv2d, max and average
pooling values and gradients computed by PyTorch in float64 (torch.autograd).

Regenerate with (any venv outside the repo):
    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    /tmp/torchvenv/bin/python tests/reference/conv_torch.py > tests/reference/conv_torch.txt

Same format as oracle.txt: each case lists its inputs (deterministic values, so no RNG
has to match), the function's value and the gradient with respect to every parameter,
printed with repr(), which round-trips float64 exactly.
"""
import numpy as np
import torch
import torch.nn.functional as F


def filled(shape, k):
    """Deterministic, irregular values in roughly [-1.5, 1.5]."""
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n, dtype=np.float64)
    return (np.sin(i * 0.731 + k) * 1.5 * np.cos(i * 0.17 + 2 * k)).reshape(shape)


def emit(name, constants, params, f):
    print(f"case {name}")
    for key, v in constants.items():
        print(f"constant {key} {' '.join(map(str, v.shape))} : {' '.join(repr(float(x)) for x in v.ravel())}")
    for key, v in params.items():
        print(f"param {key} {' '.join(map(str, v.shape))} : {' '.join(repr(float(x)) for x in v.ravel())}")
    c = {k: torch.tensor(v, dtype=torch.float64) for k, v in constants.items()}
    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    value = f(c, p)
    value.backward()
    print(f"value : {float(value.detach())!r}")
    for key, t in p.items():
        print(f"grad {key} : {' '.join(repr(float(x)) for x in t.grad.numpy().ravel())}")
    print()


print(f"# PyTorch {torch.__version__}, float64. Command: python tests/reference/conv_torch.py > tests/reference/conv_torch.txt")


# LeNet's first block: 5x5 convolution with padding 2 and a bias, ReLU, 2x2 max pooling;
# then the second convolution without padding.
def lenet_block(c, p):
    y = F.max_pool2d(F.relu(F.conv2d(c["x"], p["w1"], p["b1"], padding=2)), 2)
    z = F.relu(F.conv2d(y, p["w2"], p["b2"]))
    return (z * c["r"]).sum()


emit("torch_lenet_block", {"x": filled((2, 1, 12, 12), 21), "r": filled((2, 4, 2, 2), 22)},
     {"w1": filled((3, 1, 5, 5), 23), "b1": filled((3,), 24), "w2": filled((4, 3, 5, 5), 25), "b2": filled((4,), 26)},
     lenet_block)


# Stride 2 with asymmetric padding, dilation and groups, then 3x3 average pooling.
def strided_grouped(c, p):
    y = F.conv2d(c["x"], p["w1"], stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    a = F.avg_pool2d(torch.tanh(y), 3, stride=1, padding=1)
    return (a * a).sum() + y.sum()


emit("torch_strided_grouped", {"x": filled((2, 4, 9, 8), 27)}, {"w1": filled((6, 2, 3, 2), 28)}, strided_grouped)
