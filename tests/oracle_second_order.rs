//! The outside oracle for derivatives beyond the gradient: Hessian-vector products,
//! forward-mode tangents, full Hessians and third derivatives computed in float64 by
//! JAX (`tests/reference/oracle2.py`, which wrote `tests/reference/oracle2.txt`; its
//! docstring describes the cases and the line format), reproduced by `autodiff::func`
//! and by `Var::grad` on both tapes (a gradient recorded on the tape, differentiable
//! again) to 1e-10 relative.
//!
//! The networks are built from the engine's own ops (matmul, sigmoid, conv2d_bias,
//! max_pool2d, cross_entropy, ...), not through `nn`, so these tests pin the engine.
//! Large inputs are not in the file: they come from the generator below, the same
//! integer arithmetic as the script's, checked against the checksums it printed.

use autodiff::{func, scalar, Conv2dOptions, Tape, Tensor, Var};
use std::collections::HashMap;

const ORACLE: &str = include_str!("reference/oracle2.txt");

#[derive(Default)]
struct Case {
    inputs: HashMap<String, Tensor<f64>>,
    labels: HashMap<String, Vec<usize>>,
    outs: HashMap<String, Tensor<f64>>,
}

impl Case {
    fn input(&self, name: &str) -> &Tensor<f64> {
        self.inputs
            .get(name)
            .unwrap_or_else(|| panic!("oracle2.txt: no input {name}"))
    }

    fn out(&self, name: &str) -> &Tensor<f64> {
        self.outs
            .get(name)
            .unwrap_or_else(|| panic!("oracle2.txt: no output {name}"))
    }

    fn labels(&self, name: &str) -> &[usize] {
        self.labels
            .get(name)
            .unwrap_or_else(|| panic!("oracle2.txt: no labels {name}"))
    }
}

fn numbers(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .map(|t| {
            t.parse()
                .unwrap_or_else(|e| panic!("oracle2.txt: bad number {t:?}: {e}"))
        })
        .collect()
}

/// The script's `gen_values`: with `m = (7 i² + 5003 i + 104729 k + 1) mod 8191`,
/// `signed` is `(m - 4095) / 2730 / sqrt(fan)` and `unit` is `m / 8190`. Integer
/// arithmetic and correctly rounded division and square root, so the values are the
/// script's to the last bit.
fn generated(shape: &[usize], recipe: &str, k: u64, fan: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let data = (0..n as u64)
        .map(|i| {
            let m = (7 * i * i + 5003 * i + 104_729 * k + 1) % 8191;
            match recipe {
                "signed" => (m as f64 - 4095.0) / 2730.0 / (fan as f64).sqrt(),
                "unit" => {
                    assert_eq!(fan, 1, "oracle2.txt: unit inputs are not scaled");
                    m as f64 / 8190.0
                }
                other => panic!("oracle2.txt: unknown generator {other}"),
            }
        })
        .collect();
    Tensor::from_vec(data, shape)
}

/// Compares a generated input with the sums the script printed for it (each exactly
/// rounded there; summed in order here, hence the tolerance).
fn check_sums(name: &str, t: &Tensor<f64>, sums: &[f64]) {
    assert_eq!(sums.len(), 3, "oracle2.txt: input {name} needs 3 sums");
    let d = t.data();
    let sum: f64 = d.iter().sum();
    let wsum: f64 = d
        .iter()
        .enumerate()
        .map(|(i, v)| (i % 10 + 1) as f64 * v)
        .sum();
    let asum: f64 = d.iter().map(|v| v.abs()).sum();
    for (what, ours, theirs, scale) in [
        ("sum", sum, sums[0], asum),
        ("weighted sum", wsum, sums[1], 10.0 * asum),
        ("sum of |v|", asum, sums[2], asum),
    ] {
        assert!(
            (ours - theirs).abs() <= 1e-12 * scale,
            "input {name}: the generator drifted from oracle2.py ({what} {ours:e}, oracle {theirs:e})"
        );
    }
}

fn parse(text: &str) -> HashMap<String, Case> {
    let mut cases = HashMap::new();
    let mut current: Option<(String, Case)> = None;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (head, data) = line.split_once(" : ").unwrap_or((line, ""));
        let words: Vec<&str> = head.split_whitespace().collect();
        if words[0] == "case" {
            if let Some((name, case)) = current.take() {
                cases.insert(name, case);
            }
            current = Some((words[1].to_string(), Case::default()));
            continue;
        }
        let case = &mut current.as_mut().expect("oracle2.txt: a case line first").1;
        let name = words[1].to_string();
        let shape: Vec<usize> = words[2..]
            .iter()
            .map(|w| w.parse().expect("oracle2.txt: dimension"))
            .collect();
        match words[0] {
            "input" => {
                let data: Vec<&str> = data.split_whitespace().collect();
                let t = match data[0] {
                    "values" => Tensor::from_vec(numbers(&data[1..].join(" ")), &shape),
                    "gen" => {
                        let k = data[2].parse().expect("oracle2.txt: generator key");
                        let fan = data[3].parse().expect("oracle2.txt: fan-in");
                        let t = generated(&shape, data[1], k, fan);
                        check_sums(&name, &t, &numbers(&data[4..].join(" ")));
                        t
                    }
                    other => panic!("oracle2.txt: unknown input kind {other}"),
                };
                case.inputs.insert(name, t);
            }
            "labels" => {
                let ys = data
                    .split_whitespace()
                    .map(|w| w.parse().expect("oracle2.txt: label"))
                    .collect();
                case.labels.insert(name, ys);
            }
            "out" => {
                case.outs
                    .insert(name, Tensor::from_vec(numbers(data), &shape));
            }
            other => panic!("oracle2.txt: unknown line kind {other}"),
        }
    }
    if let Some((name, case)) = current {
        cases.insert(name, case);
    }
    cases
}

fn case(name: &str) -> Case {
    parse(ORACLE)
        .remove(name)
        .unwrap_or_else(|| panic!("no case {name} in tests/reference/oracle2.txt"))
}

fn close(what: &str, ours: f64, theirs: f64, scale: f64) {
    let tol = 1e-10 * theirs.abs().max(scale) + 1e-15;
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours:e}, oracle {theirs:e}, diff {:e} (allowed {tol:e})",
        (ours - theirs).abs()
    );
}

/// Element by element to 1e-10 relative; an element much smaller than the tensor's
/// largest (where a sum cancelled) is held to 1e-13 of that largest instead.
fn close_tensor(what: &str, ours: &Tensor<f64>, theirs: &Tensor<f64>) {
    assert_eq!(
        ours.shape(),
        theirs.shape(),
        "{what}: shape {:?}, oracle {:?}",
        ours.shape(),
        theirs.shape()
    );
    let largest = theirs.data().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&o, &t)) in ours.data().iter().zip(theirs.data()).enumerate() {
        close(
            &format!("{what}[{:?}]", unravel(i, theirs.shape())),
            o,
            t,
            1e-3 * largest,
        );
    }
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        *slot = flat % d;
        flat /= d;
    }
    index
}

/// Fixes a closure's signature to the one `autodiff::func` takes.
fn as_fn<F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    f
}

/// `f` evaluated on a plain tape: the forward pass alone.
fn forward<F>(f: &F, primals: &[Tensor<f64>]) -> Tensor<f64>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = primals.iter().map(|p| tape.param(p)).collect();
    f(&tape, &vars).value()
}

#[test]
fn network_a_hessian_vector_product_matches_jax() {
    let c = case("hvp_network_a");
    let names = ["W1", "b1", "W2", "b2", "W3", "b3"];
    let primals: Vec<Tensor<f64>> = names.iter().map(|n| c.input(n).clone()).collect();
    let v: Vec<Tensor<f64>> = names
        .iter()
        .map(|n| c.input(&format!("v.{n}")).clone())
        .collect();
    let x = c.input("x");
    let labels = c.labels("y");
    let n = x.shape()[0];
    assert_eq!(labels.len(), n);
    let mut onehot = Tensor::zeros([n, 10]);
    for (row, &label) in labels.iter().enumerate() {
        onehot.data_mut()[row * 10 + label] = 1.0;
    }
    // Network A: sigmoid after every layer, quadratic cost 1/(2n) Σ ||a3 - y||².
    let cost = as_fn(|tape, p| {
        let x = tape.constant(x);
        let y = tape.constant(&onehot);
        let a1 = (x.matmul(p[0]) + p[1]).sigmoid();
        let a2 = (a1.matmul(p[2]) + p[3]).sigmoid();
        let a3 = (a2.matmul(p[4]) + p[5]).sigmoid();
        (a3 - y).square().sum() / (2.0 * n as f64)
    });

    close_tensor("network A cost", &forward(&cost, &primals), c.out("cost"));
    let grads = func::grad(cost, &primals);
    let hv = func::hvp(cost, &primals, &v);
    assert_eq!(grads.len(), names.len(), "grad: one tensor per primal");
    assert_eq!(hv.len(), names.len(), "hvp: one tensor per primal");
    for (i, name) in names.iter().enumerate() {
        close_tensor(
            &format!("network A d/d{name}"),
            &grads[i],
            c.out(&format!("grad.{name}")),
        );
        close_tensor(
            &format!("network A (H v) for {name}"),
            &hv[i],
            c.out(&format!("hvp.{name}")),
        );
    }
}

#[test]
fn lenet_forward_mode_tangent_matches_jax() {
    let c = case("jvp_lenet");
    let names = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ];
    let primals: Vec<Tensor<f64>> = names.iter().map(|n| c.input(n).clone()).collect();
    let tangents: Vec<Tensor<f64>> = names
        .iter()
        .map(|n| c.input(&format!("t.{n}")).clone())
        .collect();
    let images = c.input("x");
    assert_eq!(images.shape(), &[2, 1, 28, 28]);
    // nn::Model::lenet's layers: each ReLU after its pooling; dense layers x W + b.
    let lenet = as_fn(|tape, p| {
        let x = tape.constant(images);
        let z = x
            .conv2d_bias(p[0], p[1], Conv2dOptions::new(1, 2))
            .max_pool2d(2, 2, 0)
            .relu();
        let z = z
            .conv2d_bias(p[2], p[3], Conv2dOptions::new(1, 0))
            .max_pool2d(2, 2, 0)
            .relu();
        let z = z.reshape([2, 400]);
        let z = (z.matmul(p[4]) + p[5]).relu();
        let z = (z.matmul(p[6]) + p[7]).relu();
        z.matmul(p[8]) + p[9]
    });

    close_tensor(
        "LeNet logits (plain forward)",
        &forward(&lenet, &primals),
        c.out("logits"),
    );
    let (logits, tangent) = func::jvp(lenet, &primals, &tangents);
    close_tensor("LeNet logits (jvp)", &logits, c.out("logits"));
    close_tensor("LeNet logits' tangent", &tangent, c.out("tangent"));
}

#[test]
fn tanh_network_full_hessian_matches_jax() {
    let c = case("hessian_tanh_243");
    let x = c.input("x");
    let labels = c.labels("y");
    let theta = c.input("theta");
    assert_eq!(theta.shape(), &[27]);
    let range = |a: usize, b: usize| (a..b).collect::<Vec<usize>>();
    let (i_w1, i_b1, i_w2, i_b2) = (range(0, 8), range(8, 12), range(12, 24), range(24, 27));
    // theta = W1 [2, 4] row-major, b1 [4], W2 [4, 3] row-major, b2 [3].
    let cost = as_fn(|tape, p| {
        let t = p[0];
        let w1 = t.index_select(0, &i_w1).reshape([2, 4]);
        let b1 = t.index_select(0, &i_b1);
        let w2 = t.index_select(0, &i_w2).reshape([4, 3]);
        let b2 = t.index_select(0, &i_b2);
        let h = (tape.constant(x).matmul(w1) + b1).tanh();
        (h.matmul(w2) + b2).cross_entropy(labels)
    });

    let primals = [theta.clone()];
    close_tensor("tanh 2-4-3 cost", &forward(&cost, &primals), c.out("value"));
    let grads = func::grad(cost, &primals);
    assert_eq!(grads.len(), 1, "grad: one tensor per primal");
    close_tensor("tanh 2-4-3 gradient", &grads[0], c.out("grad"));
    let hessian = func::hessian(cost, theta);
    close_tensor("tanh 2-4-3 Hessian", &hessian, c.out("hessian"));
}

/// What both tapes compute for the `third_derivative` case, checked against it:
/// f, f', f'', f''' of f(x) = sin(x) exp(x), and g, its gradient [2], Hessian [2, 2]
/// and third derivatives [2, 2, 2] of g(a, b) = a a b + exp(a b) + sin(b) / (1 + a a).
struct ThirdDerivatives {
    f: Vec<f64>,
    g: f64,
    g_grad: Vec<f64>,
    g_hessian: Vec<f64>,
    g_third: Vec<f64>,
}

fn check_third_derivatives(tape: &str, ours: ThirdDerivatives) {
    let c = case("third_derivative");
    let t = |v: Vec<f64>, shape: &[usize]| Tensor::from_vec(v, shape);
    let what = |s: &str| format!("{tape}: {s}");
    close_tensor(
        &what("f, f', f'', f'''"),
        &t(ours.f, &[4]),
        c.out("f_derivatives"),
    );
    close_tensor(&what("g"), &Tensor::scalar(ours.g), c.out("g"));
    close_tensor(
        &what("g's gradient"),
        &t(ours.g_grad, &[2]),
        c.out("g_grad"),
    );
    close_tensor(
        &what("g's Hessian"),
        &t(ours.g_hessian, &[2, 2]),
        c.out("g_hessian"),
    );
    close_tensor(
        &what("g's third derivatives"),
        &t(ours.g_third, &[2, 2, 2]),
        c.out("g_third"),
    );
}

#[test]
fn tensor_tape_third_derivatives_match_jax() {
    let c = case("third_derivative");
    let tape = Tape::<f64>::new();

    // f(x) = sin(x) exp(x) on a rank-0 tensor: differentiate the recorded gradient again.
    let x = tape.param(c.input("x"));
    let f = x.sin() * x.exp();
    let d1 = f.grad(&[x])[0];
    let d2 = d1.grad(&[x])[0];
    let d3 = d2.grad(&[x])[0];
    let f = vec![f.item(), d1.item(), d2.item(), d3.item()];

    let ab = c.input("ab").data();
    let (a, b) = (
        tape.param(Tensor::scalar(ab[0])),
        tape.param(Tensor::scalar(ab[1])),
    );
    let vars = [a, b];
    let g = a * a * b + (a * b).exp() + b.sin() / (1.0 + a * a);
    let grad = g.grad(&vars);
    let (mut g_hessian, mut g_third) = (Vec::new(), Vec::new());
    for gi in &grad {
        for gij in gi.grad(&vars) {
            g_hessian.push(gij.item());
            g_third.extend(gij.grad(&vars).iter().map(|gijk| gijk.item()));
        }
    }
    check_third_derivatives(
        "tensor tape",
        ThirdDerivatives {
            f,
            g: g.item(),
            g_grad: grad.iter().map(|v| v.item()).collect(),
            g_hessian,
            g_third,
        },
    );
}

#[test]
fn scalar_tape_third_derivatives_match_jax() {
    let c = case("third_derivative");

    // f(x) = sin(x) exp(x): f, f', f'', f''' by differentiating the gradient again.
    let tape = scalar::Tape::new();
    let x = tape.var(c.input("x").item());
    let f = x.sin() * x.exp();
    let d1 = f.grad(&[x])[0];
    let d2 = d1.grad(&[x])[0];
    let d3 = d2.grad(&[x])[0];
    let f = vec![f.value(), d1.value(), d2.value(), d3.value()];

    let ab = c.input("ab").data();
    let (a, b) = (tape.var(ab[0]), tape.var(ab[1]));
    let vars = [a, b];
    let g = a * a * b + (a * b).exp() + b.sin() / (1.0 + a * a);
    let grad = g.grad(&vars);
    let (mut g_hessian, mut g_third) = (Vec::new(), Vec::new());
    for gi in &grad {
        for gij in gi.grad(&vars) {
            g_hessian.push(gij.value());
            g_third.extend(gij.grad(&vars).iter().map(|gijk| gijk.value()));
        }
    }
    check_third_derivatives(
        "scalar tape",
        ThirdDerivatives {
            f,
            g: g.value(),
            g_grad: grad.iter().map(|v| v.value()).collect(),
            g_hessian,
            g_third,
        },
    );
}
