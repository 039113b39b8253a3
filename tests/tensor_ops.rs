//! Every tensor op under gradcheck on fixed cases, broadcasting corners, extreme
//! inputs for the stable ops, and the tape's behaviour (no_grad, repeatability, dot).

use autodiff::{
    gradcheck, CustomOp, GradcheckError, GradcheckLocation, GradcheckOptions, Tape, Tensor, Var,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

type Expr = for<'t> fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>;

fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut StdRng::seed_from_u64(seed))
}

/// Values in [lo, hi): keeps points inside a domain and away from kinks.
fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, lo, hi, &mut StdRng::seed_from_u64(seed))
}

fn check(name: &str, f: Expr, inputs: Vec<Tensor<f64>>) {
    if let Err(e) = gradcheck(f, &inputs, GradcheckOptions::default()) {
        panic!("{name}: {e}");
    }
}

#[test]
fn elementwise_ops_pass_gradcheck() {
    let x = randn(&[3, 4], 1);
    let pos = uniform(&[3, 4], 0.2, 2.0, 2);
    let away_from_zero = pos.map(|v| if v > 1.0 { v } else { -v });
    check("neg", |_, v| -v[0], vec![x.clone()]);
    check("exp", |_, v| v[0].exp(), vec![x.clone()]);
    check("ln", |_, v| v[0].ln(), vec![pos.clone()]);
    check("sqrt", |_, v| v[0].sqrt(), vec![pos.clone()]);
    check("square", |_, v| v[0].square(), vec![x.clone()]);
    check("powf", |_, v| v[0].powf(1.7), vec![pos.clone()]);
    check("sigmoid", |_, v| v[0].sigmoid(), vec![x.clone()]);
    check("tanh", |_, v| v[0].tanh(), vec![x.clone()]);
    check("softplus", |_, v| v[0].softplus(), vec![x.clone()]);
    check("relu", |_, v| v[0].relu(), vec![away_from_zero.clone()]);
    check("abs", |_, v| v[0].abs(), vec![away_from_zero]);
    check(
        "scalar ops",
        |_, v| ((v[0] + 1.5) * 2.0 - 0.5) / 3.0,
        vec![x.clone()],
    );
    check(
        "scalar lhs ops",
        |_, v| 2.0 - (3.0 * v[0]) + 1.0 / v[1] + (4.0 + v[0]),
        vec![x.clone(), pos.clone()],
    );
    check("add", |_, v| v[0] + v[1], vec![x.clone(), pos.clone()]);
    check("sub", |_, v| v[0] - v[1], vec![x.clone(), pos.clone()]);
    check("mul", |_, v| v[0] * v[1], vec![x.clone(), pos.clone()]);
    check("div", |_, v| v[0] / v[1], vec![x, pos]);
}

#[test]
fn broadcasting_corners_pass_gradcheck() {
    let cases: Vec<(&[usize], &[usize])> = vec![
        (&[3, 4], &[4]),       // rank mismatch: bias over rows
        (&[3, 4], &[3, 1]),    // size-1 dimension
        (&[3, 1], &[1, 4]),    // both sides broadcast
        (&[2, 3, 4], &[3, 1]), // rank mismatch and size 1
        (&[2, 3, 4], &[]),     // rank-0 scalar
        (&[], &[2, 3]),
        (&[1], &[2, 3]),
        (&[2, 1, 4], &[1, 3, 1]),
    ];
    for (k, (a, b)) in cases.into_iter().enumerate() {
        let (ta, tb) = (randn(a, 10 + k as u64), uniform(b, 0.5, 2.0, 20 + k as u64));
        check(
            "broadcast add",
            |_, v| v[0] + v[1],
            vec![ta.clone(), tb.clone()],
        );
        check(
            "broadcast sub",
            |_, v| v[1] - v[0],
            vec![ta.clone(), tb.clone()],
        );
        check(
            "broadcast mul",
            |_, v| v[0] * v[1],
            vec![ta.clone(), tb.clone()],
        );
        check(
            "broadcast div",
            |_, v| v[0] / v[1],
            vec![ta.clone(), tb.clone()],
        );
    }
    check(
        "broadcast_to",
        |_, v| v[0].broadcast_to([2, 3, 4]),
        vec![randn(&[3, 1], 3)],
    );
}

#[test]
fn matmul_passes_gradcheck_in_every_layout() {
    check(
        "matmul 2-D",
        |_, v| v[0].matmul(v[1]),
        vec![randn(&[3, 5], 1), randn(&[5, 2], 2)],
    );
    check(
        "matmul batched",
        |_, v| v[0].matmul(v[1]),
        vec![randn(&[2, 3, 4], 3), randn(&[2, 4, 5], 4)],
    );
    check(
        "matmul batch x matrix",
        |_, v| v[0].matmul(v[1]),
        vec![randn(&[2, 3, 4], 5), randn(&[4, 2], 6)],
    );
    check(
        "matmul of a transpose",
        |_, v| v[0].t().matmul(v[1]),
        vec![randn(&[4, 3], 7), randn(&[4, 2], 8)],
    );
    // Large enough for the random-direction path.
    check(
        "matmul large",
        |_, v| v[0].matmul(v[1]).tanh(),
        vec![randn(&[20, 40], 9), randn(&[40, 30], 10)],
    );
}

#[test]
fn fused_linear_passes_gradcheck_and_equals_matmul_plus_bias() {
    let (x, w, b) = (randn(&[5, 4], 1), randn(&[4, 3], 2), randn(&[3], 3));
    check(
        "linear",
        |_, v| v[0].linear(v[1], v[2]).tanh(),
        vec![x.clone(), w.clone(), b.clone()],
    );
    let tape = Tape::<f64>::new();
    let (xv, wv, bv) = (tape.param(x), tape.param(w), tape.param(b));
    let fused = xv.linear(wv, bv);
    let unfused = xv.matmul(wv) + bv;
    for (p, q) in fused.value().data().iter().zip(unfused.value().data()) {
        assert!((p - q).abs() < 1e-12);
    }
}

/// `linear_relu`, `linear_sigmoid` and `linear_tanh` pass gradcheck, and give the values
/// and gradients of `linear` followed by the activation, bit for bit: on a small layer
/// and on one large enough that its backward pass computes `dx` and `dw` side by side
/// when there are two threads, and with a NaN gradient at a unit the ReLU turns off
/// (which both ReLUs stop there: the input gradients stay finite).
#[test]
fn fused_linear_activations_pass_gradcheck_and_equal_the_unfused_chain() {
    let inputs = || vec![randn(&[6, 5], 4), randn(&[5, 3], 5), randn(&[3], 6)];
    check("linear_relu", |_, v| v[0].linear_relu(v[1], v[2]), inputs());
    check(
        "linear_sigmoid",
        |_, v| v[0].linear_sigmoid(v[1], v[2]),
        inputs(),
    );
    check("linear_tanh", |_, v| v[0].linear_tanh(v[1], v[2]), inputs());

    type Pair = for<'t> fn(Var<'t, f32>, Var<'t, f32>, Var<'t, f32>) -> Var<'t, f32>;
    let pairs: [(&str, Pair, Pair); 3] = [
        (
            "relu",
            |x, w, b| x.linear_relu(w, b),
            |x, w, b| x.linear(w, b).relu(),
        ),
        (
            "sigmoid",
            |x, w, b| x.linear_sigmoid(w, b),
            |x, w, b| x.linear(w, b).sigmoid(),
        ),
        (
            "tanh",
            |x, w, b| x.linear_tanh(w, b),
            |x, w, b| x.linear(w, b).tanh(),
        ),
    ];
    let f32s = |shape: &[usize], seed: u64| randn(shape, seed).cast::<f32>();
    for (n, k, m) in [(6, 5, 3), (128, 96, 40)] {
        let (x, w, b) = (f32s(&[n, k], 7), f32s(&[k, m], 8), f32s(&[m], 9));
        // Weights on the output, with a NaN where the ReLU's output is zero.
        let mut weights = f32s(&[n, m], 10);
        let pre = {
            let tape = Tape::<f32>::new();
            let (xv, wv, bv) = (tape.constant(&x), tape.constant(&w), tape.constant(&b));
            xv.linear(wv, bv).value()
        };
        let off = pre
            .data()
            .iter()
            .position(|&v| v < 0.0)
            .expect("a negative pre-activation");
        weights.data_mut()[off] = f32::NAN;
        // Bits, with every NaN the same (its payload depends on the instructions).
        let bits = |t: &Tensor<f32>| {
            t.data()
                .iter()
                .map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() })
                .collect::<Vec<_>>()
        };
        for (name, fused, unfused) in pairs {
            let run = |f: Pair| {
                let tape = Tape::<f32>::new();
                let (xv, wv, bv) = (tape.param(&x), tape.param(&w), tape.param(&b));
                let y = f(xv, wv, bv);
                let grads = (y * tape.constant(&weights)).sum().backward();
                [
                    y.value(),
                    grads[xv].clone(),
                    grads[wv].clone(),
                    grads[bv].clone(),
                ]
                .map(|t| bits(&t))
            };
            let (got, want) = (run(fused), run(unfused));
            if name == "relu" {
                let finite = got[1..]
                    .iter()
                    .flatten()
                    .all(|&b| f32::from_bits(b).is_finite());
                assert!(
                    finite,
                    "linear_relu {n}x{k}x{m}: a NaN leaked through an off unit"
                );
            }
            for (what, (got, want)) in ["value", "dx", "dw", "db"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                assert!(
                    got == want,
                    "linear_{name} {n}x{k}x{m}: {what} differs from the unfused chain"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "linear: x [5, 4] w [3, 3] b [3]: expected [n, k] x [k, m] + [m]")]
fn linear_shape_errors_name_every_operand() {
    let tape = Tape::<f32>::new();
    let _ = tape.constant(Tensor::zeros([5, 4])).linear(
        tape.constant(Tensor::zeros([3, 3])),
        tape.constant(Tensor::zeros([3])),
    );
}

#[test]
fn matmul_matches_a_naive_product() {
    let (a, b) = (randn(&[7, 13], 1), randn(&[13, 5], 2));
    let tape = Tape::new();
    let c = tape.constant(&a).matmul(tape.constant(&b)).value();
    for i in 0..7 {
        for j in 0..5 {
            let expect: f64 = (0..13).map(|l| a.get(&[i, l]) * b.get(&[l, j])).sum();
            assert!((c.get(&[i, j]) - expect).abs() < 1e-12);
        }
    }
}

#[test]
fn reductions_pass_gradcheck() {
    let x = randn(&[2, 3, 4], 1);
    check("sum", |_, v| v[0].sum(), vec![x.clone()]);
    check(
        "sum axis 1",
        |_, v| v[0].sum_axes(&[1], false),
        vec![x.clone()],
    );
    check(
        "sum axes 0,2 keepdim",
        |_, v| v[0].sum_axes(&[0, 2], true),
        vec![x.clone()],
    );
    check("mean", |_, v| v[0].mean(), vec![x.clone()]);
    check(
        "mean axis 2 keepdim",
        |_, v| v[0].mean_axes(&[2], true),
        vec![x.clone()],
    );
    check(
        "mean axes 0,1",
        |_, v| v[0].mean_axes(&[0, 1], false),
        vec![x.clone()],
    );
    // Distinct values keep max away from ties (its kink).
    let distinct = Tensor::from_vec(
        (0..24)
            .map(|i| ((i * 7) % 24) as f64 * 0.37 - 3.0)
            .collect(),
        [2, 3, 4],
    );
    check("max", |_, v| v[0].max(), vec![distinct.clone()]);
    check(
        "max axis 1",
        |_, v| v[0].max_axes(&[1], false),
        vec![distinct.clone()],
    );
    check(
        "max axes 0,2 keepdim",
        |_, v| v[0].max_axes(&[0, 2], true),
        vec![distinct],
    );
}

#[test]
fn max_sends_the_gradient_of_a_tie_to_the_first_maximum() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, 3.0, 2.0], [4]));
    let g = x.max().backward();
    assert_eq!(g[x].data(), &[0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn shape_ops_pass_gradcheck() {
    let x = randn(&[2, 3, 4], 1);
    check(
        "reshape",
        |_, v| v[0].reshape([4, 6]).square(),
        vec![x.clone()],
    );
    check(
        "permute",
        |_, v| v[0].permute(&[2, 0, 1]).sin_like(),
        vec![x.clone()],
    );
    check(
        "transpose",
        |_, v| v[0].transpose(0, 2).sin_like(),
        vec![x.clone()],
    );
    check("t", |_, v| v[0].t().sin_like(), vec![randn(&[3, 5], 2)]);
    check(
        "index_select rows (repeats)",
        |_, v| v[0].select_rows(&[2, 0, 2]).sin_like(),
        vec![randn(&[3, 4], 3)],
    );
    check(
        "index_select axis 1",
        |_, v| v[0].index_select(1, &[1, 1, 0]).sin_like(),
        vec![x.clone()],
    );
    check(
        "index_select axis 2",
        |_, v| v[0].index_select(2, &[3, 0]).sin_like(),
        vec![x.clone()],
    );
    check(
        "concat axis 0",
        |_, v| Var::concat(&[v[0], v[1]], 0).sin_like(),
        vec![randn(&[2, 3], 4), randn(&[1, 3], 5)],
    );
    check(
        "concat axis 1",
        |_, v| Var::concat(&[v[0], v[1], v[0]], 1).sin_like(),
        vec![randn(&[2, 3], 6), randn(&[2, 2], 7)],
    );
}

/// A smooth, non-symmetric function so that position errors show in the gradient.
trait SinLike<'t> {
    fn sin_like(self) -> Var<'t, f64>;
}
impl<'t> SinLike<'t> for Var<'t, f64> {
    fn sin_like(self) -> Var<'t, f64> {
        let tape = self.tape();
        let n = self.shape().iter().product::<usize>();
        let w = tape.constant(Tensor::from_vec(
            (0..n).map(|i| 0.3 + 0.1 * i as f64).collect(),
            self.shape(),
        ));
        (self * w).tanh()
    }
}

#[test]
fn softmax_family_passes_gradcheck() {
    let x = randn(&[3, 5], 1);
    check("softmax axis 1", |_, v| v[0].softmax(1), vec![x.clone()]);
    check("softmax axis 0", |_, v| v[0].softmax(0), vec![x.clone()]);
    check(
        "log_softmax axis 1",
        |_, v| v[0].log_softmax(1),
        vec![x.clone()],
    );
    check(
        "log_softmax axis 1 of 3-D",
        |_, v| v[0].log_softmax(1),
        vec![randn(&[2, 3, 4], 2)],
    );
    check(
        "cross_entropy",
        |_, v| v[0].cross_entropy(&[4, 0, 2]),
        vec![x],
    );
}

#[test]
fn stable_ops_stay_finite_and_correct_at_logits_of_1000() {
    let extreme = Tensor::from_vec(vec![1000.0, -1000.0, 0.0, 999.0, -1000.0, 1000.0], [2, 3]);
    let tape = Tape::<f64>::new();
    let x = tape.param(&extreme);
    for (name, y) in [
        ("sigmoid", x.sigmoid().sum()),
        ("tanh", x.tanh().sum()),
        ("softplus", x.softplus().sum()),
        ("softmax", x.softmax(1).square().sum()),
        ("log_softmax", x.log_softmax(1).sum()),
        ("cross_entropy", x.cross_entropy(&[1, 2])),
    ] {
        let g = y.backward();
        assert!(y.item().is_finite(), "{name}: value {}", y.item());
        assert!(g[x].all_finite(), "{name}: gradient {}", g[x]);
    }
    // Values: row 0 has logits (1000, -1000, 0), so log p(1) = -2000 exactly.
    let ce = x.cross_entropy(&[1, 2]).item();
    let row1 = log_add_exp(999.0, 1000.0) - 1000.0;
    assert!(
        (ce - (2000.0 + row1) / 2.0).abs() < 1e-9,
        "cross-entropy {ce}"
    );
    // Gradients at the extremes still match finite differences.
    check(
        "log_softmax extreme",
        |_, v| v[0].log_softmax(1),
        vec![extreme.clone()],
    );
    check(
        "cross_entropy extreme",
        |_, v| v[0].cross_entropy(&[1, 2]),
        vec![extreme.clone()],
    );
    check(
        "sigmoid extreme",
        |_, v| v[0].sigmoid(),
        vec![extreme.clone()],
    );
    check("softplus extreme", |_, v| v[0].softplus(), vec![extreme]);
}

/// ln(e^a + e^b) computed stably, for the expected value above.
fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// d/dx x² = 2x, but this op claims 3x.
struct WrongSquare;
impl CustomOp<f64> for WrongSquare {
    fn name(&self) -> &str {
        "wrong_square"
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Tensor<f64> {
        inputs[0].map(|x| x * x)
    }
    fn vjp(
        &self,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
        grad: &Tensor<f64>,
    ) -> Vec<Tensor<f64>> {
        let d = inputs[0]
            .data()
            .iter()
            .zip(grad.data())
            .map(|(x, g)| 3.0 * x * g)
            .collect();
        vec![Tensor::from_vec(d, inputs[0].shape())]
    }
}

#[test]
fn gradcheck_catches_a_wrong_derivative_and_says_where() {
    let x = Tensor::from_vec(vec![0.5, -2.0, 1.0], [3]);
    let err = gradcheck(
        |tape, v| tape.custom(WrongSquare, &[v[0]]).sum(),
        &[x],
        GradcheckOptions::default(),
    )
    .expect_err("a wrong vjp must fail the check");
    match &err {
        GradcheckError::Mismatch {
            input,
            location,
            analytic,
            numeric,
            ..
        } => {
            assert_eq!(*input, 0);
            // The largest error is at x = -2: analytic -6 against numeric -4.
            assert_eq!(
                *location,
                GradcheckLocation::Element {
                    flat: 1,
                    index: vec![1]
                }
            );
            assert!((analytic - -6.0).abs() < 1e-9 && (numeric - -4.0).abs() < 1e-6);
        }
        other => panic!("unexpected error {other}"),
    }
    let text = err.to_string();
    for part in [
        "input 0",
        "element [1]",
        "analytic",
        "numeric",
        "abs error",
        "rel error",
    ] {
        assert!(text.contains(part), "report lacks {part:?}: {text}");
    }
    // The same op on a large input is caught along random directions.
    let big = randn(&[40, 20], 3);
    let err = gradcheck(
        |tape, v| tape.custom(WrongSquare, &[v[0]]).sum(),
        &[big],
        GradcheckOptions::default(),
    );
    assert!(matches!(
        err,
        Err(GradcheckError::Mismatch {
            location: GradcheckLocation::Direction(_),
            ..
        })
    ));
}

#[test]
fn constants_record_no_vjp_work_and_get_no_gradient() {
    let tape = Tape::<f32>::new();
    let c = tape.constant(Tensor::ones([2, 2]));
    let y = (c * 2.0).exp().sum();
    assert!(!y.requires_grad());
    let w = tape.param(Tensor::ones([2, 2]));
    let z = (w * c).sum();
    let g = z.backward();
    assert!(g.get(c).is_none());
    assert_eq!(g[w].data(), &[1.0; 4]);
    // A parameter the output does not depend on has no gradient either.
    let unused = tape.param(Tensor::ones([3]));
    assert!(z.backward().get(unused).is_none());
}

#[test]
fn backward_is_repeatable_and_shared_values_accumulate() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    let s = x * x; // used twice below
    let y = (s + s * x).sum();
    let g1 = y.backward()[x].clone();
    let g2 = y.backward()[x].clone();
    // d/dx (x² + x³) = 2x + 3x²
    assert_eq!(g1.data(), &[5.0, 16.0]);
    assert_eq!(g1, g2);
}

#[test]
fn backward_with_seeds_a_vector_jacobian_product() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    let y = x.square();
    let g = y.backward_with(Tensor::from_vec(vec![1.0, 0.0, -1.0], [3]));
    assert_eq!(g[x].data(), &[2.0, 0.0, -6.0]);
}

#[test]
fn retained_intermediate_gradients_match_the_chain_rule() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![0.5, -1.0], [2]));
    let h = x * 3.0;
    h.retain_grad();
    let y = h.square().sum(); // dy/dh = 2h, dy/dx = 6h
    let g = y.backward();
    assert_eq!(g[h].data(), &[3.0, -6.0]);
    assert_eq!(g[x].data(), &[9.0, -18.0]);
    // Without retain_grad the intermediate gradient is freed.
    let h2 = x * 2.0;
    assert!(h2.sum().backward().get(h2).is_none());
}

#[test]
fn detach_stops_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![3.0], [1]));
    let y = (x * x.detach()).sum();
    assert_eq!(y.backward()[x].data(), &[3.0]);
}

#[test]
fn to_dot_shows_every_node_and_edge() {
    let tape = Tape::<f32>::new();
    let x = tape.constant(Tensor::ones([4, 3]));
    let w = tape.param(Tensor::ones([3, 2]));
    let _ = x.matmul(w).sigmoid().sum();
    let dot = tape.to_dot();
    assert!(dot.starts_with("digraph tape {"));
    for part in [
        "#0 constant [4, 3]",
        "#1 param [3, 2]",
        "#2 matmul [4, 2]",
        "#3 sigmoid [4, 2]",
        "#4 sum []",
        "n0 -> n2;",
        "n1 -> n2;",
        "n3 -> n4;",
    ] {
        assert!(dot.contains(part), "missing {part:?} in\n{dot}");
    }
}

#[test]
#[should_panic(expected = "matmul: [100, 784] x [16, 784]: inner dimensions differ")]
fn matmul_shape_errors_name_the_op_and_both_shapes() {
    let tape = Tape::<f32>::new();
    let _ = tape
        .constant(Tensor::zeros([100, 784]))
        .matmul(tape.constant(Tensor::zeros([16, 784])));
}

#[test]
#[should_panic(expected = "add: [2, 3] and [4]: shapes do not broadcast")]
fn broadcast_errors_name_the_op_and_both_shapes() {
    let tape = Tape::<f32>::new();
    let _ = tape.constant(Tensor::zeros([2, 3])) + tape.constant(Tensor::zeros([4]));
}

#[test]
#[should_panic(expected = "values of two tapes cannot be mixed")]
fn tensors_of_two_tapes_cannot_be_mixed() {
    let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
    let _ = t1.param(Tensor::ones([2])) * t2.param(Tensor::ones([2]));
}

#[test]
fn f32_and_f64_give_the_same_gradients_within_f32_precision() {
    let x = randn(&[4, 3], 1);
    let w = randn(&[3, 2], 2);
    let run64 = {
        let tape = Tape::<f64>::new();
        let wv = tape.param(&w);
        let y = tape.constant(&x).matmul(wv).sigmoid().log_softmax(1).sum();
        y.backward()[wv].clone()
    };
    let run32 = {
        let tape = Tape::<f32>::new();
        let wv = tape.param(w.cast());
        let y = tape
            .constant(x.cast())
            .matmul(wv)
            .sigmoid()
            .log_softmax(1)
            .sum();
        y.backward()[wv].clone()
    };
    for (a, b) in run64.data().iter().zip(run32.data()) {
        assert!((a - *b as f64).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn trig_and_integer_powers_pass_gradcheck() {
    let x = randn(&[3, 4], 11);
    check("sin", |_, v| v[0].sin(), vec![x.clone()]);
    check("cos", |_, v| v[0].cos(), vec![x.clone()]);
    check("powi 3", |_, v| v[0].powi(3), vec![x.clone()]);
    check("powi 1", |_, v| v[0].powi(1), vec![x.clone()]);
    check(
        "powi -2",
        |_, v| v[0].powi(-2),
        vec![uniform(&[3, 4], 0.5, 2.0, 12)],
    );
    check(
        "sin cos chain",
        |_, v| (v[0].sin() * v[1].cos()).powi(2).sum(),
        vec![x.clone(), randn(&[4], 13)],
    );
    // x^0 is constant: its gradient is 0 everywhere, x = 0 included.
    let tape = Tape::<f64>::new();
    let z = tape.param(Tensor::from_vec(vec![0.0, 2.0], [2]));
    let grads = z.powi(0).sum().backward();
    assert_eq!(grads[z].data(), &[0.0, 0.0]);
    // The same values as the scalar tape.
    let s = autodiff::scalar::Tape::new();
    let a = s.var(0.7);
    let y = a.sin() * a.cos() + a.powi(3);
    let t = tape.param(Tensor::from_vec(vec![0.7], [1]));
    let ty = (t.sin() * t.cos() + t.powi(3)).sum();
    assert_eq!(ty.item(), y.value());
    assert_eq!(ty.backward()[t].data(), &[y.backward()[a]]);
}

#[test]
fn param_and_constant_take_a_reference_without_copying() {
    let weights = [randn(&[2, 2], 1), randn(&[2], 2)];
    let tape = Tape::<f64>::new();
    let vars: Vec<Var<'_, f64>> = weights.iter().map(|w| tape.param(w)).collect();
    let x = tape.constant(&weights[0]);
    assert_eq!(vars[0].value(), weights[0]);
    assert_eq!(x.value(), weights[0]);
    assert!(vars[1].requires_grad() && !x.requires_grad());
    // The reference and the owned form record the same thing.
    let owned = tape.param(weights[1].clone());
    assert_eq!(owned.value(), vars[1].value());
}

#[test]
fn gradients_of_another_tape_read_as_none() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a = t1.param(Tensor::ones([2]));
    let b = t2.param(Tensor::ones([2]));
    let mut grads = a.square().sum().backward();
    assert!(grads.get(b).is_none());
    assert!(grads.take(b).is_none());
    assert_eq!(
        grads.get(a).map(|g| g.data().to_vec()),
        Some(vec![2.0, 2.0])
    );
}

#[test]
#[should_panic(
    expected = "gradients: node #0 belongs to another tape than the one backward ran on"
)]
fn indexing_gradients_with_another_tapes_var_says_so() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a = t1.param(Tensor::ones([2]));
    let b = t2.param(Tensor::ones([2]));
    let grads = a.sum().backward();
    let _ = &grads[b];
}

#[test]
#[should_panic(expected = "gradients: node #1 has no gradient (it is a constant")]
fn indexing_gradients_with_a_constant_says_so() {
    let tape = Tape::<f64>::new();
    let a = tape.param(Tensor::ones([2]));
    let c = tape.constant(Tensor::ones([2]));
    let grads = (a * c).sum().backward();
    let _ = &grads[c];
}

#[test]
#[should_panic(expected = "tape: a Var from another tape was used here (node #0 of tape")]
fn mixing_tapes_in_matmul_names_the_node_and_both_tapes() {
    let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
    let _ = t1
        .param(Tensor::ones([2, 2]))
        .matmul(t2.constant(Tensor::ones([2, 2])));
}

#[test]
#[should_panic(expected = "reshape: [2, 3] cannot become [4, 2]: element counts differ")]
fn reshape_errors_name_both_shapes() {
    let tape = Tape::<f32>::new();
    let _ = tape.constant(Tensor::zeros([2, 3])).reshape([4, 2]);
}

#[test]
#[should_panic(expected = "concat: [2, 3] and [2, 4] differ outside axis 0")]
fn concat_errors_name_both_shapes() {
    let tape = Tape::<f32>::new();
    let a = tape.constant(Tensor::zeros([2, 3]));
    let b = tape.constant(Tensor::zeros([2, 4]));
    let _ = Var::concat(&[a, b], 0);
}

#[test]
#[should_panic(expected = "index_select: index 5 is out of range for axis 0 of [3, 2]")]
fn index_select_errors_name_the_index_and_shape() {
    let tape = Tape::<f32>::new();
    let _ = tape.constant(Tensor::zeros([3, 2])).select_rows(&[0, 5]);
}

#[test]
#[should_panic(
    expected = "cross_entropy: logits [4, 3] need shape [n, classes] with n = 2 targets"
)]
fn cross_entropy_errors_name_the_logits_shape() {
    let tape = Tape::<f32>::new();
    let _ = tape.param(Tensor::zeros([4, 3])).cross_entropy(&[0, 1]);
}

#[test]
#[should_panic(expected = "sum: axis 2 is out of range for shape [4, 3]")]
fn reduction_axis_errors_name_the_shape() {
    let tape = Tape::<f32>::new();
    let _ = tape.param(Tensor::zeros([4, 3])).sum_axes(&[2], false);
}

#[test]
#[should_panic(expected = "mul: [4, 3] and [4]: shapes do not broadcast")]
fn multiplying_vars_that_do_not_broadcast_names_both_shapes() {
    let tape = Tape::<f64>::new();
    let _ = tape.param(Tensor::zeros([4, 3])) * tape.constant(Tensor::zeros([4]));
}

#[test]
fn gradcheck_reports_relative_errors_consistent_with_its_tolerance() {
    // x³ at 0 has derivative 0; the central difference gives h² ≈ 1e-12, a relative
    // error of 1 against |numeric| although the check passes on atol.
    let options = GradcheckOptions::default();
    let x = Tensor::from_vec(vec![0.0, 0.5, -1.0], [3]);
    let report = gradcheck(|_, v| v[0].powi(3).sum(), &[x], options.clone()).unwrap();
    assert!(
        report.max_rel_error <= options.rtol,
        "max_rel_error {} on a passing check",
        report.max_rel_error
    );
    // A failing check reports a relative error above rtol.
    let err = gradcheck(
        |tape, v| tape.custom(WrongSquare, &[v[0]]).sum(),
        &[Tensor::from_vec(vec![1e-3], [1])],
        options.clone(),
    )
    .unwrap_err();
    match err {
        GradcheckError::Mismatch {
            abs_error,
            rel_error,
            allowed,
            ..
        } => {
            assert!(abs_error > allowed);
            assert!(rel_error > options.rtol, "rel_error {rel_error}");
        }
        other => panic!("unexpected error {other}"),
    }
}
