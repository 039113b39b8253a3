"""Outside oracle for tests/oracle.rs: values and gradients computed by JAX in float64.

Regenerate with (any venv outside the repo):
    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install jax numpy
    /tmp/refvenv/bin/python tests/reference/oracle.py > tests/reference/oracle.txt

Second derivatives and forward mode (Hessian-vector products, jvp, Hessians, third
derivatives) have their own script beside this one, oracle2.py (output oracle2.txt,
test tests/oracle_second_order.rs): its inputs are too large to print, so it builds
them from integer formulas that both sides evaluate to the same bits.

Each case lists its inputs (deterministic values, so no RNG has to match), the
function's value and the gradient with respect to every parameter. Numbers are
printed with repr(), which round-trips float64 exactly.
"""
import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np


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
    keys = list(params)
    value, grads = jax.value_and_grad(lambda ps: f(constants, dict(zip(keys, ps))))([jnp.asarray(params[k]) for k in keys])
    print(f"value : {float(value)!r}")
    for key, g in zip(keys, grads):
        print(f"grad {key} : {' '.join(repr(float(x)) for x in np.asarray(g).ravel())}")
    print()


print(f"# JAX {jax.__version__}, float64. Command: python tests/reference/oracle.py > tests/reference/oracle.txt")

# The scalar expression from micrograd's README, generalised to a function of a and b.
def micrograd(_, p):
    a, b = p["a"], p["b"]
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + jax.nn.relu(b + a)
    d = d + 3 * d + jax.nn.relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    return g + 10.0 / f

emit("micrograd", {}, {"a": np.array(-4.0), "b": np.array(2.0)}, micrograd)

# Scalar: transcendental functions and a variable exponent.
def scalar_mix(_, p):
    x, y = p["x"], p["y"]
    return jnp.sin(x * y) * jnp.exp(-x) + jnp.tanh(y) / jnp.sqrt(x) + x**y + jnp.log(x) * jax.nn.sigmoid(y)

emit("scalar_mix", {}, {"x": np.array(1.3), "y": np.array(-0.7)}, scalar_mix)

# The video's network in miniature: 2 sigmoid layers and the quadratic cost
# C = 1/(2n) sum ||a - y||^2.
def quadratic_net(c, p):
    a1 = jax.nn.sigmoid(c["x"] @ p["w1"] + p["b1"])
    a2 = jax.nn.sigmoid(a1 @ p["w2"] + p["b2"])
    n = c["x"].shape[0]
    return jnp.sum((a2 - c["y"]) ** 2) / (2.0 * n)

y = np.zeros((4, 3)); y[np.arange(4), [2, 0, 1, 2]] = 1.0
emit("quadratic_net", {"x": filled((4, 6), 1), "y": y},
     {"w1": filled((6, 5), 2), "b1": filled((5,), 3), "w2": filled((5, 3), 4), "b2": filled((3,), 5)}, quadratic_net)

# Cross-entropy from logits of a ReLU layer (targets are class indices 2, 0, 1).
def cross_entropy_net(c, p):
    h = jax.nn.relu(c["x"] @ p["w1"] + p["b1"])
    logits = h @ p["w2"]
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(logp[jnp.arange(3), jnp.array([2, 0, 1])])

emit("cross_entropy_net", {"x": filled((3, 4), 6)}, {"w1": filled((4, 5), 7), "b1": filled((5,), 8), "w2": filled((5, 3), 9)}, cross_entropy_net)

# Broadcasting, softmax over axis 0, division and a mean over one axis.
def broadcast_mix(_, p):
    a, b, c = p["a"], p["b"], p["c"]
    s = jnp.tanh(a) * jax.nn.softmax(b, axis=0) / (1.0 + c**2)
    return jnp.sum(jnp.mean(s, axis=1) ** 2) + jnp.sum(jnp.exp(-jnp.abs(a - c)))

emit("broadcast_mix", {}, {"a": filled((3, 4), 10), "b": filled((3, 4), 11), "c": filled((4,), 12)}, broadcast_mix)

# Batched matmul, a transpose, max over an axis, and a gather of rows.
def batched(_, p):
    prod = jnp.matmul(p["a"], p["b"])                # [2, 3, 4]
    m = jnp.max(prod, axis=2)                        # [2, 3]
    rows = jnp.transpose(p["a"], (0, 2, 1))[:, jnp.array([1, 1, 0]), :]  # [2, 3, 3]
    return jnp.sum(m * jnp.sum(rows, axis=2)) + jnp.sum(jnp.concatenate([m, m ** 2], axis=1))

emit("batched", {}, {"a": filled((2, 3, 2), 13), "b": filled((2, 2, 4), 14)}, batched)

# Convolution (stride 2, padding 1; and a dilated, grouped one), max and average pooling.
def conv_net(c, p):
    dn = ("NCHW", "OIHW", "NCHW")
    y = jax.lax.conv_general_dilated(c["x"], p["w1"], (2, 2), [(1, 1), (1, 1)], dimension_numbers=dn)
    y = jnp.tanh(y + p["b1"][None, :, None, None])
    z = jax.lax.conv_general_dilated(y, p["w2"], (1, 1), [(1, 1), (1, 1)], rhs_dilation=(2, 1), dimension_numbers=dn, feature_group_count=2)
    m = jax.lax.reduce_window(z, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    a = jax.lax.reduce_window(y, 0.0, jax.lax.add, (1, 1, 3, 3), (1, 1, 1, 1), "VALID") / 9.0
    return jnp.sum(m ** 2) + jnp.sum(jnp.tanh(a))

emit("conv_net", {"x": filled((2, 2, 7, 7), 15)}, {"w1": filled((4, 2, 3, 3), 16), "b1": filled((4,), 17), "w2": filled((4, 2, 3, 2), 18)}, conv_net)
