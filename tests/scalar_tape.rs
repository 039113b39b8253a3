//! The scalar tape through its public API: values, gradients, repeatability,
//! accumulation, tape mixing, and a chain far deeper than any recursion could handle.

use autodiff::scalar::Tape;
use autodiff::{gradcheck_scalar, GradcheckOptions};

#[test]
fn micrograd_example_matches_its_known_values() {
    // The expression from micrograd's README; PyTorch gives these numbers.
    let tape = Tape::new();
    let a = tape.var(-4.0);
    let b = tape.var(2.0);
    let mut c = a + b;
    let mut d = a * b + b.powi(3);
    c = c + c + 1.0;
    c = c + 1.0 + c + (-a);
    d = d + d * 2.0 + (b + a).relu();
    d = d + 3.0 * d + (b - a).relu();
    let e = c - d;
    let f = e.powi(2);
    let mut g = f / 2.0;
    g = g + 10.0 / f;
    let grads = g.backward();
    assert!((g.value() - 24.70408163265306).abs() < 1e-12);
    assert!((grads[a] - 138.83381924198252).abs() < 1e-10);
    assert!((grads[b] - 645.5772594752186).abs() < 1e-10);
}

#[test]
fn backward_is_repeatable_and_reuse_accumulates() {
    let tape = Tape::new();
    let x = tape.var(3.0);
    let y = x * x * x; // x used three times
    let first = y.backward()[x];
    let second = y.backward()[x];
    assert_eq!(first, 27.0);
    assert_eq!(
        first, second,
        "a second backward must not accumulate into the first"
    );
}

#[test]
fn every_scalar_op_passes_gradcheck() {
    type Expr = for<'t> fn(&'t Tape, &[autodiff::scalar::Var<'t>]) -> autodiff::scalar::Var<'t>;
    let cases: Vec<(&str, Expr, Vec<f64>)> = vec![
        ("add", |_, v| v[0] + v[1], vec![0.3, -1.2]),
        ("sub", |_, v| v[0] - v[1] - 2.0, vec![0.3, -1.2]),
        ("mul", |_, v| v[0] * v[1] * 3.0, vec![0.3, -1.2]),
        (
            "div",
            |_, v| v[0] / v[1] + 1.0 / v[0] + v[1] / 4.0,
            vec![0.7, -1.2],
        ),
        ("rsub", |_, v| 2.0 - v[0], vec![0.7]),
        ("neg", |_, v| -v[0] * v[0], vec![0.7]),
        ("powi", |_, v| v[0].powi(3) + v[0].powi(-2), vec![1.3]),
        ("powf", |_, v| v[0].powf(2.5), vec![1.3]),
        ("pow", |_, v| v[0].pow(v[1]), vec![1.3, 0.7]),
        ("exp", |_, v| v[0].exp(), vec![0.4]),
        ("ln", |_, v| v[0].ln(), vec![0.4]),
        ("sqrt", |_, v| v[0].sqrt(), vec![0.4]),
        ("sin", |_, v| v[0].sin(), vec![0.4]),
        ("cos", |_, v| v[0].cos(), vec![0.4]),
        ("tanh", |_, v| v[0].tanh(), vec![0.4]),
        ("sigmoid", |_, v| v[0].sigmoid(), vec![0.4]),
        ("relu", |_, v| v[0].relu() + v[1].relu(), vec![0.4, -0.3]),
        ("abs", |_, v| v[0].abs() + v[1].abs(), vec![0.4, -0.3]),
        (
            "max",
            |_, v| v[0].maximum(v[1]) * 2.0 + v[1].maximum(v[0]),
            vec![0.4, -0.3],
        ),
        (
            "min",
            |_, v| v[0].minimum(v[1]) * 2.0 + v[1].minimum(v[0]),
            vec![0.4, -0.3],
        ),
        (
            "shared",
            |_, v| {
                let s = v[0] * v[1];
                (s + s.sin()) * s.exp()
            },
            vec![0.4, -0.3],
        ),
    ];
    for (name, f, x) in cases {
        match gradcheck_scalar(f, &x, GradcheckOptions::default()) {
            Ok(r) => assert_eq!(r.checks, x.len(), "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

#[test]
fn sigmoid_is_stable_for_large_inputs() {
    let tape = Tape::new();
    for x in [-1e4, -800.0, 800.0, 1e4] {
        let v = tape.var(x);
        let s = v.sigmoid();
        let g = s.backward()[v];
        assert!(
            s.value().is_finite() && g.is_finite(),
            "sigmoid({x}) = {}, grad {g}",
            s.value()
        );
    }
}

#[test]
#[should_panic(expected = "values of two tapes cannot be mixed")]
fn vars_of_two_tapes_cannot_be_mixed() {
    let t1 = Tape::new();
    let t2 = Tape::new();
    let _ = t1.var(1.0) + t2.var(2.0);
}

#[test]
fn ten_million_node_chain_backpropagates_without_recursion() {
    let n = 10_000_000;
    let tape = Tape::with_capacity(n + 1);
    let x = tape.var(1.0);
    let mut y = x;
    for _ in 0..n {
        // y = y * (1 + 1e-7): dy/dx = (1 + 1e-7)^n
        y = y * (1.0 + 1e-7);
    }
    assert_eq!(tape.len(), n + 1);
    let g = y.backward();
    let expected = (1.0f64 + 1e-7).powi(n as i32);
    assert!(
        (g[x] - expected).abs() < 1e-9 * expected,
        "{} vs {expected}",
        g[x]
    );
}

#[test]
fn scalar_vars_read_like_tensor_vars() {
    let tape = Tape::new();
    let x = tape.var(3.0);
    let y = x.square() + x.powi(2);
    assert_eq!(x.id(), 0);
    assert_eq!(y.value(), 18.0);
    let g = y.backward();
    assert_eq!(g.get(x), Some(12.0));
    assert_eq!(g[x], 12.0);
    // A variable the output does not depend on reads 0; another tape's reads None.
    let later = tape.var(1.0);
    assert_eq!(g.get(later), Some(0.0));
    let other = Tape::new();
    assert_eq!(g.get(other.var(3.0)), None);
    match gradcheck_scalar(
        |_, v| v[0].square() * v[1],
        &[0.7, -1.3],
        GradcheckOptions::default(),
    ) {
        Ok(r) => assert_eq!(r.checks, 2),
        Err(e) => panic!("square: {e}"),
    }
}

#[test]
fn maximum_and_minimum_are_pairwise_with_ties_to_self() {
    let tape = Tape::new();
    let (a, b) = (tape.var(2.0), tape.var(2.0));
    let m = a.maximum(b);
    let g = m.backward();
    assert_eq!((m.value(), g[a], g[b]), (2.0, 1.0, 0.0));
    let n = tape.var(-1.0).minimum(a);
    assert_eq!(n.value(), -1.0);
}

#[test]
#[should_panic(
    expected = "gradients: node #0 belongs to another tape than the one backward ran on"
)]
fn indexing_gradients_with_another_tapes_var_panics() {
    let (t1, t2) = (Tape::new(), Tape::new());
    let x = t1.var(1.0);
    let g = (x * x).backward();
    let _ = g[t2.var(1.0)];
}
