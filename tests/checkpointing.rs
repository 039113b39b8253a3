//! Gradient checkpointing (`Tape::recompute`, `nn::Recompute`): a block whose
//! intermediate values are computed again during backward gives the gradients of the
//! same ops recorded directly, bit for bit at 1 and 2 threads (an MLP block and a
//! convolution block, f32 and f64), the same recorded gradient (`Var::grad`) and
//! forward-mode tangent, second derivatives equal to rounding, passes gradcheck and
//! gradgradcheck, and holds fewer values on the tape.

use autodiff::func::{hvp, jvp};
use autodiff::{
    gradcheck, gradgradcheck, Activation, Conv2dOptions, Float, GradcheckOptions, Tape, Tensor, Var,
};
use nn::{CrossEntropy, Init, Model, Module};

/// Deterministic values in [-1, 1) (a multiplicative hash of the index).
fn filled<T: Float>(shape: &[usize], seed: u64) -> Tensor<T> {
    let n: usize = shape.iter().product();
    let data = (0..n as u64)
        .map(|i| {
            let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xBF58_476D);
            T::from_f64((h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect();
    Tensor::from_vec(data, shape)
}

/// Two ReLU layers: inputs x, w1, b1, w2, b2.
fn mlp_block<'s, T: Float>(_: &'s Tape<T>, p: &[Var<'s, T>]) -> Var<'s, T> {
    p[0].linear_with(p[1], p[2], Activation::Relu)
        .linear_with(p[3], p[4], Activation::Relu)
}

/// conv + ReLU + max-pool, then another conv: inputs x, k1, c1, k2, c2.
fn conv_block<'s, T: Float>(_: &'s Tape<T>, p: &[Var<'s, T>]) -> Var<'s, T> {
    let opts = Conv2dOptions::new(1, 1);
    p[0].conv2d_bias(p[1], p[2], opts)
        .relu()
        .max_pool2d(2, 2, 0)
        .conv2d_bias(p[3], p[4], opts)
}

type Block<T> = for<'s> fn(&'s Tape<T>, &[Var<'s, T>]) -> Var<'s, T>;

/// A model around a block: the block (recorded directly or recomputed), a ReLU, then a
/// linear layer and the cross-entropy. `p` is the block's inputs then `w`, `b`.
fn model<'t, T: Float>(
    tape: &'t Tape<T>,
    p: &[Var<'t, T>],
    block: Block<T>,
    recomputed: bool,
    labels: &[usize],
) -> Var<'t, T> {
    let (inner, head) = p.split_at(p.len() - 2);
    let h = if recomputed {
        tape.recompute(block, inner)
    } else {
        block(tape, inner)
    };
    h.relu()
        .flatten()
        .linear_with(head[0], head[1], Activation::Identity)
        .cross_entropy(labels)
}

struct Case<T: Float> {
    block: Block<T>,
    /// x first (a constant), then the parameters.
    values: Vec<Tensor<T>>,
    labels: Vec<usize>,
}

fn mlp_case<T: Float>() -> Case<T> {
    let (n, d, h) = (48, 40, 64);
    Case {
        block: mlp_block::<T>,
        values: vec![
            filled(&[n, d], 1),
            filled(&[d, h], 2),
            filled(&[h], 3),
            filled(&[h, h], 4),
            filled(&[h], 5),
            filled(&[h, 10], 6),
            filled(&[10], 7),
        ],
        labels: (0..n).map(|i| i % 10).collect(),
    }
}

fn conv_case<T: Float>() -> Case<T> {
    let n = 6;
    Case {
        block: conv_block::<T>,
        values: vec![
            filled(&[n, 2, 10, 10], 11),
            filled(&[4, 2, 3, 3], 12),
            filled(&[4], 13),
            filled(&[5, 4, 3, 3], 14),
            filled(&[5], 15),
            filled(&[5 * 5 * 5, 10], 16),
            filled(&[10], 17),
        ],
        labels: (0..n).map(|i| (3 * i) % 10).collect(),
    }
}

/// Each parameter's gradient from `backward()` (x is a constant).
fn backward_grads<T: Float>(case: &Case<T>, recomputed: bool) -> Vec<Tensor<T>> {
    let tape = Tape::new();
    let mut p = vec![tape.constant(&case.values[0])];
    p.extend(case.values[1..].iter().map(|v| tape.param(v)));
    let grads = model(&tape, &p, case.block, recomputed, &case.labels).backward();
    p[1..].iter().map(|&w| grads[w].clone()).collect()
}

fn assert_bit_identical<T: Float>(plain: &[Tensor<T>], marked: &[Tensor<T>], what: &str) {
    assert_eq!(plain.len(), marked.len());
    for (k, (a, b)) in plain.iter().zip(marked).enumerate() {
        assert_eq!(a.shape(), b.shape(), "{what}: gradient {k}");
        // Through f64 (exact), comparing bits, so that -0.0 and 0.0 are told apart.
        assert!(
            a.data()
                .iter()
                .zip(b.data())
                .all(|(x, y)| x.as_f64().to_bits() == y.as_f64().to_bits()),
            "{what}: gradient {k} differs"
        );
        assert!(
            a.data().iter().any(|x| *x != T::zero()),
            "{what}: gradient {k} is zero"
        );
    }
}

fn first_order_bit_identical<T: Float>(case: Case<T>, what: &str) {
    for threads in [1, 2] {
        autodiff::with_threads(threads, || {
            let plain = backward_grads(&case, false);
            let marked = backward_grads(&case, true);
            assert_bit_identical(&plain, &marked, &format!("{what}, {threads} thread(s)"));
        });
    }
}

#[test]
fn mlp_block_gradients_are_bit_identical_at_one_and_two_threads() {
    first_order_bit_identical(mlp_case::<f64>(), "mlp f64");
    first_order_bit_identical(mlp_case::<f32>(), "mlp f32");
}

#[test]
fn conv_block_gradients_are_bit_identical_at_one_and_two_threads() {
    first_order_bit_identical(conv_case::<f64>(), "conv f64");
    first_order_bit_identical(conv_case::<f32>(), "conv f32");
}

/// The recorded gradient (`Var::grad`) of every parameter, and the gradients of the
/// sum of its squares (second order), as values.
fn second_order<T: Float>(case: &Case<T>, recomputed: bool) -> (Vec<Tensor<T>>, Vec<Tensor<T>>) {
    let tape = Tape::new();
    let mut p = vec![tape.constant(&case.values[0])];
    p.extend(case.values[1..].iter().map(|v| tape.param(v)));
    let cost = model(&tape, &p, case.block, recomputed, &case.labels);
    let g = cost.grad(&p[1..]);
    let squares = g
        .iter()
        .map(|g| g.square().sum())
        .reduce(|a, b| a + b)
        .unwrap();
    let gg = squares.backward();
    (
        g.iter().map(Var::value).collect(),
        p[1..].iter().map(|&w| gg[w].clone()).collect(),
    )
}

fn assert_close<T: Float>(plain: &[Tensor<T>], marked: &[Tensor<T>], rtol: f64, what: &str) {
    for (k, (a, b)) in plain.iter().zip(marked).enumerate() {
        let scale = a.data().iter().fold(0.0f64, |m, x| m.max(x.as_f64().abs()));
        assert!(scale > 0.0, "{what}: {k} is zero");
        for (x, y) in a.data().iter().zip(b.data()) {
            assert!(
                (x.as_f64() - y.as_f64()).abs() <= rtol * scale,
                "{what}: {k}: {x:?} vs {y:?}"
            );
        }
    }
}

#[test]
fn recorded_gradients_are_bit_identical_and_second_order_agrees_to_rounding() {
    for (case, what) in [(mlp_case::<f64>(), "mlp"), (conv_case::<f64>(), "conv")] {
        let (g_plain, gg_plain) = second_order(&case, false);
        let (g_marked, gg_marked) = second_order(&case, true);
        assert_bit_identical(&g_plain, &g_marked, &format!("{what}: recorded gradient"));
        assert_close(
            &gg_plain,
            &gg_marked,
            1e-13,
            &format!("{what}: gradient of |g|²"),
        );
    }
    let (case, what) = (mlp_case::<f32>(), "mlp f32");
    let (g_plain, gg_plain) = second_order(&case, false);
    let (g_marked, gg_marked) = second_order(&case, true);
    assert_bit_identical(&g_plain, &g_marked, &format!("{what}: recorded gradient"));
    assert_close(
        &gg_plain,
        &gg_marked,
        1e-5,
        &format!("{what}: gradient of |g|²"),
    );
}

/// The MLP model with `x` recorded as a constant and `p` its parameters.
fn with_x<'t>(
    tape: &'t Tape<f64>,
    p: &[Var<'t, f64>],
    x: &Tensor<f64>,
    labels: &[usize],
    recomputed: bool,
) -> Var<'t, f64> {
    let mut all = vec![tape.constant(x)];
    all.extend_from_slice(p);
    model(tape, &all, mlp_block, recomputed, labels)
}

#[test]
fn hessian_vector_products_and_tangents_agree_through_a_recomputed_block() {
    let case = mlp_case::<f64>();
    let x = case.values[0].clone();
    let labels = case.labels.clone();
    let params = &case.values[1..];
    let v: Vec<Tensor<f64>> = params
        .iter()
        .enumerate()
        .map(|(k, t)| filled(t.shape(), 100 + k as u64))
        .collect();
    let hv_plain = hvp(|t, p| with_x(t, p, &x, &labels, false), params, &v);
    let hv_marked = hvp(|t, p| with_x(t, p, &x, &labels, true), params, &v);
    assert_close(&hv_plain, &hv_marked, 1e-13, "hvp");
    // Forward mode records the same tangent rules in the same order: bit for bit.
    let (y_plain, t_plain) = jvp(|t, p| with_x(t, p, &x, &labels, false), params, &v);
    let (y_marked, t_marked) = jvp(|t, p| with_x(t, p, &x, &labels, true), params, &v);
    assert_eq!(y_plain.data(), y_marked.data());
    assert_eq!(t_plain.data(), t_marked.data());
    assert!(t_plain.item() != 0.0);
}

/// A smooth block (tanh), so finite differences see second derivatives everywhere.
fn smooth_block<'s>(_: &'s Tape<f64>, p: &[Var<'s, f64>]) -> Var<'s, f64> {
    p[0].matmul(p[1]).tanh().matmul(p[2]).sin()
}

fn smooth_cost<'t>(tape: &'t Tape<f64>, p: &[Var<'t, f64>]) -> Var<'t, f64> {
    let h = tape.recompute(smooth_block, &[p[0], p[1], p[1]]);
    (h * p[0]).square().sum() + tape.recompute(smooth_block, &[h, p[1], p[1]]).sum()
}

#[test]
fn gradcheck_and_gradgradcheck_pass_through_recomputed_blocks() {
    // Inputs used twice and outside the block too, and one block feeding another.
    let inputs = [filled::<f64>(&[3, 3], 21), filled::<f64>(&[3, 3], 22)];
    let report = gradcheck(smooth_cost, &inputs, GradcheckOptions::default()).unwrap();
    assert_eq!(report.checks, 18);
    gradgradcheck(smooth_cost, &inputs, GradcheckOptions::default()).unwrap();
    // The recorded gradient agrees with backward's where one value is two inputs.
    let tape = Tape::new();
    let p: Vec<_> = inputs.iter().map(|x| tape.param(x)).collect();
    let cost = smooth_cost(&tape, &p);
    let (fast, recorded) = (cost.backward(), cost.grad(&p));
    for (&x, g) in p.iter().zip(&recorded) {
        let (a, b) = (fast[x].data(), g.value());
        for (a, b) in a.iter().zip(b.data()) {
            assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn a_recomputed_block_keeps_only_its_output_on_the_tape() {
    let case = mlp_case::<f32>();
    let record = |recomputed: bool| {
        let tape = Tape::new();
        let mut p = vec![tape.constant(&case.values[0])];
        p.extend(case.values[1..].iter().map(|v| tape.param(v)));
        model(&tape, &p, case.block, recomputed, &case.labels);
        (tape.len(), tape.value_bytes())
    };
    let ((plain_nodes, plain_bytes), (marked_nodes, marked_bytes)) = (record(false), record(true));
    // The first layer's activations [48, 64] are the block's only intermediate value.
    let hidden = 48 * 64 * std::mem::size_of::<f32>();
    assert_eq!(marked_nodes, plain_nodes - 1);
    assert_eq!(plain_bytes - marked_bytes, hidden);
}

/// Gradients of every parameter of `model` at batch `x`, by name.
fn model_grads(
    model: &Model<f64>,
    x: &Tensor<f64>,
    labels: &[usize],
) -> Vec<(String, Tensor<f64>)> {
    let tape = Tape::new();
    let bound = model.params().bind(&tape);
    let cost = nn::Cost::cost(
        &CrossEntropy,
        model.forward(&bound, tape.constant(x)),
        labels,
    );
    let grads = bound.grads(cost.backward()).unwrap();
    grads
        .iter()
        .map(|(k, g)| (k.to_string(), g.clone()))
        .collect()
}

#[test]
#[allow(clippy::single_range_in_vec_init)] // lists of one block are meant
fn recomputed_layers_of_lenet_and_an_mlp_give_the_plain_models_gradients() {
    let x = filled::<f64>(&[8, 784], 31).map(|v| v.abs());
    let labels: Vec<usize> = (0..8).collect();
    for threads in [1, 2] {
        autodiff::with_threads(threads, || {
            // LeNet's layers: unflatten, conv1, pool, relu, conv2, pool, relu, flatten, fc...
            let plain = Model::<f64>::lenet(Init::Xavier, 3);
            for blocks in [vec![1..7], vec![1..4, 4..7], vec![1..4, 4..10]] {
                let marked = Model::<f64>::lenet(Init::Xavier, 3).recompute(&blocks);
                let (a, b) = (
                    model_grads(&plain, &x, &labels),
                    model_grads(&marked, &x, &labels),
                );
                assert_eq!(a.len(), 10);
                for ((name, ga), (_, gb)) in a.iter().zip(&b) {
                    assert_eq!(ga.data(), gb.data(), "lenet {blocks:?}: {name}");
                }
            }
            let sizes = [784, 64, 64, 32, 10];
            let mlp = || {
                Model::<f64>::new(
                    &sizes,
                    nn::Activation::Relu,
                    nn::Activation::Identity,
                    Init::He,
                    5,
                )
            };
            let (a, b) = (
                model_grads(&mlp(), &x, &labels),
                model_grads(&mlp().recompute(&[0..3]), &x, &labels),
            );
            for ((name, ga), (_, gb)) in a.iter().zip(&b) {
                assert_eq!(ga.data(), gb.data(), "mlp: {name}");
            }
        });
    }
}
