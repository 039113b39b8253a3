"""Outside oracle for tests/oracle_second_order.rs: second- and third-order and
forward-mode derivatives computed by JAX in float64.

Regenerate with (any venv outside the repo):
    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install jax numpy
    /tmp/refvenv/bin/python tests/reference/oracle2.py > tests/reference/oracle2.txt

Cases:
  hvp_network_a     network A (docs/networks.md): 784-16-16-10, sigmoid after every
                    layer, layer = x W + b with W stored [inputs, outputs], quadratic
                    cost 1/(2n) sum ||a3 - y||^2 with one-hot y, over n = 4 images.
                    Prints the cost, the gradient and the Hessian-vector product H v
                    for every parameter (v is one direction per parameter).
  jvp_lenet         LeNet-5 as nn::Model::lenet builds it, NCHW, on 2 images
                    [2, 1, 28, 28] (the images are constants):
                      conv1: conv 5x5, 1 -> 6, stride 1, padding 2, weight [6, 1, 5, 5],
                             bias [6]                           -> [2, 6, 28, 28]
                      max-pool 2x2 stride 2, then ReLU          -> [2, 6, 14, 14]
                      conv2: conv 5x5, 6 -> 16, stride 1, padding 0, weight
                             [16, 6, 5, 5], bias [16]           -> [2, 16, 10, 10]
                      max-pool 2x2 stride 2, then ReLU          -> [2, 16, 5, 5]
                      flatten (row-major over [16, 5, 5])       -> [2, 400]
                      fc1: relu(x W + b), W [400, 120], b [120]
                      fc2: relu(x W + b), W [120, 84], b [84]
                      fc3: x W + b, W [84, 10], b [10]          -> logits [2, 10]
                    (cross-correlation as in PyTorch, no kernel flip). Prints the
                    logits and their tangent (jax.jvp) for a tangent on every
                    parameter.
  hessian_tanh_243  h = tanh(x W1 + b1), logits = h W2 + b2 with W1 [2, 4], b1 [4],
                    W2 [4, 3], b2 [3]; cost = mean softmax cross-entropy over a batch
                    of 5 inputs x [5, 2] with labels in 0..3. The parameters are one
                    flat vector theta [27] = W1 (row-major), b1, W2 (row-major), b2.
                    Prints the cost, its gradient [27] and Hessian [27, 27].
  third_derivative  f(x) = sin(x) exp(x) at x = 0.7: f, f', f'', f'''; and
                    g(a, b) = a a b + exp(a b) + sin(b) / (1 + a a) at (0.3, -1.1):
                    g, its gradient [2], Hessian [2, 2] and third derivatives [2, 2, 2]
                    (T[i, j, k] = d^3 g / dp_i dp_j dp_k with p = (a, b)).

Line format (one record per line; '#' lines and blank lines are comments):
  case NAME
  input NAME D1 D2 ... : gen signed K FAN SUM WSUM ASUM
  input NAME D1 D2 ... : gen unit K 1 SUM WSUM ASUM
  input NAME D1 D2 ... : values V1 V2 ...
  labels NAME : I1 I2 ...
  out NAME D1 D2 ... : V1 V2 ...
No dimensions means a scalar. Every tensor is row-major. Numbers are printed with
repr(), which round-trips float64 exactly.

The large inputs (LeNet has 61,706 parameters and as many tangents) are not printed
but generated ("gen") by filled() below, which the Rust test reproduces bit for bit:
integer arithmetic, then one division and at most one more division by a square root,
each correctly rounded in IEEE float64 on both sides. (oracle.py's sin/cos filler
cannot be reproduced to the last bit in another language, so it would have to be
printed, which would make this file megabytes.) With i the row-major flat index:
  m       = (7 i^2 + 5003 i + 104729 K + 1) mod 8191
  signed: (m - 4095) / 2730 / sqrt(FAN)   in [-1.5, 1.5] / sqrt(FAN)
  unit:   m / 8190                        in [0, 1]   (pixels)
("/ sqrt(FAN)" scales like N(0, 1/fan_in) weights; FAN = 1 leaves values as they are,
sqrt(1) = 1 being exact.) SUM = sum v_i, WSUM = sum (i mod 10 + 1) v_i and
ASUM = sum |v_i|, each exactly rounded (math.fsum): a checksum the reader compares
with its own sums (to 1e-12 ASUM-relative) so a generator that drifted fails loudly.

Outputs, by case:
  hvp_network_a     out cost; out grad.P and out hvp.P for P in W1 b1 W2 b2 W3 b3
                    (directions are inputs v.P)
  jvp_lenet         out logits 2 10; out tangent 2 10 (tangents are inputs t.P for
                    P in conv1.weight ... fc3.bias)
  hessian_tanh_243  out value; out grad 27; out hessian 27 27
  third_derivative  out f_derivatives 4 (f, f', f'', f'''); out g; out g_grad 2;
                    out g_hessian 2 2; out g_third 2 2 2

Every value is also checked here a second way before it is printed (H v by forward-
over-reverse and by reverse-over-reverse, the LeNet tangent against the full
Jacobian from jax.jacrev, the Hessian by jacfwd(grad) and jacrev(grad), f's
derivatives against their closed forms), and the LeNet inputs are checked to sit
away from ReLU kinks and max-pool ties, so that rounding-level differences between
JAX and the Rust kernels cannot pick a different branch.
"""
import math

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np


def gen_values(shape, k, recipe, fan):
    """The generator described in the docstring; the Rust test has the same one."""
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n, dtype=np.int64)
    m = (7 * i * i + 5003 * i + 104729 * k + 1) % 8191
    if recipe == "signed":
        v = (m - 4095).astype(np.float64) / 2730.0 / np.sqrt(np.float64(fan))
    elif recipe == "unit":
        assert fan == 1
        v = m.astype(np.float64) / 8190.0
    else:
        raise ValueError(recipe)
    return v.reshape(shape)


def nums(a):
    return " ".join(repr(float(x)) for x in np.asarray(a, dtype=np.float64).ravel())


def dims(a):
    return " ".join(map(str, np.shape(a)))


def filled(name, shape, k, recipe="signed", fan=1):
    """Generates an input and prints its 'input ... : gen' line."""
    v = gen_values(shape, k, recipe, fan)
    flat = v.ravel()
    w = (np.arange(flat.size) % 10 + 1).astype(np.float64)
    sums = (math.fsum(flat), math.fsum(w * flat), math.fsum(np.abs(flat)))
    print(f"input {name} {dims(v)} : gen {recipe} {k} {fan} {' '.join(repr(s) for s in sums)}")
    return v


def literal(name, v):
    v = np.asarray(v, dtype=np.float64)
    print(f"input {name} {dims(v)} : values {nums(v)}")
    return v


def labels(name, ys):
    print(f"labels {name} : {' '.join(map(str, ys))}")
    return np.asarray(ys)


def out(name, v):
    print(f"out {name} {dims(v)} : {nums(v)}")


def agree(what, a, b, tol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    err = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))
    assert err <= tol, f"{what}: the two JAX computations differ by {err:e}"


print(f"# JAX {jax.__version__}, NumPy {np.__version__}, float64. "
      "Command: python tests/reference/oracle2.py > tests/reference/oracle2.txt")

# ---------------------------------------------------------------------------------
# a. Network A's quadratic cost: gradient and Hessian-vector product.
print("case hvp_network_a")
x = filled("x", (4, 784), 1, "unit")
y_idx = labels("y", [3, 7, 0, 9])
y = np.zeros((4, 10))
y[np.arange(4), y_idx] = 1.0
A_SHAPES = [("W1", (784, 16), 784), ("b1", (16,), 1), ("W2", (16, 16), 16), ("b2", (16,), 1),
            ("W3", (16, 10), 16), ("b3", (10,), 1)]
A_NAMES = [name for name, _, _ in A_SHAPES]
params = [filled(name, shape, 10 + j, fan=fan) for j, (name, shape, fan) in enumerate(A_SHAPES)]
dirs = [filled(f"v.{name}", shape, 20 + j, fan=fan) for j, (name, shape, fan) in enumerate(A_SHAPES)]


def network_a_cost(p):
    w1, b1, w2, b2, w3, b3 = p
    a1 = jax.nn.sigmoid(x @ w1 + b1)
    a2 = jax.nn.sigmoid(a1 @ w2 + b2)
    a3 = jax.nn.sigmoid(a2 @ w3 + b3)
    return jnp.sum((a3 - y) ** 2) / (2.0 * x.shape[0])


p = [jnp.asarray(t) for t in params]
v = [jnp.asarray(t) for t in dirs]
cost = network_a_cost(p)
grads, hv = jax.jvp(jax.grad(network_a_cost), (p,), (v,))  # forward over reverse
hv_rr = jax.grad(lambda q: sum(jnp.vdot(g, d) for g, d in zip(jax.grad(network_a_cost)(q), v)))(p)
for name, a, b in zip(A_NAMES, hv, hv_rr):
    agree(f"hvp {name}", a, b)
out("cost", cost)
for name, g in zip(A_NAMES, grads):
    out(f"grad.{name}", g)
for name, h in zip(A_NAMES, hv):
    out(f"hvp.{name}", h)
print()

# ---------------------------------------------------------------------------------
# b. LeNet-5's logits and their forward-mode tangent.
print("case jvp_lenet")
images = filled("x", (2, 1, 28, 28), 2, "unit")
L_SHAPES = [("conv1.weight", (6, 1, 5, 5), 25), ("conv1.bias", (6,), 25),
            ("conv2.weight", (16, 6, 5, 5), 150), ("conv2.bias", (16,), 150),
            ("fc1.weight", (400, 120), 400), ("fc1.bias", (120,), 400),
            ("fc2.weight", (120, 84), 120), ("fc2.bias", (84,), 120),
            ("fc3.weight", (84, 10), 84), ("fc3.bias", (10,), 84)]
L_NAMES = [name for name, _, _ in L_SHAPES]
lparams = [filled(name, shape, 30 + j, fan=fan) for j, (name, shape, fan) in enumerate(L_SHAPES)]
ltangents = [filled(f"t.{name}", shape, 50 + j, fan=fan) for j, (name, shape, fan) in enumerate(L_SHAPES)]

DN = ("NCHW", "OIHW", "NCHW")
KINKS = []  # values that enter a ReLU or a max-pool window, for the margin check


def maxpool2(z):
    n, c, h, w = z.shape
    KINKS.append(("pool", z.reshape(n, c, h // 2, 2, w // 2, 2)))
    return jax.lax.reduce_window(z, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def relu(z):
    KINKS.append(("relu", z))
    return jax.nn.relu(z)


def lenet(p):
    w1, b1, w2, b2, f1, c1, f2, c2, f3, c3 = p
    z = jax.lax.conv_general_dilated(images, w1, (1, 1), [(2, 2), (2, 2)], dimension_numbers=DN)
    z = relu(maxpool2(z + b1[None, :, None, None]))
    z = jax.lax.conv_general_dilated(z, w2, (1, 1), [(0, 0), (0, 0)], dimension_numbers=DN)
    z = relu(maxpool2(z + b2[None, :, None, None]))
    z = z.reshape(z.shape[0], 400)
    z = relu(z @ f1 + c1)
    z = relu(z @ f2 + c2)
    return z @ f3 + c3


lp = [jnp.asarray(t) for t in lparams]
lt = [jnp.asarray(t) for t in ltangents]
logits = lenet(lp)
margins = {"relu": np.inf, "pool": np.inf}
for kind, z in KINKS:
    z = np.asarray(z)
    if kind == "relu":
        margin = np.min(np.abs(z))
    else:  # gap between the largest and second largest value of every 2x2 window
        w = np.sort(np.moveaxis(z, 3, 4).reshape(*z.shape[:3], z.shape[4], 4), axis=-1)
        margin = np.min(w[..., 3] - w[..., 2])
    assert margin > 1e-6, f"LeNet input too close to a {kind} kink ({margin:e}): pick other K"
    margins[kind] = min(margins[kind], margin)
KINKS.clear()
print(f"# smallest |ReLU input| {margins['relu']:.3e}, smallest max-pool window gap {margins['pool']:.3e}")
logits2, tangent = jax.jvp(lenet, (lp,), (lt,))
jac = jax.jacrev(lenet)(lp)
tangent_rev = sum(np.tensordot(np.asarray(j), np.asarray(t), axes=t.ndim) for j, t in zip(jac, lt))
agree("LeNet tangent", tangent, tangent_rev)
agree("LeNet logits", logits2, logits, 0.0)
out("logits", logits)
out("tangent", tangent)
print()

# ---------------------------------------------------------------------------------
# c. Full Hessian of a 2-4-3 tanh network's cross-entropy.
print("case hessian_tanh_243")
xs = filled("x", (5, 2), 3)
ys = labels("y", [0, 2, 1, 1, 0])
theta = filled("theta", (27,), 4)


def tanh_243(t):
    w1 = t[0:8].reshape(2, 4)
    b1 = t[8:12]
    w2 = t[12:24].reshape(4, 3)
    b2 = t[24:27]
    h = jnp.tanh(xs @ w1 + b1)
    logp = jax.nn.log_softmax(h @ w2 + b2, axis=1)
    return -jnp.mean(logp[jnp.arange(5), jnp.asarray(ys)])


th = jnp.asarray(theta)
hess = jax.hessian(tanh_243)(th)
agree("Hessian jacfwd(grad)", jax.jacfwd(jax.grad(tanh_243))(th), hess)
agree("Hessian jacrev(grad)", jax.jacrev(jax.grad(tanh_243))(th), hess)
agree("Hessian symmetry", hess.T, hess, 1e-14)
out("value", tanh_243(th))
out("grad", jax.grad(tanh_243)(th))
out("hessian", hess)
print()

# ---------------------------------------------------------------------------------
# d. Third derivatives of scalar functions.
print("case third_derivative")
x0 = literal("x", 0.7)


def f(x):
    return jnp.sin(x) * jnp.exp(x)


d1 = jax.grad(f)
d2 = jax.grad(d1)
d3 = jax.grad(d2)
fd = np.array([f(x0), d1(x0), d2(x0), d3(x0)])
ex, s, c = math.exp(x0), math.sin(x0), math.cos(x0)
agree("f closed form", fd, [ex * s, ex * (s + c), 2 * ex * c, 2 * ex * (c - s)], 1e-14)
out("f_derivatives", fd)

ab = literal("ab", [0.3, -1.1])


def g(p):
    a, b = p[0], p[1]
    return a * a * b + jnp.exp(a * b) + jnp.sin(b) / (1 + a * a)


abj = jnp.asarray(ab)
third = jax.jacfwd(jax.hessian(g))(abj)
agree("third jacrev", jax.jacrev(jax.jacrev(jax.jacrev(g)))(abj), third)
out("g", g(abj))
out("g_grad", jax.grad(g)(abj))
out("g_hessian", jax.hessian(g)(abj))
out("g_third", third)
