//! Derivatives of derivatives on the tensor tape, for every op: `gradgradcheck` (second
//! derivatives against finite differences of first ones), forward mode (`func::jvp`)
//! against finite differences and against reverse mode, `func::jacobian` and
//! `func::hessian`, the two first-order paths (`backward()`'s fast kernels and
//! `grad()`'s recorded rules) against each other, third derivatives through the ops that
//! exist as other ops' gradients, random DAGs under `gradgradcheck`, and custom ops
//! whose differentiable vjp is wrong, missing or right.
//!
//! Points are kept inside each op's domain and away from kinks (relu, abs, max and max
//! pooling get distinct values, none near zero), and each op is also checked with a
//! `sin` after it, so that even a linear op's second derivative is exercised.
//!
//! The random-DAG property runs 32 cases by default (the whole file takes about a
//! second once built: tests build the kernels with opt-level 2); for a longer run, about
//! six milliseconds a case:
//!
//! ```text
//! PROPTEST_CASES=10000 cargo test --test integration second_order::random_
//! ```
//!
//! (the image programs, with convolutions, run a quarter as many cases, at about
//! 0.17 s a case).

use autodiff::func::{grad, hessian, hvp, jacobian, jvp, vjp, Function};
use autodiff::{
    gradgradcheck, Activation, Conv2dOptions, CustomOp, Float, GradcheckError, GradcheckOptions,
    Tape, Tensor, Var,
};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::rngs::StdRng;
use rand::SeedableRng;

type Fn64 = for<'t> fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>;
type Fn32 = for<'t> fn(&'t Tape<f32>, &[Var<'t, f32>]) -> Var<'t, f32>;

/// Values in [lo, hi).
fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, lo, hi, &mut StdRng::seed_from_u64(seed))
}

/// Distinct values 0.1 apart, none within 0.05 of zero, shuffled: keeps relu, abs, max
/// and max pooling away from their kinks and ties.
fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f64> = (0..n)
        .map(|i| (i as f64 - (n / 2) as f64) * 0.1 + 0.05)
        .collect();
    rand::seq::SliceRandom::shuffle(v.as_mut_slice(), &mut StdRng::seed_from_u64(seed));
    Tensor::from_vec(v, shape)
}

/// One op (or a short expression around one) with inputs in its domain, written once
/// and instantiated for both element types.
struct Case {
    name: String,
    f64: Fn64,
    f32: Fn32,
    inputs: Vec<Tensor<f64>>,
    /// The inputs whose gradients `backward()` and `grad()` give bit for bit (the
    /// others agree to rounding).
    exact: Vec<usize>,
}

impl Case {
    /// Every input's gradient is the same bits on both paths.
    fn exact(mut self) -> Self {
        self.exact = (0..self.inputs.len()).collect();
        self
    }

    /// Only these inputs' gradients are the same bits on both paths.
    fn exact_inputs(mut self, inputs: &[usize]) -> Self {
        self.exact = inputs.to_vec();
        self
    }
}

macro_rules! case {
    ($name:expr, |$t:pat_param, $v:ident| $body:expr, [$($input:expr),* $(,)?]) => {
        Case {
            name: $name.to_string(),
            f64: |$t, $v| $body,
            f32: |$t, $v| $body,
            inputs: vec![$($input),*],
            exact: Vec::new(),
        }
    };
}

const fn conv_opts(
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> Conv2dOptions {
    Conv2dOptions {
        stride,
        padding,
        dilation,
        groups,
    }
}

/// Every op, on small inputs.
fn cases() -> Vec<Case> {
    let x = uniform(&[3, 4], -2.0, 2.0, 1);
    let pos = uniform(&[3, 4], 0.2, 2.0, 2);
    let away = distinct(&[3, 4], 3);
    let small = uniform(&[3, 4], -0.3, 0.3, 4);
    let mut c = vec![
        // Unary elementwise.
        case!("neg", |_, v| -v[0], [x.clone()]).exact(),
        case!("exp", |_, v| v[0].exp(), [x.clone()]).exact(),
        case!("ln", |_, v| v[0].ln(), [pos.clone()]).exact(),
        case!("sqrt", |_, v| v[0].sqrt(), [pos.clone()]).exact(),
        case!("square", |_, v| v[0].square(), [x.clone()]).exact(),
        case!("sigmoid", |_, v| v[0].sigmoid(), [x.clone()]).exact(),
        case!("relu", |_, v| v[0].relu(), [away.clone()]).exact(),
        case!("tanh", |_, v| v[0].tanh(), [x.clone()]).exact(),
        case!("abs", |_, v| v[0].abs(), [away.clone()]).exact(),
        case!("softplus", |_, v| v[0].softplus(), [x.clone()]).exact(),
        case!("log_sigmoid", |_, v| v[0].log_sigmoid(), [x.clone()]).exact(),
        case!("erf", |_, v| v[0].erf(), [x.clone()]).exact(),
        case!("gelu", |_, v| v[0].gelu(), [x.clone()]).exact(),
        case!("gelu_tanh", |_, v| v[0].gelu_tanh(), [x.clone()]).exact(),
        case!("powf(1.7)", |_, v| v[0].powf(1.7), [pos.clone()]).exact(),
        case!("powf(-1.5)", |_, v| v[0].powf(-1.5), [pos.clone()]).exact(),
        case!("sin", |_, v| v[0].sin(), [x.clone()]).exact(),
        case!("cos", |_, v| v[0].cos(), [x.clone()]).exact(),
        case!("powi(3)", |_, v| v[0].powi(3), [x.clone()]).exact(),
        case!("powi(-2)", |_, v| v[0].powi(-2), [pos.clone()]).exact(),
        case!("powi(1)", |_, v| v[0].powi(1), [x.clone()]).exact(),
        case!("powi(0)", |_, v| v[0].powi(0), [x.clone()]).exact(),
        case!("x + s", |_, v| v[0] + 1.5, [x.clone()]).exact(),
        case!("x - s", |_, v| v[0] - 0.5, [x.clone()]).exact(),
        case!("x * s", |_, v| v[0] * 2.5, [x.clone()]).exact(),
        case!("x / s", |_, v| v[0] / 3.0, [x.clone()]).exact(),
        case!("s + x", |_, v| 1.5 + v[0], [x.clone()]).exact(),
        case!("s - x", |_, v| 2.0 - v[0], [x.clone()]).exact(),
        case!("s * x", |_, v| 3.0 * v[0], [x.clone()]).exact(),
        case!("s / x", |_, v| 2.0 / v[0], [pos.clone()]).exact(),
        // Matrix products and fused layers.
        case!(
            "matmul 2-D",
            |_, v| v[0].matmul(v[1]),
            [
                uniform(&[3, 4], -1.0, 1.0, 10),
                uniform(&[4, 2], -1.0, 1.0, 11)
            ]
        ),
        case!(
            "matmul 3-D x 3-D",
            |_, v| v[0].matmul(v[1]),
            [
                uniform(&[2, 3, 4], -1.0, 1.0, 12),
                uniform(&[2, 4, 2], -1.0, 1.0, 13)
            ]
        ),
        case!(
            "matmul 3-D x 2-D",
            |_, v| v[0].matmul(v[1]),
            [
                uniform(&[2, 3, 4], -1.0, 1.0, 14),
                uniform(&[4, 2], -1.0, 1.0, 15)
            ]
        ),
        // Pre-activations |x w| <= 0.36 against a bias of at least 0.6: away from relu's kink.
        case!(
            "linear",
            |_, v| v[0].linear(v[1], v[2]),
            [
                small.clone(),
                uniform(&[4, 3], -0.3, 0.3, 16),
                Tensor::from_vec(vec![0.6, -0.7, 0.8], [3])
            ]
        )
        .exact_inputs(&[2]),
        // Reductions (distinct values: no ties for max).
        case!("sum", |_, v| v[0].sum(), [x.clone()]).exact(),
        case!(
            "sum axis 1",
            |_, v| v[0].sum_axes(&[1], false),
            [distinct(&[2, 3, 4], 20)]
        )
        .exact(),
        case!(
            "sum axes 0,2 keepdim",
            |_, v| v[0].sum_axes(&[0, 2], true),
            [distinct(&[2, 3, 4], 21)]
        )
        .exact(),
        case!("sum no axes", |_, v| v[0].sum_axes(&[], false), [x.clone()]).exact(),
        case!("mean", |_, v| v[0].mean(), [x.clone()]).exact(),
        case!(
            "mean axis 2 keepdim",
            |_, v| v[0].mean_axes(&[2], true),
            [distinct(&[2, 3, 4], 22)]
        )
        .exact(),
        case!(
            "mean axes 0,1",
            |_, v| v[0].mean_axes(&[0, 1], false),
            [distinct(&[2, 3, 4], 23)]
        )
        .exact(),
        case!("max", |_, v| v[0].max(), [distinct(&[3, 4], 24)]).exact(),
        case!(
            "max axis 1",
            |_, v| v[0].max_axes(&[1], false),
            [distinct(&[2, 3, 4], 25)]
        )
        .exact(),
        case!(
            "max axes 0,2 keepdim",
            |_, v| v[0].max_axes(&[0, 2], true),
            [distinct(&[2, 3, 4], 26)]
        )
        .exact(),
        // Softmax family, and the mask that goes before it.
        case!(
            "masked_fill",
            |_, v| v[0].masked_fill(&[true, false, false, true], -1.5),
            [x.clone()]
        )
        .exact(),
        case!(
            "softmax axis 0",
            |_, v| v[0].softmax(0),
            [uniform(&[3, 4], -2.0, 2.0, 30)]
        )
        .exact(),
        case!(
            "softmax axis 1",
            |_, v| v[0].softmax(1),
            [uniform(&[3, 4], -2.0, 2.0, 31)]
        )
        .exact(),
        case!(
            "softmax 3-D axis 1",
            |_, v| v[0].softmax(1),
            [uniform(&[2, 3, 4], -2.0, 2.0, 32)]
        )
        .exact(),
        case!(
            "log_softmax axis 0",
            |_, v| v[0].log_softmax(0),
            [uniform(&[3, 4], -2.0, 2.0, 33)]
        )
        .exact(),
        case!(
            "log_softmax axis 1",
            |_, v| v[0].log_softmax(1),
            [uniform(&[3, 4], -2.0, 2.0, 34)]
        )
        .exact(),
        case!(
            "log_softmax 3-D axis 2",
            |_, v| v[0].log_softmax(2),
            [uniform(&[2, 3, 4], -2.0, 2.0, 35)]
        )
        .exact(),
        case!(
            "cross_entropy",
            |_, v| v[0].cross_entropy(&[2, 0, 2]),
            [uniform(&[3, 4], -2.0, 2.0, 36)]
        ),
        // Shape ops.
        case!(
            "reshape",
            |_, v| v[0].reshape([4, 6]),
            [uniform(&[2, 3, 4], -1.0, 1.0, 40)]
        )
        .exact(),
        case!(
            "permute",
            |_, v| v[0].permute(&[2, 0, 1]),
            [uniform(&[2, 3, 4], -1.0, 1.0, 41)]
        )
        .exact(),
        case!(
            "transpose",
            |_, v| v[0].transpose(0, 2),
            [uniform(&[2, 3, 4], -1.0, 1.0, 42)]
        )
        .exact(),
        case!("t 2-D", |_, v| v[0].t(), [x.clone()]).exact(),
        case!(
            "t 3-D",
            |_, v| v[0].t(),
            [uniform(&[2, 3, 4], -1.0, 1.0, 43)]
        )
        .exact(),
        case!(
            "broadcast_to [3] -> [2, 4, 3]",
            |_, v| v[0].broadcast_to([2, 4, 3]),
            [uniform(&[3], -1.0, 1.0, 44)]
        )
        .exact(),
        case!(
            "broadcast_to [2, 1, 3] -> [2, 4, 3]",
            |_, v| v[0].broadcast_to([2, 4, 3]),
            [uniform(&[2, 1, 3], -1.0, 1.0, 45)]
        )
        .exact(),
        case!(
            "index_select axis 1, repeated",
            |_, v| v[0].index_select(1, &[2, 0, 2, 1]),
            [uniform(&[2, 3, 4], -1.0, 1.0, 46)]
        )
        .exact(),
        case!(
            "index_select axis 2",
            |_, v| v[0].index_select(2, &[3, 3, 0]),
            [uniform(&[2, 3, 4], -1.0, 1.0, 47)]
        )
        .exact(),
        case!(
            "select_rows, repeated",
            |_, v| v[0].select_rows(&[1, 1, 0]),
            [x.clone()]
        )
        .exact(),
        case!(
            "layer_norm over the last axis (composed)",
            |_, v| v[0].layer_norm(1, 1e-5),
            [x.clone()]
        ),
        case!(
            "batch_norm over the batch (fused), times the input",
            |_, v| v[0].batch_norm(1e-5).0 * v[0],
            [x.clone()]
        ),
        case!(
            "embedding, repeated ids",
            |_, v| v[0].embedding(&[2, 0, 2, 2]),
            [x.clone()]
        )
        .exact(),
        case!(
            "embedding_of [2, 2] ids, a [3, 2, 2] table",
            |t, v| v[0]
                .embedding_of(t.constant(Tensor::from_vec(vec![1.0, 2.0, 1.0, 0.0], [2, 2]))),
            [uniform(&[3, 2, 2], -1.0, 1.0, 48)]
        )
        .exact(),
        case!(
            "concat 3 inputs, middle axis",
            |_, v| Var::concat(&[v[0], v[1], v[2]], 1),
            [
                uniform(&[2, 1, 3], -1.0, 1.0, 48),
                uniform(&[2, 3, 3], -1.0, 1.0, 49),
                uniform(&[2, 2, 3], -1.0, 1.0, 50)
            ]
        )
        .exact(),
        case!(
            "concat axis 0",
            |_, v| Var::concat(&[v[0], v[1]], 0),
            [uniform(&[1, 4], -1.0, 1.0, 51), x.clone()]
        )
        .exact(),
        case!(
            "concat of one input twice",
            |_, v| Var::concat(&[v[0], v[0]], 1),
            [x.clone()]
        )
        .exact(),
        // Convolution and pooling.
        case!(
            "conv2d",
            |_, v| v[0].conv2d(v[1], Conv2dOptions::default()),
            [
                uniform(&[2, 2, 4, 4], -1.0, 1.0, 60),
                uniform(&[3, 2, 3, 3], -1.0, 1.0, 61)
            ]
        )
        .exact(),
        case!(
            "conv2d stride 2 padding 1",
            |_, v| v[0].conv2d(v[1], Conv2dOptions::new(2, 1)),
            [
                uniform(&[1, 2, 6, 5], -1.0, 1.0, 62),
                uniform(&[2, 2, 3, 2], -1.0, 1.0, 63)
            ]
        )
        .exact(),
        case!(
            "conv2d dilation 2 padding 2",
            |_, v| v[0].conv2d(v[1], conv_opts([1, 1], [2, 1], [2, 2], 1)),
            [
                uniform(&[1, 2, 5, 5], -1.0, 1.0, 64),
                uniform(&[2, 2, 2, 3], -1.0, 1.0, 65)
            ]
        )
        .exact(),
        case!(
            "conv2d groups 2 stride [2, 1] padding [0, 1]",
            |_, v| v[0].conv2d(v[1], conv_opts([2, 1], [0, 1], [1, 1], 2)),
            [
                uniform(&[2, 4, 5, 4], -1.0, 1.0, 66),
                uniform(&[4, 2, 2, 2], -1.0, 1.0, 67)
            ]
        )
        .exact(),
        case!(
            "conv2d groups 3 stride 2 dilation [1, 2] padding 1",
            |_, v| v[0].conv2d(v[1], conv_opts([2, 2], [1, 1], [1, 2], 3)),
            [
                uniform(&[1, 3, 6, 6], -1.0, 1.0, 68),
                uniform(&[3, 1, 3, 2], -1.0, 1.0, 69)
            ]
        )
        .exact(),
        case!(
            "conv2d_bias",
            |_, v| v[0].conv2d_bias(v[1], v[2], Conv2dOptions::default()),
            [
                uniform(&[2, 2, 4, 4], -1.0, 1.0, 70),
                uniform(&[3, 2, 2, 2], -1.0, 1.0, 71),
                uniform(&[3], -1.0, 1.0, 72)
            ]
        )
        .exact_inputs(&[0, 1]),
        case!(
            "conv2d_bias groups 2 stride 2 padding 1 dilation 2",
            |_, v| v[0].conv2d_bias(v[1], v[2], conv_opts([2, 2], [1, 1], [2, 2], 2)),
            [
                uniform(&[1, 4, 6, 6], -1.0, 1.0, 73),
                uniform(&[4, 2, 2, 2], -1.0, 1.0, 74),
                uniform(&[4], -1.0, 1.0, 75)
            ]
        )
        .exact_inputs(&[0, 1]),
        case!(
            "max_pool2d 2/2/0",
            |_, v| v[0].max_pool2d(2, 2, 0),
            [distinct(&[1, 2, 4, 4], 80)]
        )
        .exact(),
        case!(
            "max_pool2d 3/2/1",
            |_, v| v[0].max_pool2d(3, 2, 1),
            [distinct(&[1, 2, 5, 5], 81)]
        )
        .exact(),
        case!(
            "max_pool2d 2/1/1",
            |_, v| v[0].max_pool2d(2, 1, 1),
            [distinct(&[2, 1, 4, 3], 82)]
        )
        .exact(),
        case!(
            "avg_pool2d 2/2/0",
            |_, v| v[0].avg_pool2d(2, 2, 0),
            [uniform(&[1, 2, 4, 4], -1.0, 1.0, 83)]
        )
        .exact(),
        case!(
            "avg_pool2d 3/2/1",
            |_, v| v[0].avg_pool2d(3, 2, 1),
            [uniform(&[1, 2, 5, 5], -1.0, 1.0, 84)]
        )
        .exact(),
        case!(
            "avg_pool2d 3/1/1",
            |_, v| v[0].avg_pool2d(3, 1, 1),
            [uniform(&[2, 1, 4, 3], -1.0, 1.0, 85)]
        )
        .exact(),
    ];
    // Fused linear layers, one per activation.
    c.push(
        case!(
            "linear_with sigmoid",
            |_, v| v[0].linear_with(v[1], v[2], Activation::Sigmoid),
            [
                small.clone(),
                uniform(&[4, 3], -0.3, 0.3, 17),
                Tensor::from_vec(vec![0.6, -0.7, 0.8], [3])
            ]
        )
        .exact_inputs(&[2]),
    );
    c.push(
        case!(
            "linear_with relu",
            |_, v| v[0].linear_with(v[1], v[2], Activation::Relu),
            [
                small.clone(),
                uniform(&[4, 3], -0.3, 0.3, 18),
                Tensor::from_vec(vec![0.6, -0.7, 0.8], [3])
            ]
        )
        .exact_inputs(&[2]),
    );
    c.push(
        case!(
            "linear_with tanh",
            |_, v| v[0].linear_with(v[1], v[2], Activation::Tanh),
            [
                small.clone(),
                uniform(&[4, 3], -0.3, 0.3, 19),
                Tensor::from_vec(vec![0.6, -0.7, 0.8], [3])
            ]
        )
        .exact_inputs(&[2]),
    );
    c.push(
        case!(
            "linear_with identity",
            |_, v| v[0].linear_with(v[1], v[2], Activation::Identity),
            [
                small,
                uniform(&[4, 3], -0.3, 0.3, 9),
                Tensor::from_vec(vec![0.6, -0.7, 0.8], [3])
            ]
        )
        .exact_inputs(&[2]),
    );
    // Binary ops, with and without broadcasting (divisors positive).
    let pairs: [(&str, Vec<usize>, Vec<usize>); 6] = [
        ("[2, 3] . [2, 3]", vec![2, 3], vec![2, 3]),
        ("[2, 3] . [3]", vec![2, 3], vec![3]),
        ("[3] . [2, 3]", vec![3], vec![2, 3]),
        ("[2, 1] . [1, 3]", vec![2, 1], vec![1, 3]),
        ("[] . [2, 3]", vec![], vec![2, 3]),
        ("[2, 3] . []", vec![2, 3], vec![]),
    ];
    for (k, (shapes, a, b)) in pairs.into_iter().enumerate() {
        let (ta, tb) = (
            uniform(&a, -2.0, 2.0, 100 + k as u64),
            uniform(&b, 0.5, 2.0, 200 + k as u64),
        );
        c.push(
            case!(
                format!("add {shapes}"),
                |_, v| v[0] + v[1],
                [ta.clone(), tb.clone()]
            )
            .exact(),
        );
        c.push(
            case!(
                format!("sub {shapes}"),
                |_, v| v[0] - v[1],
                [ta.clone(), tb.clone()]
            )
            .exact(),
        );
        c.push(
            case!(
                format!("mul {shapes}"),
                |_, v| v[0] * v[1],
                [ta.clone(), tb.clone()]
            )
            .exact(),
        );
        c.push(case!(format!("div {shapes}"), |_, v| v[0] / v[1], [ta, tb]).exact());
    }
    c.push(case!("mul of one input by itself", |_, v| v[0] * v[0], [x]).exact());
    c.extend(edge_cases());
    c
}

/// Rank 0, empty dimensions and dimensions of size one.
fn edge_cases() -> Vec<Case> {
    let e = |shape: &[usize]| uniform(shape, -1.0, 1.0, 500);
    vec![
        case!("exp of rank 0", |_, v| v[0].exp(), [e(&[])]).exact(),
        case!("sum of rank 0", |_, v| v[0].sum(), [e(&[])]).exact(),
        case!(
            "softmax along a size-1 axis",
            |_, v| v[0].softmax(1),
            [e(&[3, 1])]
        )
        .exact(),
        case!(
            "log_softmax along a size-1 axis",
            |_, v| v[0].log_softmax(0),
            [e(&[1, 3])]
        )
        .exact(),
        case!(
            "sum of an empty axis",
            |_, v| v[0].sum_axes(&[0], false),
            [e(&[0, 3])]
        )
        .exact(),
        case!(
            "mean of an empty axis",
            |_, v| v[0].mean_axes(&[1], true),
            [e(&[2, 0])]
        )
        .exact(),
        case!(
            "mean over no axes",
            |_, v| v[0].mean_axes(&[], false),
            [e(&[2, 3])]
        )
        .exact(),
        case!(
            "sigmoid of an empty tensor",
            |_, v| v[0].sigmoid(),
            [e(&[2, 0])]
        )
        .exact(),
        case!(
            "reshape [0, 3] -> [3, 0]",
            |_, v| v[0].reshape([3, 0]),
            [e(&[0, 3])]
        )
        .exact(),
        case!(
            "matmul with k = 0",
            |_, v| v[0].matmul(v[1]),
            [e(&[2, 0]), e(&[0, 3])]
        ),
        case!(
            "matmul with m = 0",
            |_, v| v[0].matmul(v[1]),
            [e(&[0, 3]), e(&[3, 2])]
        ),
        case!(
            "batched matmul with n = 1",
            |_, v| v[0].matmul(v[1]),
            [e(&[2, 3, 4]), e(&[2, 4, 1])]
        ),
        case!(
            "linear of no rows",
            |_, v| v[0].linear_with(v[1], v[2], Activation::Tanh),
            [e(&[0, 4]), e(&[4, 3]), e(&[3])]
        )
        .exact_inputs(&[2]),
        case!(
            "index_select of no indices",
            |_, v| v[0].index_select(1, &[]),
            [e(&[2, 3])]
        )
        .exact(),
        case!(
            "concat with an empty part",
            |_, v| Var::concat(&[v[0], v[1], v[0]], 1),
            [e(&[2, 3]), e(&[2, 0])]
        )
        .exact(),
        case!(
            "broadcast_to [1] -> [0, 3]",
            |_, v| v[0].broadcast_to([0, 3]),
            [e(&[1])]
        )
        .exact(),
        case!("mul [] . [0]", |_, v| v[0] * v[1], [e(&[]), e(&[0])]).exact(),
        case!(
            "mul [1, 1] . [2, 1]",
            |_, v| v[0] * v[1],
            [e(&[1, 1]), e(&[2, 1])]
        )
        .exact(),
        case!(
            "max along a size-1 axis",
            |_, v| v[0].max_axes(&[1], false),
            [e(&[3, 1])]
        )
        .exact(),
        case!(
            "conv2d of no images",
            |_, v| v[0].conv2d_bias(v[1], v[2], Conv2dOptions::new(1, 1)),
            [e(&[0, 2, 3, 3]), e(&[3, 2, 2, 2]), e(&[3])]
        )
        .exact(),
        case!(
            "conv2d with a 1x1 kernel",
            |_, v| v[0].conv2d(v[1], Conv2dOptions::default()),
            [e(&[2, 3, 2, 2]), e(&[4, 3, 1, 1])]
        )
        .exact(),
        case!(
            "avg_pool2d of one cell",
            |_, v| v[0].avg_pool2d(1, 1, 0),
            [e(&[1, 2, 2, 2])]
        )
        .exact(),
        case!(
            "cross_entropy of one class",
            |_, v| v[0].cross_entropy(&[0, 0]),
            [e(&[2, 1])]
        ),
    ]
}

/// Larger inputs (over `max_elementwise`'s 512 elements, so gradgradcheck goes along
/// random directions), and elementwise ops big enough to be computed in bands of rows.
fn large_cases() -> Vec<Case> {
    vec![
        case!(
            "matmul [24, 30] x [30, 20]",
            |_, v| v[0].matmul(v[1]),
            [
                uniform(&[24, 30], -1.0, 1.0, 300),
                uniform(&[30, 20], -1.0, 1.0, 301)
            ]
        ),
        case!(
            "linear_with tanh [40, 16]",
            |_, v| v[0].linear_with(v[1], v[2], Activation::Tanh),
            [
                uniform(&[40, 16], -1.0, 1.0, 302),
                uniform(&[16, 12], -0.5, 0.5, 303),
                uniform(&[12], -1.0, 1.0, 304)
            ]
        )
        .exact_inputs(&[2]),
        case!(
            "conv2d_bias [2, 3, 12, 12]",
            |_, v| v[0].conv2d_bias(v[1], v[2], Conv2dOptions::new(1, 1)),
            [
                uniform(&[2, 3, 12, 12], -1.0, 1.0, 305),
                uniform(&[4, 3, 3, 3], -1.0, 1.0, 306),
                uniform(&[4], -1.0, 1.0, 307)
            ]
        )
        .exact_inputs(&[0, 1]),
        case!(
            "max_pool2d 3/2/1 [2, 3, 12, 12]",
            |_, v| v[0].max_pool2d(3, 2, 1),
            [distinct(&[2, 3, 12, 12], 308)]
        )
        .exact(),
        case!(
            "avg_pool2d 2/2/0 [2, 3, 12, 12]",
            |_, v| v[0].avg_pool2d(2, 2, 0),
            [uniform(&[2, 3, 12, 12], -1.0, 1.0, 309)]
        )
        .exact(),
        case!(
            "softmax [30, 20]",
            |_, v| v[0].softmax(1),
            [uniform(&[30, 20], -2.0, 2.0, 310)]
        )
        .exact(),
        case!(
            "log_softmax axis 0 [30, 20]",
            |_, v| v[0].log_softmax(0),
            [uniform(&[30, 20], -2.0, 2.0, 311)]
        )
        .exact(),
        case!(
            "sigmoid [160, 128]",
            |_, v| v[0].sigmoid(),
            [uniform(&[160, 128], -3.0, 3.0, 312)]
        )
        .exact(),
        case!(
            "mul [160, 128] x [128]",
            |_, v| v[0] * v[1],
            [
                uniform(&[160, 128], -1.0, 1.0, 313),
                uniform(&[128], -1.0, 1.0, 314)
            ]
        )
        .exact(),
        case!(
            "sum axis 0 [160, 128]",
            |_, v| v[0].sum_axes(&[0], false),
            [uniform(&[160, 128], -1.0, 1.0, 315)]
        )
        .exact(),
    ]
}

/// Gives a closure the signature of a function of tensors on any tape (a closure stored
/// in a variable would otherwise have its lifetimes fixed at its first use).
fn func<F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    f
}

/// Runs `check` on every case and panics listing every failure.
fn for_every(what: &str, cases: &[Case], mut check: impl FnMut(&Case) -> Result<(), String>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("  {}: {e}", c.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{what} failed for {} case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn gg(
    f: impl Function<f64>,
    inputs: &[Tensor<f64>],
    options: GradcheckOptions,
) -> Result<(), String> {
    gradgradcheck(f, inputs, options)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The case with input `k` recorded as a constant instead of a parameter (its
/// gradient is not wanted, its tangent is zero), and the remaining inputs.
fn with_constant(c: &Case, k: usize) -> (impl Function<f64> + '_, Vec<Tensor<f64>>) {
    let rest = c
        .inputs
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != k)
        .map(|(_, x)| x.clone())
        .collect();
    let f = func(move |tape, v| {
        let mut all = v.to_vec();
        all.insert(k, tape.constant(&c.inputs[k]));
        (c.f64)(tape, &all)
    });
    (f, rest)
}

/// `f`'s output shape at `inputs`.
fn output_shape(f: &impl Function<f64>, inputs: &[Tensor<f64>]) -> Vec<usize> {
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.param(x)).collect();
    f(&tape, &vars).shape().to_vec()
}

/// `G(x, c) = ∇ₓ L` for `L = Σ c ⊙ sin(f(x)) + ½ (Σ d ⊙ f(x))²` (fixed random `d`),
/// recorded on the tape, each input's gradient flattened and all of them concatenated;
/// its inputs are `f`'s and `c` (of `f`'s output shape), appended by this function.
/// Its derivatives are `f`'s second derivatives, and it is made of the vjps of `f`'s ops,
/// including the ops that exist as gradients (gather, scatter, gate, the convolution's
/// gradients, average pooling's adjoint). The square of a sum couples every output, so
/// that the adjoint reaching each op varies with every input (also where a gate is
/// closed).
fn recorded_gradient<'a>(
    f: &'a (impl Function<f64> + 'a),
    inputs: &[Tensor<f64>],
) -> (impl Function<f64> + 'a, Vec<Tensor<f64>>) {
    let shape = output_shape(f, inputs);
    let d = uniform(&shape, -1.0, 1.0, 78);
    let n = inputs.len();
    let g = func(move |tape, v| {
        let y = f(tape, &v[..n]);
        let coupled = (y * tape.constant(&d)).sum();
        let loss = (y.sin() * v[n]).sum() + coupled.square() * 0.5;
        let parts: Vec<_> = loss
            .grad(&v[..n])
            .into_iter()
            .map(|g| g.reshape([g.shape().iter().product::<usize>()]))
            .collect();
        Var::concat(&parts, 0)
    });
    let mut points = inputs.to_vec();
    points.push(uniform(&shape, -1.0, 1.0, 77));
    (g, points)
}

/// `grad_with` (the recorded rules) against `backward_with` (the fast kernels) for a
/// random adjoint: the same first derivatives to rounding.
fn recorded_matches_fast(f: impl Function<f64>, inputs: &[Tensor<f64>]) -> Result<(), String> {
    let tape = Tape::new();
    let xs: Vec<_> = inputs.iter().map(|x| tape.param(x)).collect();
    let y = f(&tape, &xs);
    let u = uniform(&y.shape(), -1.0, 1.0, 98);
    let fast = y.backward_with(u.clone());
    let recorded = y.grad_with(tape.constant(&u), &xs);
    for (k, (&x, r)) in xs.iter().zip(&recorded).enumerate() {
        let a = fast
            .get(x)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(x.shape()));
        let scale = a.data().iter().fold(1e-300f64, |m, v| m.max(v.abs()));
        close(
            &format!("input {k}: grad_with against backward_with"),
            r.value().data(),
            a.data(),
            1e-12 * scale,
            0.0,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Second derivatives against finite differences of first ones.

#[test]
fn every_op_passes_gradgradcheck() {
    for_every("gradgradcheck", &cases(), |c| {
        gg(c.f64, &c.inputs, GradcheckOptions::default())
    });
}

#[test]
fn every_op_followed_by_sin_passes_gradgradcheck() {
    for_every("gradgradcheck after sin", &cases(), |c| {
        gg(
            |t, v| (c.f64)(t, v).sin(),
            &c.inputs,
            GradcheckOptions::default(),
        )
    });
}

#[test]
fn every_op_passes_gradgradcheck_with_each_operand_a_constant() {
    for_every("gradgradcheck with a constant operand", &cases(), |c| {
        for k in 0..c.inputs.len() {
            if c.inputs.len() < 2 {
                break;
            }
            let (f, rest) = with_constant(c, k);
            gg(|t, v| f(t, v).sin(), &rest, GradcheckOptions::default())
                .map_err(|e| format!("input {k} constant: {e}"))?;
        }
        Ok(())
    });
}

#[test]
fn every_op_passes_gradgradcheck_along_random_directions() {
    let options = GradcheckOptions {
        max_elementwise: 4,
        directions: 8,
        ..GradcheckOptions::default()
    };
    for_every("gradgradcheck along random directions", &cases(), |c| {
        gg(|t, v| (c.f64)(t, v).sin(), &c.inputs, options.clone())
    });
}

#[test]
fn larger_inputs_pass_gradgradcheck_along_random_directions() {
    for_every("gradgradcheck on larger inputs", &large_cases(), |c| {
        gg(
            |t, v| (c.f64)(t, v).sin(),
            &c.inputs,
            GradcheckOptions::default(),
        )
    });
}

/// Third derivatives: a recorded gradient `G` (see `recorded_gradient`) differentiated
/// once more by both paths (its recorded gradient is made of the vjps of the ops that
/// gradients are made of), and twice under gradgradcheck.
#[test]
fn every_op_recorded_gradient_is_differentiated_twice_more() {
    for_every("the recorded gradient", &cases(), |c| {
        let (g, points) = recorded_gradient(&c.f64, &c.inputs);
        recorded_matches_fast(&g, &points)?;
        gg(&g, &points, GradcheckOptions::default())
    });
}

// ---------------------------------------------------------------------------------
// Forward mode.

/// The worst disagreement between `a` and `b`: `|a - b| <= atol + rtol |b|` fails.
fn close(what: &str, a: &[f64], b: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{what}: {} values against {}", a.len(), b.len()));
    }
    for (i, (&p, &q)) in a.iter().zip(b).enumerate() {
        let ok = (p - q).abs() <= atol + rtol * q.abs(); // false for NaN
        if !ok {
            return Err(format!("{what}: element {i}: {p:e} against {q:e}"));
        }
    }
    Ok(())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `f` at `inputs[k] + s * tangents[k]`.
fn eval_at(
    f: &impl Function<f64>,
    inputs: &[Tensor<f64>],
    tangents: &[Tensor<f64>],
    s: f64,
) -> Tensor<f64> {
    let tape = Tape::new();
    let vars: Vec<_> = inputs
        .iter()
        .zip(tangents)
        .map(|(x, t)| tape.param(x.zip_map(t, |x, t| x + s * t)))
        .collect();
    f(&tape, &vars).value()
}

/// Forward mode against a central difference along random tangents and against reverse
/// mode (`⟨u, J t⟩ = Σ_k ⟨J_kᵀ u, t_k⟩` for a random `u`).
fn check_jvp(f: impl Function<f64>, inputs: &[Tensor<f64>], seed: u64) -> Result<(), String> {
    let tangents: Vec<Tensor<f64>> = inputs
        .iter()
        .enumerate()
        .map(|(k, x)| uniform(x.shape(), -1.0, 1.0, seed + 7 * k as u64))
        .collect();
    let (value, tangent) = jvp(&f, inputs, &tangents);
    let plain = eval_at(&f, inputs, &tangents, 0.0);
    if value.shape() != plain.shape() || value.data() != plain.data() {
        return Err("jvp's value differs from f's".into());
    }
    if tangent.shape() != value.shape() {
        return Err(format!(
            "tangent of shape {:?} for a value of shape {:?}",
            tangent.shape(),
            value.shape()
        ));
    }
    let h = 1e-6;
    let up = eval_at(&f, inputs, &tangents, h);
    let down = eval_at(&f, inputs, &tangents, -h);
    let numeric: Vec<f64> = up
        .data()
        .iter()
        .zip(down.data())
        .map(|(u, d)| (u - d) / (2.0 * h))
        .collect();
    close(
        "J t against finite differences",
        tangent.data(),
        &numeric,
        1e-6,
        1e-5,
    )?;
    let u = uniform(value.shape(), -1.0, 1.0, seed ^ 0xabc);
    let (_, cotangents) = vjp(&f, inputs, &u);
    let forward = dot(u.data(), tangent.data());
    let reverse: f64 = cotangents
        .iter()
        .zip(&tangents)
        .map(|(g, t)| dot(g.data(), t.data()))
        .sum();
    let scale: f64 = 1.0
        + u.data()
            .iter()
            .zip(tangent.data())
            .map(|(a, b)| (a * b).abs())
            .sum::<f64>();
    if (forward - reverse).abs() > 1e-12 * scale {
        return Err(format!("⟨u, J t⟩ = {forward:e} but ⟨Jᵀu, t⟩ = {reverse:e}"));
    }
    Ok(())
}

#[test]
fn every_op_forward_mode_matches_finite_differences_and_reverse_mode() {
    for_every("jvp", &cases(), |c| {
        check_jvp(c.f64, &c.inputs, 1)?;
        check_jvp(|t, v| (c.f64)(t, v).sin(), &c.inputs, 2)
    });
}

#[test]
fn every_op_forward_mode_with_each_operand_a_constant() {
    for_every("jvp with a constant operand", &cases(), |c| {
        for k in 0..c.inputs.len() {
            if c.inputs.len() < 2 {
                break;
            }
            let (f, rest) = with_constant(c, k);
            check_jvp(&f, &rest, 3).map_err(|e| format!("input {k} constant: {e}"))?;
        }
        Ok(())
    });
}

#[test]
fn larger_inputs_forward_mode_matches_finite_differences_and_reverse_mode() {
    for_every("jvp on larger inputs", &large_cases(), |c| {
        check_jvp(|t, v| (c.f64)(t, v).sin(), &c.inputs, 4)
    });
}

/// Forward over reverse: the tangent of a recorded gradient (the tangent rules of the
/// ops that gradients are made of) against finite differences of the gradient, and
/// against reverse over reverse.
#[test]
fn every_op_forward_mode_through_its_recorded_gradient() {
    for_every("jvp of the recorded gradient", &cases(), |c| {
        let (g, points) = recorded_gradient(&c.f64, &c.inputs);
        check_jvp(&g, &points, 5)
    });
}

#[test]
fn forward_mode_of_a_function_that_ignores_its_input_is_zero() {
    let x = uniform(&[2, 3], -1.0, 1.0, 1);
    let t = uniform(&[2, 3], -1.0, 1.0, 2);
    let (value, tangent) = jvp(
        |tape, _| tape.constant(Tensor::from_vec(vec![1.0, 2.0], [2])).exp(),
        std::slice::from_ref(&x),
        std::slice::from_ref(&t),
    );
    assert_eq!(value.shape(), &[2]);
    assert_eq!(tangent.data(), &[0.0, 0.0]);
    // The identity's tangent is the tangent itself.
    let (_, tangent) = jvp(|_, v| v[0], &[x], std::slice::from_ref(&t));
    assert_eq!(tangent.data(), t.data());
}

// ---------------------------------------------------------------------------------
// Jacobians and Hessians.

/// The Jacobian by central differences, `f(x).shape ++ x.shape`.
fn numeric_jacobian(f: &impl Function<f64>, x: &Tensor<f64>) -> Vec<f64> {
    let n = x.numel();
    let h = 1e-6;
    let columns: Vec<Vec<f64>> = (0..n)
        .map(|j| {
            let mut e = Tensor::zeros(x.shape());
            e.data_mut()[j] = 1.0;
            let up = eval_at(f, std::slice::from_ref(x), std::slice::from_ref(&e), h);
            let down = eval_at(f, std::slice::from_ref(x), std::slice::from_ref(&e), -h);
            up.data()
                .iter()
                .zip(down.data())
                .map(|(u, d)| (u - d) / (2.0 * h))
                .collect()
        })
        .collect();
    let m = columns[0].len();
    (0..m * n).map(|k| columns[k % n][k / n]).collect()
}

/// The Jacobian row by row from reverse mode (`func::vjp` with basis cotangents).
fn reverse_jacobian(f: &impl Function<f64>, x: &Tensor<f64>) -> Vec<f64> {
    let out = output_shape(f, std::slice::from_ref(x));
    let m: usize = out.iter().product();
    let mut rows = Vec::new();
    for i in 0..m {
        let mut e = Tensor::zeros(&out);
        e.data_mut()[i] = 1.0;
        rows.extend_from_slice(vjp(f, std::slice::from_ref(x), &e).1[0].data());
    }
    rows
}

fn check_jacobian(name: &str, f: impl Function<f64>, x: &Tensor<f64>, want_shape: &[usize]) {
    let j = jacobian(&f, x);
    assert_eq!(j.shape(), want_shape, "{name}: Jacobian shape");
    if let Err(e) = close(name, j.data(), &numeric_jacobian(&f, x), 1e-6, 1e-5) {
        panic!("{e}");
    }
    if let Err(e) = close(name, j.data(), &reverse_jacobian(&f, x), 1e-13, 1e-12) {
        panic!("{e} (against reverse mode)");
    }
}

#[test]
fn jacobian_of_a_tall_function_by_columns_matches_finite_differences() {
    // 12 outputs of 3 inputs: one forward-mode sweep per input.
    let c = uniform(&[1, 4], -1.0, 1.0, 1);
    let x = uniform(&[3], -1.0, 1.0, 2);
    check_jacobian(
        "tall",
        |tape, v| {
            (v[0].reshape([3, 1]).matmul(tape.constant(&c)) + v[0].reshape([3, 1]).square()).sin()
        },
        &x,
        &[3, 4, 3],
    );
    let x = uniform(&[2, 2, 3, 3], -1.0, 1.0, 3);
    let w = uniform(&[3, 2, 2, 2], -1.0, 1.0, 4);
    check_jacobian(
        "tall conv",
        |tape, v| {
            v[0].conv2d(tape.constant(&w), Conv2dOptions::new(1, 1))
                .tanh()
        },
        &x,
        &[2, 3, 4, 4, 2, 2, 3, 3],
    );
}

#[test]
fn jacobian_of_a_wide_function_by_rows_matches_finite_differences() {
    // 2 outputs of 6 inputs: one reverse sweep per output.
    let x = uniform(&[2, 3], -1.0, 1.0, 5);
    check_jacobian(
        "wide",
        |_, v| (v[0].softmax(1).square() * v[0]).sum_axes(&[1], false),
        &x,
        &[2, 2, 3],
    );
    check_jacobian(
        "scalar",
        |_, v| v[0].log_softmax(0).sin().sum(),
        &x,
        &[2, 3],
    );
    // As many outputs as inputs: still by rows.
    check_jacobian("square", |_, v| v[0].exp() * v[0].sum(), &x, &[2, 3, 2, 3]);
}

/// `f(x) = Σ tanh(A x)² + Σ sin(x) x² + (Σ x)³ / 10`: couples every pair of inputs.
fn coupled<'t>(tape: &'t Tape<f64>, v: &[Var<'t, f64>]) -> Var<'t, f64> {
    let a = tape.constant(uniform(&[4, 5], -1.0, 1.0, 11));
    let x = v[0];
    a.matmul(x.reshape([5, 1])).tanh().square().sum()
        + (x.sin() * x.square()).sum()
        + x.sum().powi(3) * 0.1
}

fn check_hessian(name: &str, f: impl Function<f64>, x: &Tensor<f64>) {
    let n = x.numel();
    let h = hessian(&f, x);
    let mut want_shape = x.shape().to_vec();
    want_shape.extend_from_slice(x.shape());
    assert_eq!(h.shape(), want_shape, "{name}: Hessian shape");
    let hd = h.data();
    for i in 0..n {
        for j in 0..i {
            let (a, b) = (hd[i * n + j], hd[j * n + i]);
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
                "{name}: H[{i}, {j}] = {a:e} but H[{j}, {i}] = {b:e}"
            );
        }
        let mut e = Tensor::zeros(x.shape());
        e.data_mut()[i] = 1.0;
        let hv = hvp(&f, std::slice::from_ref(x), std::slice::from_ref(&e));
        if let Err(err) = close(name, &hd[i * n..(i + 1) * n], hv[0].data(), 1e-14, 1e-12) {
            panic!("{err} (row {i} against hvp with e_{i})");
        }
        // The row against a central difference of the gradient.
        let step = 1e-6;
        let up = grad(&f, &[x.zip_map(&e, |x, e| x + step * e)]);
        let down = grad(&f, &[x.zip_map(&e, |x, e| x - step * e)]);
        let numeric: Vec<f64> = up[0]
            .data()
            .iter()
            .zip(down[0].data())
            .map(|(u, d)| (u - d) / (2.0 * step))
            .collect();
        if let Err(err) = close(name, &hd[i * n..(i + 1) * n], &numeric, 1e-6, 1e-5) {
            panic!("{err} (row {i} against finite differences of the gradient)");
        }
    }
}

#[test]
fn hessian_is_symmetric_equals_hvp_with_basis_vectors_and_finite_differences() {
    check_hessian("coupled", coupled, &uniform(&[5], -1.0, 1.0, 12));
    let c = uniform(&[2, 3], -1.0, 1.0, 13);
    check_hessian(
        "matrix input",
        |tape, v| {
            (v[0].log_softmax(1) * tape.constant(&c)).sum()
                + v[0].matmul(v[0].t()).square().sum() * 0.1
        },
        &uniform(&[2, 3], -1.0, 1.0, 14),
    );
    let w = uniform(&[2, 1, 2, 2], -1.0, 1.0, 15);
    check_hessian(
        "convolution and pooling",
        |tape, v| {
            v[0].conv2d(tape.constant(&w), Conv2dOptions::new(1, 1))
                .sigmoid()
                .avg_pool2d(2, 1, 0)
                .square()
                .sum()
        },
        &uniform(&[1, 1, 3, 3], -1.0, 1.0, 16),
    );
}

#[test]
fn hvp_of_several_inputs_matches_finite_differences_of_the_gradient() {
    let f = func(|_, v| {
        v[0].linear_with(v[1], v[2], Activation::Tanh)
            .log_softmax(1)
            .sum_axes(&[0], false)
            .square()
            .sum()
    });
    let inputs = [
        uniform(&[3, 4], -1.0, 1.0, 20),
        uniform(&[4, 2], -1.0, 1.0, 21),
        uniform(&[2], -1.0, 1.0, 22),
    ];
    let v: Vec<Tensor<f64>> = inputs
        .iter()
        .enumerate()
        .map(|(k, x)| uniform(x.shape(), -1.0, 1.0, 30 + k as u64))
        .collect();
    let hv = hvp(f, &inputs, &v);
    let step = 1e-6;
    let shifted = |s: f64| -> Vec<Tensor<f64>> {
        inputs
            .iter()
            .zip(&v)
            .map(|(x, v)| x.zip_map(v, |x, v| x + s * v))
            .collect()
    };
    let (up, down) = (grad(f, &shifted(step)), grad(f, &shifted(-step)));
    for k in 0..3 {
        let numeric: Vec<f64> = up[k]
            .data()
            .iter()
            .zip(down[k].data())
            .map(|(u, d)| (u - d) / (2.0 * step))
            .collect();
        if let Err(e) = close("hvp", hv[k].data(), &numeric, 1e-6, 1e-5) {
            panic!("input {k}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------
// The two first-order paths.

/// How many elements differ in their bits.
fn differing<T: Float>(a: &[T], b: &[T]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(p, q)| p.as_f64().to_bits() != q.as_f64().to_bits())
        .count()
}

/// `backward()` and `grad()` on `Σ c ⊙ f(x)` for a fixed random `c` (the gradient that
/// reaches `f`'s output is exactly `c` on both paths). Per input: how many elements
/// differ in their bits, and the largest difference relative to the gradient's largest
/// element.
fn first_order_paths<T: Float>(
    f: for<'t> fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
    inputs: &[Tensor<f64>],
) -> Vec<(usize, f64)> {
    let tape = Tape::<T>::new();
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.param(x.cast::<T>())).collect();
    let y = f(&tape, &xs);
    let c = uniform(&y.shape(), -1.0, 1.0, 99).cast::<T>();
    let loss = (y * tape.constant(c)).sum();
    let fast = loss.backward();
    let recorded = loss.grad(&xs);
    xs.iter()
        .zip(&recorded)
        .map(|(&x, r)| {
            let a = fast
                .get(x)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros(x.shape()));
            let b = r.value();
            assert_eq!(a.shape(), b.shape());
            let scale = a
                .data()
                .iter()
                .fold(f64::MIN_POSITIVE, |m, v| m.max(v.as_f64().abs()));
            let worst = a.data().iter().zip(b.data()).fold(0.0f64, |w, (p, q)| {
                w.max((p.as_f64() - q.as_f64()).abs() / scale)
            });
            (differing(a.data(), b.data()), worst)
        })
        .collect()
}

/// Exact where the case says so, else within `rtol` of the gradient's largest element.
fn check_paths<T: Float>(
    c: &Case,
    f: for<'t> fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
    rtol: f64,
    precision: &str,
) -> Result<(), String> {
    for (k, (differ, worst)) in first_order_paths(f, &c.inputs).into_iter().enumerate() {
        if c.exact.contains(&k) && differ > 0 {
            return Err(format!("{precision}: input {k}: {differ} element(s) differ in their bits (largest relative difference {worst:e})"));
        }
        if worst > rtol {
            return Err(format!(
                "{precision}: input {k}: relative difference {worst:e} > {rtol:e}"
            ));
        }
    }
    Ok(())
}

/// `backward()`'s fast kernels and `grad()`'s recorded rules compute the same first
/// derivatives: bit for bit where the recorded rule does the same arithmetic in the same
/// order (see `Case::exact`), else to rounding. Which are exact, and why the others are
/// not:
///
/// - exact: every unary elementwise op (one rule, `UnaryOp::vjp_rule`, run per element
///   or as ops: the same operations in the same order); the binary ops, with or without
///   broadcasting (both paths undo a broadcast with the same reduction over the same
///   axes); sum, mean (the same broadcast, the same `× 1/n`), max and max pooling (the
///   same scatter in the same order); reshape, permute, transpose, broadcast_to,
///   index_select (the same scatter-add order), concat; softmax and log-softmax (the
///   same lane sum in the same order, the same `exp`); a convolution's input and weight
///   gradients (the recorded ops call the same kernels); average pooling.
/// - to rounding: matmul and the products inside linear layers (the fast path multiplies
///   by a strided transposed view, the recorded one by a transposed copy, and the `gemm`
///   crate packs and accumulates the two layouts differently: the linear layer's `dx` and
///   the batched product's `dB` differ in the last bit in f64; the f32 products here
///   happen to agree); the convolution's bias gradient (eight-lane partial sums against
///   one running sum); cross-entropy (`(p - onehot) · (g / n)` against
///   `((p - onehot) · (1 / n)) · g`, two roundings against one). A linear layer's bias
///   gradient is exact (column sums in the same order).
#[test]
fn first_order_fast_and_recorded_paths_agree() {
    let mut all = cases();
    all.extend(large_cases());
    for_every("backward() against grad()", &all, |c| {
        check_paths(c, c.f64, 1e-12, "f64")?;
        check_paths(c, c.f32, 1e-5, "f32")
    });
}

// ---------------------------------------------------------------------------------
// Detach.

/// At the point where it is taken, a detached value is a constant: every derivative of
/// `x² · detach(x)` equals that of `x² · c` with `c = x`, to every order, while a finite
/// difference (which moves the detached value too) would not.
#[test]
fn detach_is_a_constant_to_every_order() {
    let x = uniform(&[2, 3], -1.0, 1.0, 40);
    let detached = func(|_, v| (v[0].square() * v[0].detach()).sin().sum());
    let constant = func(|tape, v| (v[0].square() * tape.constant(&x)).sin().sum());
    assert_eq!(
        grad(detached, std::slice::from_ref(&x))[0].data(),
        grad(constant, std::slice::from_ref(&x))[0].data()
    );
    assert_eq!(hessian(detached, &x).data(), hessian(constant, &x).data());
    let t = uniform(&[2, 3], -1.0, 1.0, 41);
    assert_eq!(
        jvp(detached, std::slice::from_ref(&x), std::slice::from_ref(&t))
            .1
            .data(),
        jvp(constant, std::slice::from_ref(&x), std::slice::from_ref(&t))
            .1
            .data()
    );
    // The recorded gradient is zero through the detached factor alone.
    let tape = Tape::new();
    let xv = tape.param(&x);
    let g = (xv.detach() * xv.detach()).sum().grad(&[xv])[0];
    assert!(g.value().data().iter().all(|&v| v == 0.0));
    assert!(!g.requires_grad());
}

// ---------------------------------------------------------------------------------
// Var::grad itself: higher orders, intermediates, values that do not matter.

/// `grad` of `grad` of ... : `d⁴/dx⁴ x⁵ = 120 x` and `d⁴/dx⁴ sin x = sin x`, each
/// order a value on the tape.
#[test]
fn nested_grads_reach_the_fourth_order() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![0.5, -1.5, 2.0], [3]));
    let mut d = x.powi(5).sum();
    let mut s = x.sin().sum();
    let mut derivatives = Vec::new();
    for _ in 0..4 {
        let gd = d.grad(&[x])[0];
        let gs = s.grad(&[x])[0];
        derivatives.push((gd.value(), gs.value()));
        d = gd.sum();
        s = gs.sum();
    }
    let xs = [0.5f64, -1.5, 2.0];
    let want_powi = [
        xs.map(|x| 5.0 * x.powi(4)),
        xs.map(|x| 20.0 * x.powi(3)),
        xs.map(|x| 60.0 * x * x),
        xs.map(|x| 120.0 * x),
    ];
    let want_sin = [
        xs.map(f64::cos),
        xs.map(|x| -x.sin()),
        xs.map(|x| -x.cos()),
        xs.map(f64::sin),
    ];
    for (k, (gd, gs)) in derivatives.iter().enumerate() {
        close(
            &format!("order {} of x^5", k + 1),
            gd.data(),
            &want_powi[k],
            1e-12,
            1e-12,
        )
        .unwrap();
        close(
            &format!("order {} of sin", k + 1),
            gs.data(),
            &want_sin[k],
            1e-12,
            1e-12,
        )
        .unwrap();
    }
}

/// A gradient with respect to an intermediate value, differentiated with respect to
/// the parameter under it; and zeros for what the output does not depend on.
#[test]
fn grads_with_respect_to_intermediates_and_unrelated_values() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![0.3, -0.8], [2]));
    let h = x.square();
    let y = h.sin().sum();
    let [gh, gx] = y.grad(&[h, x])[..] else {
        panic!("two gradients")
    };
    let xs = [0.3f64, -0.8];
    close(
        "dy/dh",
        gh.value().data(),
        &xs.map(|x| (x * x).cos()),
        1e-15,
        1e-15,
    )
    .unwrap();
    close(
        "dy/dx",
        gx.value().data(),
        &xs.map(|x| 2.0 * x * (x * x).cos()),
        1e-15,
        1e-15,
    )
    .unwrap();
    // d/dx Σ cos(h) = -sin(x²) 2x
    let ghx = gh.sum().grad(&[x])[0];
    close(
        "d/dx dy/dh",
        ghx.value().data(),
        &xs.map(|x| -2.0 * x * (x * x).sin()),
        1e-15,
        1e-15,
    )
    .unwrap();
    // Unrelated: a parameter recorded after the output, and one the output never used.
    let unused = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    let [gu] = y.grad(&[unused])[..] else {
        panic!("one gradient")
    };
    assert_eq!(gu.value().data(), &[0.0, 0.0, 0.0]);
    assert!(!gu.requires_grad());
    // The gradient of a linear function is a constant: its Hessian is zero.
    let c = uniform(&[2, 3], -1.0, 1.0, 50);
    let h = hessian(
        |tape, v| (v[0] * tape.constant(&c)).sum(),
        &uniform(&[2, 3], -1.0, 1.0, 51),
    );
    assert!(h.data().iter().all(|&v| v == 0.0));
    assert_eq!(h.shape(), &[2, 3, 2, 3]);
}

/// A seed that itself depends on the parameter: the recorded vector-Jacobian product
/// `sᵀ J` is differentiated through the seed too (the total derivative).
#[test]
fn a_seed_that_depends_on_the_parameter_is_differentiated_too() {
    let f = func(|_, v| {
        let x = v[0];
        let y = x.tanh() * x.sum();
        y.grad_with(x.sin(), &[x])[0]
    });
    let x = uniform(&[2, 3], -1.0, 1.0, 54);
    autodiff::gradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
    gradgradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
    check_jvp(f, std::slice::from_ref(&x), 55).unwrap();
}

/// Logits of ±1000 keep the softmax family's, the sigmoid's and the softplus's second
/// derivatives finite and right.
#[test]
fn stable_ops_stay_finite_to_second_order_at_logits_of_1000() {
    let extreme = Tensor::from_vec(vec![1000.0, -1000.0, 0.5, -999.0, 998.5, 1.0], [2, 3]);
    let fs: [(&str, Fn64); 5] = [
        ("softmax", |_, v| v[0].softmax(1)),
        ("log_softmax", |_, v| v[0].log_softmax(1)),
        ("cross_entropy", |_, v| v[0].cross_entropy(&[1, 2])),
        ("sigmoid", |_, v| v[0].sigmoid()),
        ("softplus", |_, v| v[0].softplus()),
    ];
    for (name, f) in fs {
        if let Err(e) = gg(
            f,
            std::slice::from_ref(&extreme),
            GradcheckOptions::default(),
        ) {
            panic!("{name}: {e}");
        }
        let v = uniform(&[2, 3], -1.0, 1.0, 52);
        let c = uniform(
            &output_shape(&f, std::slice::from_ref(&extreme)),
            -1.0,
            1.0,
            53,
        );
        let hv = hvp(
            |tape, p| (f(tape, p) * tape.constant(&c)).sum(),
            std::slice::from_ref(&extreme),
            &[v],
        );
        assert!(
            hv[0].all_finite(),
            "{name}: Hessian-vector product {:?}",
            hv[0]
        );
    }
}

// ---------------------------------------------------------------------------------
// Custom ops: a differentiable vjp that is wrong, missing or right.

/// How [`Cube`]'s differentiable vjp is written.
#[derive(Clone, Copy)]
enum CubeVjp {
    /// `3 x² g` in tape ops: right to every order.
    Right,
    /// `3 x² g` with `x` detached: the right values, but its dependence on `x` is lost,
    /// so its derivative in `x` reads as zero.
    Detached,
    /// `g` times a constant holding the values `3 x²`: the same mistake, made by hand.
    ConstantSlope,
    /// None: the op has only its first-order vjp.
    FirstOrderOnly,
}

/// `y = x³`, whose first-order vjp (`3 x² g`) is always right.
struct Cube(CubeVjp);

impl CustomOp<f64> for Cube {
    fn name(&self) -> &str {
        match self.0 {
            CubeVjp::Right => "cube",
            CubeVjp::Detached => "cube_detached",
            CubeVjp::ConstantSlope => "cube_constant_slope",
            CubeVjp::FirstOrderOnly => "cube_first_order",
        }
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Tensor<f64> {
        inputs[0].map(|x| x * x * x)
    }
    fn vjp(
        &self,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
        grad: &Tensor<f64>,
    ) -> Vec<Tensor<f64>> {
        vec![inputs[0].zip_map(grad, |x, g| 3.0 * x * x * g)]
    }
    fn vjp_var<'t>(
        &self,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
        grad: Var<'t, f64>,
    ) -> Option<Vec<Var<'t, f64>>> {
        let x = inputs[0];
        let slope = match self.0 {
            CubeVjp::Right => x.square() * 3.0,
            CubeVjp::Detached => x.detach().square() * 3.0,
            CubeVjp::ConstantSlope => x.tape().constant(x.value().map(|x| 3.0 * x * x)),
            CubeVjp::FirstOrderOnly => return None,
        };
        Some(vec![grad * slope])
    }
    fn jvp_var<'t>(
        &self,
        inputs: &[Var<'t, f64>],
        _: Var<'t, f64>,
        tangents: &[Var<'t, f64>],
    ) -> Option<Var<'t, f64>> {
        match self.0 {
            CubeVjp::FirstOrderOnly => None,
            _ => Some(tangents[0] * inputs[0].square() * 3.0),
        }
    }
}

/// `Σ w ⊙ sin(cube(x))` with a fixed weight, through the custom op.
fn through_cube(kind: CubeVjp) -> impl Function<f64> {
    func(move |tape, v| {
        let w = tape.constant(Tensor::from_vec(vec![0.7, -1.1, 0.4], [3]));
        (tape.custom(Cube(kind), &[v[0]]).sin() * w).sum()
    })
}

fn cube_input() -> Tensor<f64> {
    Tensor::from_vec(vec![0.5, -2.0, 1.0], [3])
}

#[test]
fn a_custom_op_with_a_right_differentiable_vjp_passes_gradgradcheck() {
    let x = cube_input();
    let f = func(|tape, v| tape.custom(Cube(CubeVjp::Right), &[v[0]]));
    let options = GradcheckOptions::default();
    gradgradcheck(f, std::slice::from_ref(&x), options.clone()).expect("bare");
    gradgradcheck(
        through_cube(CubeVjp::Right),
        std::slice::from_ref(&x),
        options,
    )
    .expect("inside an expression");
    check_jvp(f, std::slice::from_ref(&x), 60).unwrap();
    check_jvp(through_cube(CubeVjp::Right), std::slice::from_ref(&x), 61).unwrap();
    recorded_matches_fast(f, std::slice::from_ref(&x)).unwrap();
    // The Hessian of Σ x³ is diag(6x).
    let h = hessian(
        |tape, v| tape.custom(Cube(CubeVjp::Right), &[v[0]]).sum(),
        &x,
    );
    let want = [3.0, 0.0, 0.0, 0.0, -12.0, 0.0, 0.0, 0.0, 6.0];
    close("Hessian of a sum of cubes", h.data(), &want, 1e-12, 1e-12).unwrap();
}

/// gradcheck's wrong-vjp test (tests/tensor_ops.rs, `WrongSquare`) one order up: the
/// first-order vjp is right, so gradcheck passes and the recorded gradient has the right
/// values, but the differentiable vjp does not depend on `x` the way the gradient does,
/// and gradgradcheck says where.
#[test]
fn gradgradcheck_catches_a_differentiable_vjp_that_loses_its_dependence_on_x() {
    let x = cube_input();
    for kind in [CubeVjp::Detached, CubeVjp::ConstantSlope] {
        let name = Cube(kind).name().to_string();
        let f = func(move |tape, v| tape.custom(Cube(kind), &[v[0]]));
        autodiff::gradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default())
            .unwrap_or_else(|e| panic!("{name}: the first-order vjp is right: {e}"));
        recorded_matches_fast(f, std::slice::from_ref(&x))
            .unwrap_or_else(|e| panic!("{name}: the recorded values are right: {e}"));
        let err = gradgradcheck(f, std::slice::from_ref(&x), GradcheckOptions::default())
            .expect_err("a vjp_var without its dependence on x must fail gradgradcheck");
        match &err {
            GradcheckError::Mismatch {
                input,
                analytic,
                numeric,
                ..
            } => {
                // d/dx of the recorded 3 x² u is 6 x u; the detached rule says 0.
                assert_eq!(*input, 0, "{name}: {err}");
                assert_eq!(*analytic, 0.0, "{name}: {err}");
                assert!(numeric.abs() > 1e-2, "{name}: {err}");
            }
            other => panic!("{name}: unexpected error {other}"),
        }
        assert!(err.to_string().contains("input 0"), "{err}");
        // Inside a larger expression too.
        assert!(
            gradgradcheck(
                through_cube(kind),
                std::slice::from_ref(&x),
                GradcheckOptions::default()
            )
            .is_err(),
            "{name} inside an expression"
        );
    }
}

#[test]
fn gradgradcheck_refuses_a_custom_op_with_only_a_first_order_vjp_naming_it() {
    let x = cube_input();
    let f = through_cube(CubeVjp::FirstOrderOnly);
    // First order works, by both paths.
    autodiff::gradcheck(&f, std::slice::from_ref(&x), GradcheckOptions::default()).unwrap();
    let tape = Tape::new();
    let xv = tape.param(&x);
    let y = tape.custom(Cube(CubeVjp::FirstOrderOnly), &[xv]).sum();
    assert_eq!(y.grad(&[xv])[0].value().data(), &[0.75, 12.0, 3.0]);
    assert_eq!(y.backward()[xv].data(), &[0.75, 12.0, 3.0]);
    let err = gradgradcheck(&f, std::slice::from_ref(&x), GradcheckOptions::default())
        .expect_err("a first-order-only op cannot be differentiated twice");
    assert_eq!(
        err,
        GradcheckError::FirstOrderOnly("cube_first_order".into())
    );
    assert!(err.to_string().contains("`cube_first_order`"), "{err}");
}

#[test]
#[should_panic(expected = "custom op `cube_first_order` has only a first-order vjp")]
fn differentiating_a_first_order_only_gradient_by_hand_panics_naming_the_op() {
    let tape = Tape::new();
    let x = tape.param(cube_input());
    let y = tape.custom(Cube(CubeVjp::FirstOrderOnly), &[x]).sum();
    let g = y.grad(&[x])[0];
    let _ = g.sum().grad(&[x]);
}

#[test]
#[should_panic(expected = "custom op `cube_first_order` has only a first-order vjp")]
fn a_hessian_vector_product_through_a_first_order_only_op_panics_naming_it() {
    let x = cube_input();
    let _ = hvp(
        through_cube(CubeVjp::FirstOrderOnly),
        std::slice::from_ref(&x),
        std::slice::from_ref(&x),
    );
}

#[test]
#[should_panic(expected = "custom op `cube_first_order` has no tangent rule")]
fn forward_mode_through_a_custom_op_without_a_tangent_rule_panics_naming_it() {
    let x = cube_input();
    let _ = jvp(
        through_cube(CubeVjp::FirstOrderOnly),
        std::slice::from_ref(&x),
        std::slice::from_ref(&x),
    );
}

// ---------------------------------------------------------------------------------
// Random programs.

/// One step of a random smooth program (tests/properties.rs's, without the kinks, and
/// with more ops): every op maps values in [-2, 2] back into [-2, 2], so deep programs
/// neither overflow nor flatten out, and every op has a second derivative.
fn smooth_step<'t>(
    op: usize,
    a: Var<'t, f64>,
    b: Var<'t, f64>,
    w: Var<'t, f64>,
    perm: &[usize],
    cols: &[usize],
    targets: &[usize],
) -> Var<'t, f64> {
    let shape = a.shape();
    let (r, c) = (shape[0], shape[1]);
    match op {
        0 => (a + b) * 0.5,
        1 => (a - b) * 0.5,
        2 => a * b * 0.5,
        3 => a / (b.square() + 1.0),
        4 => a.tanh(),
        5 => a.sigmoid(),
        6 => a.exp() * 0.25,
        7 => a.softplus() * 0.5,
        8 => a.square() * 0.5,
        9 => a.softmax(1),
        10 => a.log_softmax(1) * 0.3,
        11 => (a - b.mean_axes(&[0], true)) * 0.5,
        12 => a * b.sum_axes(&[1], true).tanh(),
        13 => a.matmul(w) * (1.0 / c as f64),
        14 => a.select_rows(perm),
        15 => Var::concat(&[a, b], 1).index_select(1, cols),
        16 => a.t().t() * ((b.square() + 1.0).sqrt() * 0.5),
        17 => a.linear_with(w * 0.5, b.mean_axes(&[0], false), Activation::Tanh),
        18 => a.sin() * b.cos(),
        19 => ((a.square() + 0.5).powf(0.75) - 1.0) * 0.5,
        20 => a.t().log_softmax(0).t() * 0.3,
        21 => (a.reshape([r * c]) * b.reshape([r * c]).sigmoid()).reshape([r, c]),
        22 => a.sum_axes(&[0], true).broadcast_to([r, c]) * (0.5 / r as f64),
        23 => a * (a.cross_entropy(targets) * 0.2).tanh(),
        24 => (1.0 - a.cos()) * (2.0 / (b.square() + 2.0)),
        25 => a.powi(3) * 0.1 + b.permute(&[1, 0]).t() * 0.5,
        _ => a.linear_with(w * 0.5, b.sum_axes(&[0], false) * 0.1, Activation::Sigmoid),
    }
}

const SMOOTH_OPS: usize = 27;

/// 32 cases (a fraction of a second) unless `PROPTEST_CASES` says otherwise (see the
/// top of the file).
fn dag_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: dag_cases(), ..ProptestConfig::default() })]

    /// Random DAGs of 10 to 50 steps with shared subexpressions: second derivatives
    /// (gradgradcheck), tangents (against finite differences and reverse mode) and the
    /// recorded first derivatives (against the fast ones).
    #[test]
    fn random_dags_with_shared_subexpressions_pass_second_order_checks(
        rows in 1usize..4,
        cols in 1usize..5,
        steps in prop::collection::vec((0..SMOOTH_OPS, any::<Index>(), any::<Index>()), 10..=50),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut perm: Vec<usize> = (0..rows).collect();
        rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut rng);
        let pick: Vec<usize> = (0..cols).map(|i| (i * 7 + seed as usize) % (2 * cols)).collect();
        let targets: Vec<usize> = (0..rows).map(|i| (i + seed as usize) % cols).collect();
        let inputs = vec![
            uniform(&[rows, cols], -1.0, 1.0, seed),
            uniform(&[rows, cols], -1.0, 1.0, seed ^ 1),
            uniform(&[cols, cols], -1.0, 1.0, seed ^ 2),
        ];
        let program = func(|_, v| {
            let mut nodes = vec![v[0], v[1]];
            for (op, a, b) in &steps {
                let (a, b) = (nodes[a.index(nodes.len())], nodes[b.index(nodes.len())]);
                nodes.push(smooth_step(*op, a, b, v[2], &perm, &pick, &targets));
            }
            // Everything computed feeds the output, so every shared node is exercised.
            nodes[2..].iter().skip(1).fold(nodes[2], |acc, &n| acc + n)
        });
        gg(program, &inputs, GradcheckOptions::default()).map_err(TestCaseError::fail)?;
        check_jvp(program, &inputs, seed).map_err(TestCaseError::fail)?;
        recorded_matches_fast(program, &inputs).map_err(TestCaseError::fail)?;
    }
}

/// One step of a random smooth program on `[n, c, h, w]` images: convolutions (padded to
/// keep the size, one dilated and biased), average pooling, softmax over channels and
/// elementwise ops, each mapping [-2, 2] back into it.
fn image_step<'t>(op: usize, a: Var<'t, f64>, b: Var<'t, f64>, w: Var<'t, f64>) -> Var<'t, f64> {
    let c = a.shape()[1] as f64;
    match op {
        0 => (a + b) * 0.5,
        1 => a * b * 0.5,
        2 => a.tanh(),
        3 => a.sigmoid(),
        4 => a.conv2d(w, Conv2dOptions::new(1, 1)) * (1.0 / (9.0 * c)),
        5 => {
            let dilated = Conv2dOptions {
                dilation: [2, 2],
                ..Conv2dOptions::new(1, 2)
            };
            a.conv2d_bias(w, b.mean_axes(&[0, 2, 3], false), dilated) * (1.0 / (9.0 * c + 1.0))
        }
        6 => a.avg_pool2d(3, 1, 1),
        7 => a.softmax(1),
        8 => a.sin() * b.cos(),
        9 => (a - b.mean_axes(&[2, 3], true)) * 0.5,
        10 => a.log_softmax(1) * 0.3,
        _ => a / (a.square().sum_axes(&[1], true) + 1.0).sqrt(),
    }
}

const IMAGE_OPS: usize = 12;

proptest! {
    #![proptest_config(ProptestConfig { cases: dag_cases() / 4 + 1, ..ProptestConfig::default() })]

    /// Random DAGs of convolutions, pooling and channel softmaxes: second derivatives,
    /// tangents and the recorded first derivatives, as above.
    #[test]
    fn random_image_dags_pass_second_order_checks(
        n in 1usize..3,
        c in 1usize..4,
        h in 3usize..6,
        w in 3usize..6,
        steps in prop::collection::vec((0..IMAGE_OPS, any::<Index>(), any::<Index>()), 5..=20),
        seed in any::<u64>(),
    ) {
        let inputs = vec![
            uniform(&[n, c, h, w], -1.0, 1.0, seed),
            uniform(&[n, c, h, w], -1.0, 1.0, seed ^ 1),
            uniform(&[c, c, 3, 3], -1.0, 1.0, seed ^ 2),
        ];
        let program = func(|_, v| {
            let mut nodes = vec![v[0], v[1]];
            for (op, a, b) in &steps {
                let (a, b) = (nodes[a.index(nodes.len())], nodes[b.index(nodes.len())]);
                nodes.push(image_step(*op, a, b, v[2]));
            }
            nodes[2..].iter().skip(1).fold(nodes[2], |acc, &n| acc + n)
        });
        gg(program, &inputs, GradcheckOptions::default()).map_err(TestCaseError::fail)?;
        check_jvp(program, &inputs, seed).map_err(TestCaseError::fail)?;
        recorded_matches_fast(program, &inputs).map_err(TestCaseError::fail)?;
    }
}
