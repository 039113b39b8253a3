//! The outside oracles: values and gradients computed in float64 by JAX (see
//! `tests/reference/oracle.py`, which wrote `tests/reference/oracle.txt`) and, for
//! convolutions and pooling, by PyTorch (`tests/reference/conv_torch.py` ->
//! `conv_torch.txt`), reproduced by our tapes to 1e-10 relative.

use autodiff::{scalar, Tape, Tensor, Var};
use std::collections::HashMap;

#[derive(Default)]
struct Case {
    constants: Vec<(String, Tensor<f64>)>,
    params: Vec<(String, Tensor<f64>)>,
    value: f64,
    grads: HashMap<String, Vec<f64>>,
}

fn numbers(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .map(|t| {
            t.parse()
                .unwrap_or_else(|e| panic!("bad number {t:?}: {e}"))
        })
        .collect()
}

const JAX: &str = include_str!("reference/oracle.txt");
const TORCH: &str = include_str!("reference/conv_torch.txt");

fn load() -> HashMap<String, Case> {
    let mut cases = parse(JAX);
    cases.extend(parse(TORCH));
    cases
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
        match words[0] {
            "case" => {
                if let Some((name, case)) = current.take() {
                    cases.insert(name, case);
                }
                current = Some((words[1].to_string(), Case::default()));
            }
            kind @ ("constant" | "param") => {
                let shape: Vec<usize> = words[2..]
                    .iter()
                    .map(|w| w.parse().expect("dimension"))
                    .collect();
                let t = Tensor::from_vec(numbers(data), shape);
                let case = &mut current.as_mut().expect("case first").1;
                let list = if kind == "constant" {
                    &mut case.constants
                } else {
                    &mut case.params
                };
                list.push((words[1].to_string(), t));
            }
            "value" => current.as_mut().expect("case first").1.value = numbers(data)[0],
            "grad" => {
                current
                    .as_mut()
                    .expect("case first")
                    .1
                    .grads
                    .insert(words[1].to_string(), numbers(data));
            }
            other => panic!("unknown line kind {other}"),
        }
    }
    if let Some((name, case)) = current {
        cases.insert(name, case);
    }
    cases
}

fn close(what: &str, ours: f64, theirs: f64) {
    let tol = 1e-10 * theirs.abs() + 1e-15;
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours:e}, oracle {theirs:e}, diff {:e}",
        (ours - theirs).abs()
    );
}

/// Runs a tensor case: `f` gets the constants and params by name.
fn run_tensor(name: &str, f: impl for<'t> Fn(&HashMap<&str, Var<'t, f64>>) -> Var<'t, f64>) {
    let cases = load();
    let case = cases
        .get(name)
        .unwrap_or_else(|| panic!("no case {name} in tests/reference/*.txt"));
    let tape = Tape::<f64>::new();
    let mut vars = HashMap::new();
    for (k, t) in &case.constants {
        vars.insert(k.as_str(), tape.constant(t));
    }
    for (k, t) in &case.params {
        vars.insert(k.as_str(), tape.param(t));
    }
    let out = f(&vars);
    close(&format!("{name} value"), out.item(), case.value);
    let grads = out.backward();
    for (k, _) in &case.params {
        let ours = grads[vars[k.as_str()]].data();
        let theirs = &case.grads[k];
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{name}: gradient of {k} has the wrong size"
        );
        for (i, (&o, &t)) in ours.iter().zip(theirs).enumerate() {
            close(&format!("{name} d/d{k}[{i}]"), o, t);
        }
    }
}

#[test]
fn scalar_tape_matches_jax() {
    let cases = load();
    let get = |c: &Case, k: &str| {
        c.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, t)| t.item())
            .expect("param")
    };
    let c = &cases["micrograd"];
    let tape = scalar::Tape::new();
    let (a, b) = (tape.var(get(c, "a")), tape.var(get(c, "b")));
    let mut cc = a + b;
    let mut d = a * b + b.powi(3);
    cc = cc + cc + 1.0;
    cc = cc + 1.0 + cc + (-a);
    d = d + d * 2.0 + (b + a).relu();
    d = d + 3.0 * d + (b - a).relu();
    let e = cc - d;
    let f = e.powi(2);
    let g = f / 2.0 + 10.0 / f;
    let grads = g.backward();
    close("micrograd value", g.value(), c.value);
    close("micrograd d/da", grads[a], c.grads["a"][0]);
    close("micrograd d/db", grads[b], c.grads["b"][0]);

    let c = &cases["scalar_mix"];
    let tape = scalar::Tape::new();
    let (x, y) = (tape.var(get(c, "x")), tape.var(get(c, "y")));
    let out = (x * y).sin() * (-x).exp() + y.tanh() / x.sqrt() + x.pow(y) + x.ln() * y.sigmoid();
    let grads = out.backward();
    close("scalar_mix value", out.value(), c.value);
    close("scalar_mix d/dx", grads[x], c.grads["x"][0]);
    close("scalar_mix d/dy", grads[y], c.grads["y"][0]);
}

#[test]
fn two_layer_sigmoid_network_with_quadratic_cost_matches_jax() {
    run_tensor("quadratic_net", |v| {
        let a1 = (v["x"].matmul(v["w1"]) + v["b1"]).sigmoid();
        let a2 = (a1.matmul(v["w2"]) + v["b2"]).sigmoid();
        let n = v["x"].shape()[0] as f64;
        (a2 - v["y"]).square().sum() / (2.0 * n)
    });
}

#[test]
fn relu_layer_with_cross_entropy_matches_jax() {
    run_tensor("cross_entropy_net", |v| {
        let h = (v["x"].matmul(v["w1"]) + v["b1"]).relu();
        h.matmul(v["w2"]).cross_entropy(&[2, 0, 1])
    });
}

#[test]
fn broadcasting_softmax_and_division_match_jax() {
    run_tensor("broadcast_mix", |v| {
        let (a, b, c) = (v["a"], v["b"], v["c"]);
        let s = a.tanh() * b.softmax(0) / (c.square() + 1.0);
        s.mean_axes(&[1], false).square().sum() + (-(a - c).abs()).exp().sum()
    });
}

#[test]
fn batched_matmul_max_gather_and_concat_match_jax() {
    run_tensor("batched", |v| {
        let (a, b) = (v["a"], v["b"]);
        let m = a.matmul(b).max_axes(&[2], false);
        let rows = a.permute(&[0, 2, 1]).index_select(1, &[1, 1, 0]);
        (m * rows.sum_axes(&[2], false)).sum() + Var::concat(&[m, m.square()], 1).sum()
    });
}

#[test]
fn convolution_and_pooling_match_jax() {
    use autodiff::Conv2dOptions;
    run_tensor("conv_net", |v| {
        let y = v["x"].conv2d(v["w1"], Conv2dOptions::new(2, 1));
        let y = (y + v["b1"].reshape([1, 4, 1, 1])).tanh();
        let opts = Conv2dOptions {
            dilation: [2, 1],
            groups: 2,
            ..Conv2dOptions::new(1, 1)
        };
        let z = y.conv2d(v["w2"], opts);
        let m = z.max_pool2d(2, 2, 0);
        let a = y.avg_pool2d(3, 1, 0);
        m.square().sum() + a.tanh().sum()
    });
}

#[test]
fn lenet_block_matches_pytorch() {
    use autodiff::Conv2dOptions;
    run_tensor("torch_lenet_block", |v| {
        let y = v["x"]
            .conv2d_bias(v["w1"], v["b1"], Conv2dOptions::new(1, 2))
            .relu()
            .max_pool2d(2, 2, 0);
        let z = y
            .conv2d_bias(v["w2"], v["b2"], Conv2dOptions::new(1, 0))
            .relu();
        (z * v["r"]).sum()
    });
}

#[test]
fn strided_grouped_convolution_and_average_pooling_match_pytorch() {
    use autodiff::Conv2dOptions;
    run_tensor("torch_strided_grouped", |v| {
        let opts = Conv2dOptions {
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 2],
            groups: 2,
        };
        let y = v["x"].conv2d(v["w1"], opts);
        let a = y.tanh().avg_pool2d(3, 1, 1);
        a.square().sum() + y.sum()
    });
}
