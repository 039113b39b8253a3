//! Derivatives of derivatives on the scalar tape: `Var::grad` records the gradient on
//! the tape, so it can be differentiated again. Checked against closed forms (Taylor
//! coefficients, third derivatives, mixed partials), against finite differences of
//! first derivatives (`gradgradcheck_scalar` on every op), and against `backward` bit
//! for bit at first order.

use autodiff::scalar::{Tape, Var};
use autodiff::{gradgradcheck_scalar, GradcheckOptions};

type Expr = for<'t> fn(&'t Tape, &[Var<'t>]) -> Var<'t>;

/// `|got - want| <= tol · max(|want|, 1)`: relative, and absolute near zero.
#[track_caller]
fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    let err = (got - want).abs();
    assert!(
        err <= tol * want.abs().max(1.0),
        "{what}: got {got:e}, want {want:e} (error {err:e})"
    );
}

/// `f(x0)` and its derivatives up to `order`, each by `grad` of the previous one.
fn derivatives(f: impl for<'t> Fn(Var<'t>) -> Var<'t>, x0: f64, order: usize) -> Vec<f64> {
    let tape = Tape::new();
    let x = tape.var(x0);
    let mut d = f(x);
    let mut out = vec![d.value()];
    for _ in 0..order {
        d = d.grad(&[x])[0];
        out.push(d.value());
    }
    out
}

#[test]
fn taylor_coefficients_of_exp_sin_match_the_series_at_zero() {
    // e^(sin x) = 1 + x + x²/2 - x⁴/8 - x⁵/15 + O(x⁶)
    let want = [1.0, 1.0, 0.5, 0.0, -1.0 / 8.0, -1.0 / 15.0];
    let d = derivatives(|x| x.sin().exp(), 0.0, 5);
    let mut factorial = 1.0;
    for (k, (&dk, &c)) in d.iter().zip(&want).enumerate() {
        if k > 0 {
            factorial *= k as f64;
        }
        assert_close(dk / factorial, c, 1e-12, &format!("coefficient of x^{k}"));
    }
}

#[test]
fn derivatives_of_exp_sin_match_their_closed_forms_away_from_zero() {
    // With s = sin x, c = cos x, f = e^s (derived with sympy):
    //   f'  = c f
    //   f'' = (c² - s) f
    //   f''' = -(s + 3) s c f
    //   f'''' = (s⁴ + 6s³ + 5s² - 5s - 3) f
    //   f⁽⁵⁾ = (s⁴ + 10s³ + 23s² + 5s - 8) c f
    for x0 in [0.7, -1.3, 2.9] {
        let (s, c) = (f64::sin(x0), f64::cos(x0));
        let f = s.exp();
        let want = [
            f,
            c * f,
            (c * c - s) * f,
            -(s + 3.0) * s * c * f,
            (s.powi(4) + 6.0 * s.powi(3) + 5.0 * s * s - 5.0 * s - 3.0) * f,
            (s.powi(4) + 10.0 * s.powi(3) + 23.0 * s * s + 5.0 * s - 8.0) * c * f,
        ];
        let d = derivatives(|x| x.sin().exp(), x0, 5);
        for (k, (&got, &w)) in d.iter().zip(&want).enumerate() {
            assert_close(got, w, 1e-12, &format!("d^{k}/dx^{k} e^sin(x) at {x0}"));
        }
    }
}

#[test]
fn third_derivative_of_sin_times_exp_matches_its_closed_form() {
    // (sin x e^x)' = e^x (sin x + cos x), '' = 2 e^x cos x, ''' = 2 e^x (cos x - sin x)
    let x0: f64 = 0.7;
    let d = derivatives(|x| x.sin() * x.exp(), x0, 3);
    let e = x0.exp();
    let want = [
        x0.sin() * e,
        e * (x0.sin() + x0.cos()),
        2.0 * e * x0.cos(),
        2.0 * e * (x0.cos() - x0.sin()),
    ];
    for (k, (&got, &w)) in d.iter().zip(&want).enumerate() {
        assert_close(got, w, 1e-13, &format!("d^{k}/dx^{k} sin(x) e^x"));
    }
}

#[test]
fn high_order_derivatives_of_polynomials_and_exp_are_exact_where_they_should_be() {
    // x⁵: 5x⁴, 20x³, 60x², 120x, 120, 0, with small integers exact in f64.
    let d = derivatives(|x| x.powi(5), 2.0, 6);
    assert_eq!(d, [32.0, 80.0, 160.0, 240.0, 240.0, 120.0, 0.0]);
    // e^x is its own derivative: its rule `g * y` multiplies by the output.
    let d = derivatives(|x| x.exp(), 0.3, 8);
    for (k, &dk) in d.iter().enumerate() {
        assert_close(dk, 0.3f64.exp(), 1e-15, &format!("d^{k}/dx^{k} e^x"));
    }
}

#[test]
fn mixed_partials_and_the_hessian_are_symmetric_and_right() {
    // f(x, p) = x^p: f_xx = p (p-1) x^(p-2), f_xp = x^(p-1) (1 + p ln x),
    // f_pp = x^p ln² x.
    let (x0, p0): (f64, f64) = (1.7, 2.3);
    let tape = Tape::new();
    let (x, p) = (tape.var(x0), tape.var(p0));
    let f = x.pow(p);
    let g = f.grad(&[x, p]);
    let hx = g[0].grad(&[x, p]);
    let hp = g[1].grad(&[x, p]);
    let ln = x0.ln();
    assert_close(g[0].value(), p0 * x0.powf(p0 - 1.0), 1e-14, "f_x");
    assert_close(g[1].value(), x0.powf(p0) * ln, 1e-14, "f_p");
    assert_close(
        hx[0].value(),
        p0 * (p0 - 1.0) * x0.powf(p0 - 2.0),
        1e-13,
        "f_xx",
    );
    assert_close(
        hx[1].value(),
        x0.powf(p0 - 1.0) * (1.0 + p0 * ln),
        1e-13,
        "f_xp",
    );
    assert_close(hp[0].value(), hx[1].value(), 1e-14, "f_px = f_xp");
    assert_close(hp[1].value(), x0.powf(p0) * ln * ln, 1e-13, "f_pp");
}

#[test]
fn backward_of_a_recorded_gradient_is_the_second_derivative() {
    let tape = Tape::new();
    let x = tape.var(0.4);
    let y = x.tanh() * x.square();
    let dy = y.grad(&[x])[0];
    let by_grad = dy.grad(&[x])[0].value();
    let by_backward = dy.backward()[x];
    assert_eq!(by_grad.to_bits(), by_backward.to_bits());
    // (tanh x · x²)'' = 2 tanh x + 4x sech² x - 2x² tanh x sech² x
    let (t, s2) = (0.4f64.tanh(), 1.0 - 0.4f64.tanh().powi(2));
    let want = 2.0 * t + 4.0 * 0.4 * s2 - 2.0 * 0.16 * t * s2;
    assert_close(by_grad, want, 1e-14, "second derivative");
}

#[test]
fn piecewise_linear_ops_have_zero_second_derivative() {
    let cases: Vec<(&str, Expr, Vec<f64>)> = vec![
        ("relu on", |_, v| v[0].relu(), vec![0.8]),
        ("relu off", |_, v| v[0].relu(), vec![-0.8]),
        ("abs +", |_, v| v[0].abs(), vec![0.8]),
        ("abs -", |_, v| v[0].abs(), vec![-0.8]),
        ("maximum", |_, v| v[0].maximum(v[1]), vec![0.8, -0.2]),
        ("minimum", |_, v| v[0].minimum(v[1]), vec![0.8, -0.2]),
    ];
    for (name, f, x) in cases {
        let tape = Tape::new();
        let vars: Vec<Var<'_>> = x.iter().map(|&v| tape.var(v)).collect();
        let y = f(&tape, &vars);
        for g in y.grad(&vars) {
            for h in g.grad(&vars) {
                assert_eq!(h.value(), 0.0, "{name}");
            }
        }
    }
}

#[test]
fn every_scalar_op_passes_gradgradcheck() {
    let cases: Vec<(&str, Expr, Vec<f64>)> = vec![
        ("add", |_, v| v[0] + v[1], vec![0.3, -1.2]),
        ("sub", |_, v| v[0] - v[1], vec![0.3, -1.2]),
        ("mul", |_, v| v[0] * v[1], vec![0.3, -1.2]),
        ("div", |_, v| v[0] / v[1], vec![0.7, -1.2]),
        ("square of self", |_, v| v[0] * v[0], vec![0.7]),
        ("div by self", |_, v| (v[0] + 1.0) / v[0], vec![0.7]),
        ("var + c", |_, v| v[0] + 2.5, vec![0.7]),
        ("c + var", |_, v| 2.5 + v[0], vec![0.7]),
        ("var - c", |_, v| v[0] - 2.5, vec![0.7]),
        ("c - var", |_, v| 2.5 - v[0], vec![0.7]),
        ("var * c", |_, v| v[0] * 2.5, vec![0.7]),
        ("c * var", |_, v| 2.5 * v[0], vec![0.7]),
        ("var / c", |_, v| v[0] / 2.5, vec![0.7]),
        ("c / var", |_, v| 2.5 / v[0], vec![0.7]),
        ("neg", |_, v| -v[0], vec![0.7]),
        ("square", |_, v| v[0].square(), vec![0.7]),
        ("powi(3)", |_, v| v[0].powi(3), vec![1.3]),
        ("powi(-2)", |_, v| v[0].powi(-2), vec![1.3]),
        ("powi(1)", |_, v| v[0].powi(1), vec![1.3]),
        ("powi(0)", |_, v| v[0].powi(0), vec![1.3]),
        ("powf", |_, v| v[0].powf(2.5), vec![1.3]),
        ("powf negative", |_, v| v[0].powf(-0.5), vec![1.3]),
        ("pow", |_, v| v[0].pow(v[1]), vec![1.3, 0.7]),
        ("pow below 1", |_, v| v[0].pow(v[1]), vec![0.6, -1.7]),
        ("exp", |_, v| v[0].exp(), vec![0.4]),
        ("ln", |_, v| v[0].ln(), vec![0.4]),
        ("sqrt", |_, v| v[0].sqrt(), vec![0.4]),
        ("sin", |_, v| v[0].sin(), vec![0.4]),
        ("cos", |_, v| v[0].cos(), vec![0.4]),
        ("tanh", |_, v| v[0].tanh(), vec![0.4]),
        ("sigmoid", |_, v| v[0].sigmoid(), vec![0.4]),
        ("sigmoid far out", |_, v| v[0].sigmoid(), vec![-6.0]),
        ("relu", |_, v| v[0].relu() + v[1].relu(), vec![0.4, -0.3]),
        ("abs", |_, v| v[0].abs() + v[1].abs(), vec![0.4, -0.3]),
        (
            "maximum",
            |_, v| v[0].maximum(v[1]) * 2.0 + v[1].maximum(v[0]),
            vec![0.4, -0.3],
        ),
        (
            "minimum",
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
        (
            "deep",
            |_, v| {
                let mut y = v[0];
                for _ in 0..10 {
                    y = (y * v[1] + 0.3).tanh() + y.sigmoid() / (y.square() + 1.0);
                }
                y
            },
            vec![0.4, -0.8],
        ),
    ];
    for (name, f, x) in &cases {
        // gradgradcheck differentiates the recorded gradient numerically too, so a
        // recorded first derivative must first be the gradchecked one of `backward`.
        let tape = Tape::new();
        let vars: Vec<Var<'_>> = x.iter().map(|&v| tape.var(v)).collect();
        let y = f(&tape, &vars);
        let numeric = y.backward();
        for (&v, g) in vars.iter().zip(y.grad(&vars)) {
            assert_close(g.value(), numeric[v], 1e-15, name);
        }
        match gradgradcheck_scalar(f, x, GradcheckOptions::default()) {
            Ok(r) => assert_eq!(r.checks, x.len() + 1, "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
        // Composed with an outer nonlinear function, the op's recorded rule must also
        // carry a nonconstant adjoint correctly.
        let outer = gradgradcheck_scalar(
            |tape, v| {
                let y = f(tape, v);
                (y * v[0]).sin() + y.square()
            },
            x,
            GradcheckOptions::default(),
        );
        if let Err(e) = outer {
            panic!("{name}, composed: {e}");
        }
    }
}

/// micrograd's README expression (its `a` and `b`), on the given tape.
fn micrograd<'t>(_: &'t Tape, v: &[Var<'t>]) -> Var<'t> {
    let (a, b) = (v[0], v[1]);
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
    g
}

#[test]
fn micrograd_expression_passes_gradgradcheck() {
    let r = gradgradcheck_scalar(micrograd, &[-4.0, 2.0], GradcheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.checks, 3);
    // Both relus open, and a point where d is not dominated by b³.
    gradgradcheck_scalar(micrograd, &[0.5, 1.5], GradcheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn gradgradcheck_scalar_fails_where_the_first_derivative_jumps() {
    // relu(x)² at its kink: f' = 2 relu(x) jumps in slope from 0 to 2, so the central
    // difference of f' there is 1, and the recorded second derivative (the gate's
    // choice at 0, closed) is 0. The check must see the disagreement.
    let err = gradgradcheck_scalar(
        |_, v| v[0].relu() * v[0].relu(),
        &[0.0],
        GradcheckOptions::default(),
    );
    assert!(
        matches!(
            err,
            Err(autodiff::GradcheckError::Mismatch { input: 0, .. })
        ),
        "{err:?}"
    );
}

#[test]
fn grad_agrees_with_backward_bit_for_bit_at_first_order() {
    let cases: Vec<(&str, Expr, Vec<f64>)> = vec![
        ("micrograd", micrograd, vec![-4.0, 2.0]),
        ("micrograd 2", micrograd, vec![0.5, 1.5]),
        (
            "transcendental",
            |_, v| {
                let s = v[0] * v[1];
                (s + s.sin()) * s.exp() - v[1].tanh().pow(v[0]) + (v[0].square() + 1.0).ln()
            },
            vec![0.4, 0.9],
        ),
        (
            "constants on either side",
            |_, v| {
                (3.0 - v[0]) * (2.0 / v[1]) + v[0] / 7.0 - (v[1] * 0.1).sigmoid()
                    + (v[0] - 0.5).abs().sqrt()
                    + v[1].powf(1.5)
                    + v[0].cos().powi(-3)
            },
            vec![0.4, 0.9],
        ),
        (
            "choices",
            |_, v| v[0].maximum(v[1]).exp() + v[0].minimum(v[1]).relu() * v[0],
            vec![0.4, 0.9],
        ),
        (
            "deep",
            |_, v| {
                let mut y = v[0];
                for _ in 0..50 {
                    y = (y * v[1] + 0.3).tanh() + y.sigmoid() * (y.square() + 1.0);
                }
                y
            },
            vec![0.4, -0.8],
        ),
    ];
    for (name, f, x) in cases {
        let tape = Tape::new();
        let vars: Vec<Var<'_>> = x.iter().map(|&v| tape.var(v)).collect();
        let y = f(&tape, &vars);
        let numeric = y.backward();
        let recorded = y.grad(&vars);
        for (k, (&v, g)) in vars.iter().zip(&recorded).enumerate() {
            assert_eq!(
                g.value().to_bits(),
                numeric[v].to_bits(),
                "{name}, input {k}: grad {:e}, backward {:e}",
                g.value(),
                numeric[v]
            );
        }
    }
}

#[test]
fn division_of_two_vars_agrees_with_backward_to_the_last_bit() {
    // The rule gives g / b where backward multiplies by the partial 1 / b: the two may
    // round differently, by at most an ulp or two per division.
    let tape = Tape::new();
    let (a, b) = (tape.var(0.3), tape.var(-1.7));
    let y = (a / b).sin() / (b / a + 3.0);
    let numeric = y.backward();
    for (v, g) in [a, b].into_iter().zip(y.grad(&[a, b])) {
        assert_close(g.value(), numeric[v], 1e-15, "a / b");
    }
}

#[test]
fn a_variable_the_output_does_not_depend_on_gets_a_constant_zero() {
    let tape = Tape::new();
    let x = tape.var(0.5);
    let unused = tape.var(2.0);
    let y = x.sin() * 3.0;
    let later = tape.var(1.0);
    let g = y.grad(&[x, unused, later]);
    assert_eq!(g[0].value(), 3.0 * 0.5f64.cos());
    assert_eq!((g[1].value(), g[2].value()), (0.0, 0.0));
    // The zero has no parents: it depends on nothing, to any order.
    for h in g[1].grad(&[x, unused, later]) {
        assert_eq!(h.value(), 0.0);
    }
    // A gradient that is identically zero after one more step is a zero too.
    let h = g[0].grad(&[unused])[0];
    assert_eq!(h.value(), 0.0);
    // The output itself: 1; an intermediate node: the adjoint there.
    let s = x.sin();
    let z = s * s;
    let g = z.grad(&[z, s]);
    assert_eq!(g[0].value(), 1.0);
    assert_eq!(g[1].value(), 2.0 * 0.5f64.sin());
}

#[test]
#[should_panic(
    expected = "scalar grad: variable #0 in wrt belongs to another tape than the output #1"
)]
fn grad_with_respect_to_another_tapes_var_panics() {
    let (t1, t2) = (Tape::new(), Tape::new());
    let x = t1.var(1.0);
    let y = x.exp();
    let _ = y.grad(&[x, t2.var(1.0)]);
}
