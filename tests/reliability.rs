//! Numerics at extreme inputs, f32 against f64, anomaly detection, and graphs far
//! longer than any recursion could walk.

use autodiff::{AnomalyPhase, Tape, Tensor};
use nn::{Activation, Cost, Init, Model, Module, Quadratic};

#[test]
fn stable_ops_give_finite_values_and_gradients_at_plus_minus_1e4() {
    let x = Tensor::from_vec(vec![1e4, -1e4, 0.5, -1e4, 1e4, 1e4], [2, 3]);
    for name in [
        "sigmoid",
        "tanh",
        "softplus",
        "log_softmax",
        "cross_entropy",
    ] {
        let tape = Tape::<f32>::new();
        let v = tape.param(x.cast());
        let y = match name {
            "sigmoid" => v.sigmoid().sum(),
            "tanh" => v.tanh().sum(),
            "softplus" => v.softplus().sum(),
            "log_softmax" => v.log_softmax(1).sum(),
            _ => v.cross_entropy(&[1, 0]),
        };
        let g = y.backward();
        assert!(y.item().is_finite(), "{name}: value {}", y.item());
        assert!(g[v].all_finite(), "{name}: gradient {}", g[v]);
    }
    // The values themselves are right, not just finite.
    let tape = Tape::<f64>::new();
    let v = tape.param(x.clone());
    assert_eq!(v.sigmoid().value().data()[..2], [1.0, 0.0]);
    assert_eq!(v.softplus().value().data()[..2], [1e4, 0.0]);
    let ce = v.cross_entropy(&[1, 0]).item(); // row 0: logp(1) = -2e4; row 1: logp(0) = -2e4 - ln 2
    assert!((ce - (2e4 + 2e4 + 2f64.ln()) / 2.0).abs() < 1e-9, "{ce}");
}

#[test]
fn quadratic_cost_and_accuracy_agree_between_f32_and_f64() {
    let model64 = Model::<f64>::new(
        &[20, 8, 4],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Init::ScaledNormal,
        4,
    );
    let mut model32 = Model::<f32>::new(
        &[20, 8, 4],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Init::ScaledNormal,
        4,
    );
    for (name, value) in model64.params().iter() {
        *model32.params_mut().get_mut(name).expect("same names") = value.cast();
    }
    let x = Tensor::<f64>::from_vec(
        (0..200).map(|i| ((i * 37) % 101) as f64 / 101.0).collect(),
        [10, 20],
    );
    let labels: Vec<usize> = (0..10).map(|i| i % 4).collect();
    let (c64, out64) = {
        let tape = Tape::new();
        let b = model64.params().bind(&tape);
        let out = model64.forward(&b, tape.constant(x.clone()));
        (Quadratic.cost(out, &labels).item(), out.value())
    };
    let (c32, out32) = {
        let tape = Tape::new();
        let b = model32.params().bind(&tape);
        let out = model32.forward(&b, tape.constant(x.cast()));
        (f64::from(Quadratic.cost(out, &labels).item()), out.value())
    };
    assert!(
        (c64 - c32).abs() < 1e-6 * c64.abs().max(1.0),
        "{c64} vs {c32}"
    );
    assert_eq!(nn::accuracy(&out64, &labels), nn::accuracy(&out32, &labels));
}

#[test]
fn anomaly_detection_names_the_first_op_in_either_pass() {
    // Forward: ln of a negative number.
    let tape = Tape::<f32>::new();
    tape.detect_anomaly(true);
    let x = tape.param(Tensor::from_vec(vec![1.0, -1.0], [2]));
    let _ = (x * 2.0).ln().exp().sum();
    let a = tape.anomaly().expect("ln(-2) is NaN");
    assert_eq!(
        (a.phase, a.node, a.op.as_str(), a.count),
        (AnomalyPhase::Forward, 2, "ln", 1)
    );
    assert!(a.inputs_finite);
    assert!(a.to_string().contains("op ln (node #2, inputs [2])"), "{a}");

    // Backward: sqrt at 0 has an infinite derivative, the forward is finite.
    let tape = Tape::<f32>::new();
    tape.detect_anomaly(true);
    let x = tape.param(Tensor::from_vec(vec![0.0, 4.0], [2]));
    let y = x.sqrt().sum();
    assert!(tape.anomaly().is_none());
    let _ = y.backward();
    let a = tape.anomaly().expect("d sqrt(0) is infinite");
    assert_eq!((a.phase, a.op.as_str()), (AnomalyPhase::Backward, "sqrt"));

    // Off by default: nothing is recorded.
    let tape = Tape::<f32>::new();
    let _ = tape.param(Tensor::from_vec(vec![-1.0], [1])).ln();
    assert!(tape.anomaly().is_none());
}

#[test]
fn a_100k_op_tensor_chain_records_backpropagates_and_drops_iteratively() {
    let tape = Tape::<f64>::with_capacity(100_001);
    let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    let mut y = x;
    for _ in 0..100_000 {
        y = y * 1.000001;
    }
    let g = y.sum().backward();
    let expected = 1.000001f64.powi(100_000);
    assert!((g[x].data()[0] - expected).abs() < 1e-9 * expected);
    drop(g);
    drop(tape);
}
