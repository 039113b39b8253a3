//! The two ops added as one `Rule` each: the element-wise `log_sigmoid` and the
//! structural `masked_fill`. Values against their definitions, first and second
//! derivatives against finite differences, forward mode against central differences,
//! per-sample gradients by the batched path, and a `-inf` mask through a softmax.

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
