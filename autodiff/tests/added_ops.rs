//! The ops added as one `Rule` each: the element-wise `log_sigmoid`, `erf` and the two
//! GELUs, the structural `masked_fill` and `embedding`, `layer_norm` (composed) and
//! `batch_norm` (fused). Values against their definitions, first and
//! second derivatives against finite differences, forward mode against central
//! differences, per-sample gradients by the batched path, and a `-inf` mask through a
//! softmax.

use autodiff::func::{jvp, per_sample, BatchFunction, Function, PerSamplePath};
use autodiff::{gradcheck, gradgradcheck, scalar, sigmoid, GradcheckOptions, Tape, Tensor, Var};
use std::slice::from_ref;

/// Deterministic values in about [-3, 3].
fn values(shape: &[usize], seed: f64) -> Tensor<f64> {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|i| 3.0 * (i as f64 * 0.731 + seed).sin())
        .collect();
    Tensor::from_vec(data, shape)
}

/// A `[t, t]` causal mask: true above the diagonal (a position may not see the future).
fn causal(t: usize) -> Vec<bool> {
    (0..t * t).map(|i| i % t > i / t).collect()
}

/// Largest |a - b| over the elements.
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

fn check_first_and_second_order(f: impl Function<f64>, inputs: &[Tensor<f64>]) {
    let report = gradcheck(&f, inputs, GradcheckOptions::default()).unwrap();
    assert!(report.checks > 0);
    gradgradcheck(&f, inputs, GradcheckOptions::default()).unwrap();
}

/// Forward mode (`func::jvp`) against central differences of `f` along `v`.
fn check_jvp(f: impl Function<f64>, x: &Tensor<f64>, v: &Tensor<f64>) -> Tensor<f64> {
    let at = |h: f64| {
        let tape = Tape::new();
        let p = tape.param(Tensor::from_vec(
            x.data()
                .iter()
                .zip(v.data())
                .map(|(a, b)| a + h * b)
                .collect(),
            x.shape(),
        ));
        f(&tape, &[p]).value()
    };
    let (value, tangent) = jvp(&f, from_ref(x), from_ref(v));
    assert_eq!(value.data(), at(0.0).data());
    let h = 1e-6;
    let (up, down) = (at(h), at(-h));
    let numeric: Vec<f64> = up
        .data()
        .iter()
        .zip(down.data())
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    assert!(
        max_diff(tangent.data(), &numeric) < 1e-7,
        "{tangent:?} vs {numeric:?}"
    );
    tangent
}

/// `per_sample` by the batched path (which must apply) agrees with the loop.
fn check_per_sample(
    f: impl BatchFunction<f64> + Copy,
    params: &[Tensor<f64>],
    inputs: &[Tensor<f64>],
) {
    let fast = per_sample(f, params, inputs, PerSamplePath::Auto);
    assert!(fast.batched, "fell back to the loop: {:?}", fast.why_loop);
    let slow = per_sample(f, params, inputs, PerSamplePath::Loop);
    assert!(!slow.batched);
    assert!(max_diff(fast.losses.data(), slow.losses.data()) < 1e-12);
    for (a, b) in fast.grads.iter().zip(&slow.grads) {
        assert_eq!(a.shape(), b.shape());
        assert!(a.data().iter().all(|v| v.is_finite()));
        assert!(max_diff(a.data(), b.data()) < 1e-12, "{a:?} vs {b:?}");
    }
}

#[test]
fn log_sigmoid_matches_its_definition_and_stays_finite_far_out() {
    let tape = Tape::<f64>::new();
    let xs: Vec<f64> = (-80..=80).map(|i| i as f64 * 0.25).collect();
    let y = tape
        .param(Tensor::from_vec(xs.clone(), [xs.len()]))
        .log_sigmoid();
    for (&x, &got) in xs.iter().zip(y.value().data()) {
        let want = (1.0 / (1.0 + (-x).exp())).ln();
        assert!(
            (got - want).abs() <= 1e-14 * want.abs().max(1.0),
            "{x}: {got} vs {want}"
        );
    }
    // ln(1 / (1 + e^800)) would be ln 0 = -inf; log σ(-800) is -800, log σ(800) is 0.
    let x = tape.param(Tensor::from_vec(vec![-800.0, 800.0], [2]));
    let y = x.log_sigmoid();
    assert_eq!(y.value().data(), &[-800.0, 0.0]);
    let g = y.sum().backward();
    assert_eq!(g[x].data(), &[1.0, 0.0]); // σ(-x)
    let tape = Tape::<f32>::new();
    let x = tape.param(Tensor::from_vec(vec![-800.0f32, 800.0], [2]));
    let y = x.log_sigmoid();
    assert_eq!(y.value().data(), &[-800.0, 0.0]);
    assert_eq!(y.sum().backward()[x].data(), &[1.0, 0.0]);
}

#[test]
fn log_sigmoid_passes_gradcheck_and_gradgradcheck() {
    let x = values(&[3, 4], 0.2);
    check_first_and_second_order(|_, p| p[0].log_sigmoid(), from_ref(&x));
    check_first_and_second_order(|_, p| (p[0].log_sigmoid() * p[0]).sum(), &[x]);
}

#[test]
fn log_sigmoid_jvp_matches_finite_differences_and_its_closed_form() {
    let (x, v) = (values(&[3, 4], 0.2), values(&[3, 4], 1.9));
    let t = check_jvp(|_, p| p[0].log_sigmoid(), &x, &v);
    for ((&t, &x), &v) in t.data().iter().zip(x.data()).zip(v.data()) {
        assert!((t - sigmoid(-x) * v).abs() < 1e-15);
    }
}

#[test]
fn log_sigmoid_per_sample_gradients_take_the_batched_path() {
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        b[0].linear(p[0], p[1]).log_sigmoid().sum_axes(&[1], false)
    }
    let params = [values(&[4, 3], 0.5), values(&[3], 2.5)];
    check_per_sample(losses, &params, &[values(&[5, 4], 1.0)]);
}

#[test]
fn scalar_log_sigmoid_first_and_second_derivatives_are_the_closed_forms() {
    for x0 in [-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0] {
        let tape = scalar::Tape::new();
        let x = tape.var(x0);
        let y = x.log_sigmoid();
        assert_eq!(y.value(), -autodiff::softplus(-x0));
        let d1 = y.grad(&[x])[0];
        assert_eq!(d1.value(), y.backward()[x]);
        assert!((d1.value() - sigmoid(-x0)).abs() < 1e-15, "{x0}");
        let d2 = d1.grad(&[x])[0].value();
        let want = -sigmoid(x0) * sigmoid(-x0);
        assert!(
            (d2 - want).abs() <= 1e-15 + 1e-12 * want.abs(),
            "{x0}: {d2} vs {want}"
        );
    }
}

#[test]
fn masked_fill_puts_the_value_where_the_mask_is_true() {
    let tape = Tape::<f64>::new();
    let x = tape.param(values(&[2, 3, 4], 0.3));
    // Covering the last axis, the last two, all three, and none (one element).
    for len in [4, 12, 24, 1] {
        let mask: Vec<bool> = (0..len).map(|i| i % 3 == 1 || len == 1).collect();
        let y = x.masked_fill(&mask, 7.5).value();
        assert_eq!(y.shape(), &[2, 3, 4]);
        for (i, (&got, &v)) in y.data().iter().zip(x.value().data()).enumerate() {
            assert_eq!(
                got,
                if mask[i % len] { 7.5 } else { v },
                "mask of {len}, at {i}"
            );
        }
    }
}

/// A masked position passes nothing, by a choice: an infinite adjoint there (sqrt's at
/// 0) gives 0, not inf * 0 = NaN, in the fast vjp and the recorded one; so does an
/// infinite tangent there in forward mode.
#[test]
fn masked_fill_passes_no_gradient_not_even_nan() {
    const MASK: [bool; 4] = [false, true, true, false];
    let (x, mask) = (values(&[2, 3, 4], 0.6).map(f64::exp), MASK);
    let tape = Tape::new();
    let p = tape.param(&x);
    let y = p.masked_fill(&mask, 0.0).sqrt().sum();
    let fast = y.backward()[p].clone();
    let recorded = y.grad(&[p])[0].value();
    let v = (0..24).map(|i| if mask[i % 4] { f64::INFINITY } else { 1.0 });
    let v = Tensor::from_vec(v.collect(), [2, 3, 4]);
    let (_, tangent) = jvp(|_, p| p[0].masked_fill(&MASK, 0.0), from_ref(&x), &[v]);
    for (i, &v) in x.data().iter().enumerate() {
        let want = if mask[i % 4] { 0.0 } else { 0.5 / v.sqrt() };
        assert_eq!((fast.data()[i], recorded.data()[i]), (want, want), "at {i}");
        let want = if mask[i % 4] { 0.0 } else { 1.0 };
        assert_eq!(tangent.data()[i], want, "tangent at {i}");
    }
}

#[test]
#[should_panic(expected = "masked_fill: a mask of 5 elements does not cover")]
fn masked_fill_refuses_a_mask_that_covers_no_trailing_axes() {
    let tape = Tape::<f64>::new();
    tape.param(Tensor::zeros([2, 3, 4]))
        .masked_fill(&[true; 5], 0.0);
}

#[test]
fn masked_fill_passes_gradcheck_and_gradgradcheck() {
    let (x, mask) = (values(&[2, 3, 3], 0.4), causal(3));
    check_first_and_second_order(|_, p| p[0].masked_fill(&mask, 0.5).sin(), from_ref(&x));
    let m = [true, false, false];
    check_first_and_second_order(|_, p| p[0].square().masked_fill(&m, -2.0), &[x]);
}

#[test]
fn masked_fill_jvp_matches_finite_differences() {
    let (x, v, mask) = (values(&[2, 3, 3], 0.4), values(&[2, 3, 3], 2.2), causal(3));
    let t = check_jvp(|_, p| p[0].masked_fill(&mask, 0.5).sin(), &x, &v);
    for (i, &t) in t.data().iter().enumerate() {
        assert!(!mask[i % 9] || t == 0.0, "masked tangent {t} at {i}");
    }
}

/// A causal mask filled with `-inf` before a softmax: the masked probabilities are 0,
/// and every gradient, first and second order, f64 and f32, is finite, with exactly 0
/// at the masked logits.
#[test]
fn masked_fill_with_minus_infinity_before_softmax_keeps_gradients_finite() {
    /// The masked softmax of `[2, 4, 4]` scores, and a weighted sum of it.
    fn f<'t>(tape: &'t Tape<f64>, s: Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        let p = s.masked_fill(&causal(4), f64::NEG_INFINITY).softmax(2);
        (p, (p * tape.constant(values(&[2, 4, 4], 0.9))).sum())
    }
    let (t, mask) = (4, causal(4));
    let tape = Tape::new();
    let s = tape.param(values(&[2, t, t], 0.1));
    let (p, loss) = f(&tape, s);
    let g = loss.grad(&[s])[0];
    let gg = g.square().sum().backward();
    let (p, g, gg) = (p.value(), g.value(), &gg[s]);
    for i in 0..2 * t * t {
        assert!(p.data()[i].is_finite() && g.data()[i].is_finite() && gg.data()[i].is_finite());
        if mask[i % (t * t)] {
            assert_eq!(
                (p.data()[i], g.data()[i], gg.data()[i]),
                (0.0, 0.0, 0.0),
                "at {i}"
            );
        }
    }
    assert!(max_diff(g.data(), loss.backward()[s].data()) < 1e-15);
    check_first_and_second_order(|tape, p| f(tape, p[0]).1, &[values(&[2, t, t], 0.1)]);

    let tape = Tape::<f32>::new();
    let s = tape.param(Tensor::from_vec(vec![0.5f32; 2 * t * t], [2, t, t]));
    let loss = s
        .masked_fill(&mask, f32::NEG_INFINITY)
        .softmax(2)
        .square()
        .sum();
    let g = loss.backward();
    assert!(g[s].data().iter().all(|v| v.is_finite()));
    assert!((0..2 * t * t).all(|i| !mask[i % (t * t)] || g[s].data()[i] == 0.0));
}

/// An attention-shaped model: scores `x w` per example, a causal `-inf` mask shared by
/// the examples, a softmax, the probabilities times a shared value matrix, a loss per
/// example.
#[test]
fn masked_fill_per_sample_gradients_take_the_batched_path() {
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        let scores = b[0].matmul(p[0]).masked_fill(&causal(3), f64::NEG_INFINITY);
        let out = scores.softmax(2).matmul(p[1]);
        out.square().sum_axes(&[1, 2], false)
    }
    let params = [values(&[2, 3], 0.5), values(&[3, 2], 1.5)];
    check_per_sample(losses, &params, &[values(&[4, 3, 2], 1.0)]);
}

/// GELU at points where `erf(x/√2)` is known (mpmath, 20 digits): `x/2 (1 + erf(x/√2))`
/// computed here against the op, and the op against `x Φ(x)` to the last bits,
/// including far below 0 where `1 + erf` is 0 in f64 but `x Φ(x)` is not. The tanh form
/// against its formula, `x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))`, computed here.
#[allow(clippy::excessive_precision)] // the digits as tabulated
#[test]
fn gelu_matches_its_definitions() {
    // (x, erf(x/√2), x Φ(x))
    let known: [(f64, f64, f64); 8] = [
        (-10.0, -1.0, -7.619_853_024_160_526_066e-23),
        (
            -3.0,
            -0.997_300_203_936_739_810_95,
            -0.004_049_694_094_890_283_58,
        ),
        (
            -1.0,
            -0.682_689_492_137_085_897_17,
            -0.158_655_253_931_457_051_41,
        ),
        (
            -0.5,
            -0.382_924_922_548_026_207_28,
            -0.154_268_769_362_993_448_18,
        ),
        (
            0.5,
            0.382_924_922_548_026_207_28,
            0.345_731_230_637_006_551_82,
        ),
        (
            1.0,
            0.682_689_492_137_085_897_17,
            0.841_344_746_068_542_948_59,
        ),
        (
            2.0,
            0.954_499_736_103_641_585_6,
            1.954_499_736_103_641_585_6,
        ),
        (
            3.0,
            0.997_300_203_936_739_810_95,
            2.995_950_305_905_109_716_4,
        ),
    ];
    let tape = Tape::<f64>::new();
    let xs: Vec<f64> = known.iter().map(|k| k.0).collect();
    let x = tape.param(Tensor::from_vec(xs.clone(), [xs.len()]));
    let (exact, erf) = (
        x.gelu().value(),
        (x * std::f64::consts::FRAC_1_SQRT_2).erf(),
    );
    for (i, &(x, e, want)) in known.iter().enumerate() {
        let got = exact.data()[i];
        assert!((erf.value().data()[i] - e).abs() <= 2e-16, "erf({x}/√2)");
        let by_definition = 0.5 * x * (1.0 + e);
        assert!(
            (got - by_definition).abs() <= 1e-15,
            "{x}: {got} vs {by_definition}"
        );
        // erfc's relative slope at x/√2 is about x²: the rounding of x/√2 costs that.
        let tol = 4.0 * f64::EPSILON * want.abs() * (x * x).max(1.0);
        assert!((got - want).abs() <= tol, "{x}: {got}");
    }
    let tanh_form = x.gelu_tanh().value();
    for x0 in (-60..=60).map(|i| i as f64 * 0.125) {
        let inner = (2.0 / std::f64::consts::PI).sqrt() * (x0 + 0.044715 * x0.powi(3));
        let want = 0.5 * x0 * (1.0 + inner.tanh());
        let got = tape.constant(Tensor::scalar(x0)).gelu_tanh().value().item();
        assert!(
            (got - want).abs() <= 4e-16 * x0.abs().max(1.0),
            "{x0}: {got} vs {want}"
        );
    }
    assert_eq!(tanh_form.shape(), &[8]);
    // f32: the f64 values within a few ulp (times x², as above).
    let tape = Tape::<f32>::new();
    let x32 = tape.param(Tensor::from_vec(
        xs.iter().map(|&v| v as f32).collect(),
        [8],
    ));
    let got = x32.gelu().value();
    for ((got, want), x) in got.data().iter().zip(exact.data()).zip(&xs) {
        let tol = 4.0 * f32::EPSILON as f64 * want.abs() * (x * x).max(1.0);
        assert!(
            (*got as f64 - want).abs() <= tol,
            "f32 at {x}: {got} vs {want}"
        );
    }
}

#[test]
fn erf_and_gelus_pass_gradcheck_and_gradgradcheck() {
    let x = values(&[3, 4], 0.2);
    check_first_and_second_order(|_, p| p[0].erf(), from_ref(&x));
    check_first_and_second_order(|_, p| p[0].gelu(), from_ref(&x));
    check_first_and_second_order(|_, p| p[0].gelu_tanh(), from_ref(&x));
    check_first_and_second_order(|_, p| (p[0].gelu() * p[0].gelu_tanh()).sum(), &[x]);
}

/// Forward mode against central differences and the closed forms of the derivatives:
/// `Φ(x) + x φ(x)` and `2/√π e^(-x²)`.
#[test]
fn gelu_and_erf_jvps_match_finite_differences_and_their_closed_forms() {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    let (x, v) = (values(&[3, 4], 0.2), values(&[3, 4], 1.9));
    let t = check_jvp(|_, p| p[0].gelu(), &x, &v);
    let t_erf = check_jvp(|_, p| p[0].erf(), &x, &v);
    check_jvp(|_, p| p[0].gelu_tanh(), &x, &v);
    for i in 0..12 {
        let (x, v) = (x.data()[i], v.data()[i]);
        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
        let pdf = (-x * x / 2.0).exp() * 0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
        assert!((t.data()[i] - (cdf + x * pdf) * v).abs() < 1e-14, "at {x}");
        let want = FRAC_2_SQRT_PI * (-x * x).exp() * v;
        assert!((t_erf.data()[i] - want).abs() < 1e-15, "at {x}");
    }
}

/// The tape's `erf` at one point (its values are checked above and in `float.rs`).
fn erf(x: f64) -> f64 {
    let tape = Tape::<f64>::new();
    tape.constant(Tensor::scalar(x)).erf().value().item()
}

#[test]
fn gelu_per_sample_gradients_take_the_batched_path() {
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        let h = b[0].linear(p[0], p[1]);
        (h.gelu() + h.gelu_tanh()).sum_axes(&[1], false)
    }
    let params = [values(&[4, 3], 0.5), values(&[3], 2.5)];
    check_per_sample(losses, &params, &[values(&[5, 4], 1.0)]);
}

/// On the scalar tape: the value is the tensor op's, the first derivative recorded by
/// `grad` equals `backward`'s, and the second is `φ(x) (2 - x²)` for the exact GELU,
/// central differences of the first for the tanh form.
#[test]
fn scalar_gelu_first_and_second_derivatives_are_the_closed_forms() {
    let pdf = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let d1_tanh = |x0: f64| {
        let tape = scalar::Tape::new();
        let x = tape.var(x0);
        x.gelu_tanh().backward()[x]
    };
    for x0 in [-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0] {
        let tensor = Tape::<f64>::new();
        let t = tensor.constant(Tensor::scalar(x0));
        let tape = scalar::Tape::new();
        let x = tape.var(x0);
        for (y, want) in [(x.gelu(), t.gelu()), (x.gelu_tanh(), t.gelu_tanh())] {
            assert_eq!(y.value(), want.value().item());
            let d1 = y.grad(&[x])[0];
            assert_eq!(d1.value(), y.backward()[x]);
        }
        let d2 = x.gelu().grad(&[x])[0].grad(&[x])[0].value();
        let want = pdf(x0) * (2.0 - x0 * x0);
        assert!((d2 - want).abs() <= 1e-15, "{x0}: {d2} vs {want}");
        let d2 = x.gelu_tanh().grad(&[x])[0].grad(&[x])[0].value();
        let h = 1e-5;
        let numeric = (d1_tanh(x0 + h) - d1_tanh(x0 - h)) / (2.0 * h);
        assert!((d2 - numeric).abs() <= 1e-8, "{x0}: {d2} vs {numeric}");
    }
}

/// Ids with repeats (row 3 three times) and rows never used (2 and 4).
const IDS: [usize; 5] = [3, 1, 3, 0, 3];

/// The ids as values, for `embedding_of`.
fn ids_tensor(ids: &[usize], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(ids.iter().map(|&i| i as f64).collect(), shape)
}

/// Each output row is the table's row its id names; the table's gradient row is the
/// sum of the adjoints of the output rows that read it (zero for rows never read), by
/// the fast vjp and by the recorded one.
#[test]
fn embedding_picks_rows_and_sums_the_gradients_of_repeated_ids() {
    let tape = Tape::<f64>::new();
    let (table, weights) = (values(&[5, 3], 0.3), values(&[5, 3], 1.7));
    let t = tape.param(&table);
    let y = t.embedding(&IDS);
    assert_eq!(y.shape().as_slice(), &[5, 3]);
    for (j, &i) in IDS.iter().enumerate() {
        assert_eq!(y.value().data()[j * 3..][..3], table.data()[i * 3..][..3]);
    }
    let loss = (y * tape.constant(&weights)).sum();
    let (fast, recorded) = (loss.backward()[t].clone(), loss.grad(&[t])[0].value());
    for row in 0..5 {
        for k in 0..3 {
            let want: f64 = (0..5)
                .filter(|&j| IDS[j] == row)
                .map(|j| weights.data()[j * 3 + k])
                .sum();
            assert_eq!(fast.data()[row * 3 + k], want, "row {row}");
            assert_eq!(recorded.data()[row * 3 + k], want, "row {row}, recorded");
        }
    }
    // Ids as values of shape [batch, time] give [batch, time, dim], the same rows.
    let ids = tape.constant(ids_tensor(&[3, 1, 3, 0, 3, 4], &[2, 3]));
    let by_value = t.embedding_of(ids);
    assert_eq!(by_value.shape().as_slice(), &[2, 3, 3]);
    let flat = t.embedding(&[3, 1, 3, 0, 3, 4]).value();
    assert_eq!(by_value.value().data(), flat.data());
}

#[test]
fn embedding_passes_gradcheck_and_gradgradcheck() {
    let x = values(&[5, 3], 0.4);
    check_first_and_second_order(|_, p| p[0].embedding(&IDS).sin(), from_ref(&x));
    let ids = ids_tensor(&[4, 4, 0, 2], &[2, 2]);
    let f = autodiff::func::function(|tape, p| {
        let e = p[0].embedding_of(tape.constant(&ids));
        (e.square() * e.sin()).sum()
    });
    check_first_and_second_order(f, from_ref(&x));
    // A table of rank 3: each id names a [2, 2] block.
    let x3 = values(&[3, 2, 2], 0.8);
    check_first_and_second_order(|_, p| p[0].embedding(&[2, 2, 1]).exp(), &[x3]);
}

/// The op is linear in the table: its tangent is the tangent's rows, the same ids.
#[test]
fn embedding_jvp_is_the_tangents_rows() {
    let (x, v) = (values(&[5, 3], 0.4), values(&[5, 3], 2.2));
    let t = check_jvp(|_, p| p[0].embedding(&IDS), &x, &v);
    for (j, &i) in IDS.iter().enumerate() {
        assert_eq!(t.data()[j * 3..][..3], v.data()[i * 3..][..3]);
    }
    check_jvp(|_, p| p[0].embedding(&IDS).sin(), &x, &v);
}

/// A makemore-shaped model: each example is a context of ids, embedded, mixed by a
/// shared matrix, a loss per example; the ids are a batch input, so each example's
/// table gradient (its own ids' rows only) is taken on the batched path.
#[test]
fn embedding_per_sample_gradients_take_the_batched_path() {
    let params = [values(&[6, 2], 0.5), values(&[2, 4], 1.5)];
    let ids = ids_tensor(&[0, 5, 5, 2, 2, 2, 1, 0, 3, 4, 4, 0], &[4, 3]);
    check_per_sample(embedding_of_losses, &params, &[ids]);
}

/// With the ids read from the batch into a slice, the tape cannot tell which example a
/// row belongs to: `Auto` takes the loop and says why; its numbers are the loop's.
#[test]
fn embedding_of_a_slice_of_ids_takes_the_loop_and_says_why() {
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        let ids: Vec<usize> = b[0].value().data().iter().map(|&v| v as usize).collect();
        let n = b[0].shape()[0];
        let e = p[0].embedding(&ids).reshape([n, ids.len() / n, 2]);
        e.matmul(p[1]).tanh().square().sum_axes(&[1, 2], false)
    }
    let params = [values(&[6, 2], 0.5), values(&[2, 4], 1.5)];
    let ids = ids_tensor(&[0, 5, 5, 2, 2, 2, 1, 0, 3, 4, 4, 0], &[4, 3]);
    let auto = per_sample(losses, &params, from_ref(&ids), PerSamplePath::Auto);
    assert!(!auto.batched);
    let why = auto.why_loop.expect("a reason");
    assert!(!why.is_empty());
    let batched = per_sample(embedding_of_losses, &params, &[ids], PerSamplePath::Auto);
    assert!(batched.batched);
    for (a, b) in auto.grads.iter().zip(&batched.grads) {
        assert!(max_diff(a.data(), b.data()) < 1e-12, "{why}");
    }
}

fn embedding_of_losses<'t>(
    _: &'t Tape<f64>,
    p: &[Var<'t, f64>],
    b: &[Var<'t, f64>],
) -> Var<'t, f64> {
    let e = p[0].embedding_of(b[0]); // [n, 3, 2]
    e.matmul(p[1]).tanh().square().sum_axes(&[1, 2], false)
}

#[test]
#[should_panic(expected = "embedding: index 5 is out of range for a table of 5 rows")]
fn embedding_refuses_an_id_past_the_table() {
    let tape = Tape::<f64>::new();
    tape.param(values(&[5, 3], 0.1)).embedding(&[0, 5]);
}

/// Each row over the last axis (and each [3, 4] block over the last two) against its
/// mean and biased variance computed here.
#[test]
fn layer_norm_matches_its_definition() {
    let tape = Tape::<f64>::new();
    let x = values(&[2, 3, 4], 0.6);
    let p = tape.param(&x);
    for (axes, group) in [(1, 4), (2, 12), (3, 24)] {
        let y = p.layer_norm(axes, 1e-5).value();
        assert_eq!(y.shape(), &[2, 3, 4]);
        for (r, (row, got)) in x
            .data()
            .chunks(group)
            .zip(y.data().chunks(group))
            .enumerate()
        {
            let mean = row.iter().sum::<f64>() / group as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / group as f64;
            for (v, g) in row.iter().zip(got) {
                let want = (v - mean) / (var + 1e-5).sqrt();
                assert!((g - want).abs() < 1e-14, "axes {axes}, group {r}");
            }
        }
    }
}

#[test]
fn layer_norm_passes_gradcheck_gradgradcheck_and_jvp() {
    let (x, v) = (values(&[3, 4], 0.2), values(&[3, 4], 1.1));
    check_first_and_second_order(|_, p| p[0].layer_norm(1, 1e-5).sin(), from_ref(&x));
    let x3 = values(&[2, 2, 3], 0.7);
    check_first_and_second_order(|_, p| p[0].layer_norm(2, 1e-3).square(), from_ref(&x3));
    check_jvp(|_, p| p[0].layer_norm(1, 1e-5), &x, &v);
}

/// A batch large enough to be split by rows across threads gives the same bits, output
/// and gradient, on one thread and on two; and the fast gradient equals the recorded.
#[test]
fn layer_norm_is_the_same_on_one_thread_and_two() {
    let f32s =
        |t: Tensor<f64>| Tensor::from_vec(t.data().iter().map(|&v| v as f32).collect(), t.shape());
    let (x, g) = (f32s(values(&[96, 512], 0.3)), f32s(values(&[96, 512], 1.7)));
    let run = |threads: usize| {
        autodiff::with_threads(threads, || {
            let tape = Tape::<f32>::new();
            let p = tape.param(&x);
            let y = p.layer_norm(1, 1e-5);
            let loss = (y * tape.constant(&g)).sum();
            let recorded = loss.grad(&[p])[0].value();
            (y.value(), loss.backward()[p].clone(), recorded)
        })
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one.0.data(), two.0.data());
    assert_eq!(one.1.data(), two.1.data());
    for (fast, recorded) in one.1.data().iter().zip(one.2.data()) {
        assert!((fast - recorded).abs() < 1e-5, "{fast} vs {recorded}");
    }
}

/// Rows normalised on their own, an affine weight and bias shared by the examples: the
/// batched path applies.
#[test]
fn layer_norm_per_sample_gradients_take_the_batched_path() {
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        let h = b[0].linear(p[0], p[1]).layer_norm(1, 1e-5) * p[2] + p[3];
        h.tanh().square().sum_axes(&[1], false)
    }
    let params = [
        values(&[4, 3], 0.5),
        values(&[3], 2.5),
        values(&[3], 1.2),
        values(&[3], 0.1),
    ];
    check_per_sample(losses, &params, &[values(&[5, 4], 1.0)]);
}

/// Each channel of a `[n, c]` and a `[n, c, h, w]` batch against its mean and biased
/// variance over the batch (and the positions) computed here.
#[test]
fn batch_norm_matches_its_definition_and_returns_the_batch_statistics() {
    let tape = Tape::<f64>::new();
    for shape in [vec![5, 3], vec![2, 3, 2, 4]] {
        let x = values(&shape, 0.4);
        let (n, c, rest) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        let (y, mean, var) = tape.param(&x).batch_norm(1e-5);
        let y = y.value();
        for ch in 0..c {
            let at = |i: usize, r: usize| (i * c + ch) * rest + r;
            let members: Vec<f64> = (0..n)
                .flat_map(|i| (0..rest).map(move |r| (i, r)))
                .map(|(i, r)| x.data()[at(i, r)])
                .collect();
            let m = members.len() as f64;
            let mu = members.iter().sum::<f64>() / m;
            let v = members.iter().map(|a| (a - mu).powi(2)).sum::<f64>() / m;
            assert!((mean.data()[ch] - mu).abs() < 1e-14);
            assert!((var.data()[ch] - v).abs() < 1e-14);
            for i in 0..n {
                for r in 0..rest {
                    let want = (x.data()[at(i, r)] - mu) / (v + 1e-5).sqrt();
                    assert!((y.data()[at(i, r)] - want).abs() < 1e-13, "{shape:?} {ch}");
                }
            }
        }
    }
}

#[test]
fn batch_norm_passes_gradcheck_gradgradcheck_and_jvp() {
    // A non-linear function of the output, so that the second derivative is not zero.
    let (x, v) = (values(&[4, 3], 0.3), values(&[4, 3], 1.7));
    check_first_and_second_order(|_, p| p[0].batch_norm(1e-5).0.sin(), from_ref(&x));
    let x4 = values(&[2, 2, 2, 3], 0.9);
    check_first_and_second_order(
        |_, p| (p[0].batch_norm(1e-3).0 * p[0]).tanh(),
        from_ref(&x4),
    );
    check_jvp(|_, p| p[0].batch_norm(1e-5).0, &x, &v);
    check_jvp(
        |_, p| p[0].batch_norm(1e-5).0.square(),
        &x4,
        &values(&[2, 2, 2, 3], 2.2),
    );
}

/// The fused vjp against the same normalisation composed of reductions, whose rules
/// are tested on their own.
#[test]
fn batch_norm_fused_vjp_equals_the_composed_normalisation() {
    let x = values(&[3, 2, 5], 0.8);
    let g = values(&[3, 2, 5], 1.3);
    let grad_of = |fused: bool| {
        let tape = Tape::<f64>::new();
        let p = tape.param(&x);
        let y = if fused {
            p.batch_norm(1e-5).0
        } else {
            let centred = p - p.mean_axes(&[0, 2], true);
            centred / (centred.square().mean_axes(&[0, 2], true) + 1e-5).sqrt()
        };
        (y * tape.constant(&g)).sum().backward()[p].clone()
    };
    assert!(max_diff(grad_of(true).data(), grad_of(false).data()) < 1e-13);
}

/// Statistics over the batch mix the examples: the batched path refuses and says why,
/// and the loop normalises each example (here `[1, 2, 3]`: three positions per
/// channel) alone, which is each example's gradient by itself.
#[test]
fn batch_norm_per_sample_gradients_take_the_loop_and_say_why() {
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        let h = (b[0] * p[0]).batch_norm(1e-5).0;
        h.tanh().square().sum_axes(&[1, 2], false)
    }
    let (params, x) = ([values(&[2, 3], 0.5)], values(&[4, 2, 3], 1.0));
    let each = per_sample(losses, &params, from_ref(&x), PerSamplePath::Auto);
    assert!(!each.batched);
    let why = each.why_loop.expect("a reason");
    assert!(why.contains("batch_norm"), "{why}");
    for i in 0..4 {
        let tape = Tape::<f64>::new();
        let p = tape.param(&params[0]);
        let row = Tensor::from_vec(x.data()[i * 6..][..6].to_vec(), [1, 2, 3]);
        let g = losses(&tape, &[p], &[tape.constant(row)]).sum().backward();
        assert!(max_diff(g[p].data(), &each.grads[0].data()[i * 6..][..6]) < 1e-14);
    }
}

#[test]
#[should_panic(expected = "batch_norm: input [1, 3] has one value per channel")]
fn batch_norm_refuses_one_value_per_channel() {
    let tape = Tape::<f64>::new();
    tape.param(Tensor::zeros([1, 3])).batch_norm(1e-5);
}

/// The masked softmax is the filled copy's softmax to the bit, value and gradients, in
/// f32 and f64; a masked position gets probability 0 and no gradient.
#[test]
fn masked_softmax_is_the_softmax_of_the_filled_scores() {
    fn both<T: autodiff::Float>(x: &Tensor<T>, g: &Tensor<T>) {
        let tape = Tape::<T>::new();
        let p = tape.param(x);
        let mask = causal(4);
        let fused = p.masked_softmax(&mask);
        let filled = p.masked_fill(&mask, T::neg_infinity()).softmax(2);
        assert_eq!(fused.value().data(), filled.value().data());
        let gf = (fused * tape.constant(g)).sum().backward()[p].clone();
        let gm = (filled * tape.constant(g)).sum().backward()[p].clone();
        assert_eq!(gf.data(), gm.data());
        for (k, (&y, &d)) in fused.value().data().iter().zip(gf.data()).enumerate() {
            if mask[k % 16] {
                assert!(y == T::zero() && d == T::zero());
            }
        }
    }
    let (x, g) = (values(&[3, 4, 4], 0.4), values(&[3, 4, 4], 2.2));
    both(&x, &g);
    let f32s =
        |t: &Tensor<f64>| Tensor::from_vec(t.data().iter().map(|&v| v as f32).collect(), t.shape());
    both(&f32s(&x), &f32s(&g));
}

#[test]
fn masked_softmax_passes_gradcheck_gradgradcheck_jvp_and_per_sample() {
    let (x, v) = (values(&[2, 3, 3], 0.9), values(&[2, 3, 3], 1.3));
    check_first_and_second_order(
        |_, p| p[0].masked_softmax(&causal(3)).square(),
        from_ref(&x),
    );
    check_jvp(|_, p| p[0].masked_softmax(&causal(3)), &x, &v);
    fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
        let n = b[0].shape()[0];
        let scores = b[0].matmul(p[0]).reshape([n, 3, 3]);
        scores
            .masked_softmax(&causal(3))
            .square()
            .sum_axes(&[1, 2], false)
    }
    check_per_sample(losses, &[values(&[4, 9], 0.5)], &[values(&[5, 4], 1.0)]);
}

#[test]
#[should_panic(expected = "masked_softmax: a mask of 5 elements does not cover whole lanes")]
fn masked_softmax_refuses_a_mask_of_partial_lanes() {
    let tape = Tape::<f64>::new();
    tape.param(values(&[2, 4], 0.1)).masked_softmax(&[false; 5]);
}
