//! Costs against a target tensor (a regression) as well as class labels, the panics
//! that name the cost and both shapes when a target does not fit, and the XOR example's
//! hand-written training loop converging.

use autodiff::{Tape, Tensor};
use nn::{
    mean_squared_error, one_hot, quadratic, Cost, CrossEntropy, MeanSquaredError, Quadratic, Target,
};

// The example itself, so the test trains exactly what `cargo run --example xor` trains.
#[allow(dead_code)]
#[path = "../examples/xor.rs"]
mod xor;

#[test]
fn a_target_tensor_gives_the_same_cost_as_the_labels_it_encodes() {
    let tape = Tape::<f64>::new();
    let a = tape.constant(Tensor::from_vec(vec![0.2, 0.9, 0.6, 0.1], [2, 2]));
    let labels = [1, 0];
    let y = one_hot::<f64>(&labels, 2);
    assert_eq!(
        Quadratic.cost(a, &y).item(),
        Quadratic.cost(a, &labels).item()
    );
    assert_eq!(
        MeanSquaredError.cost(a, &y).item(),
        MeanSquaredError.cost(a, &labels).item()
    );
    assert_eq!(
        Quadratic.cost(a, &y).item(),
        quadratic(a, tape.constant(y.clone())).item()
    );
}

#[test]
fn mean_squared_error_of_a_one_column_regression_matches_its_formula() {
    let tape = Tape::<f64>::new();
    let a = tape.param(Tensor::from_vec(vec![0.25, 0.5, 1.5], [3, 1]));
    let y = Tensor::from_vec(vec![0.0, 1.0, 1.0], [3, 1]);
    let expected = (0.0625 + 0.25 + 0.25) / 3.0;
    let cost = MeanSquaredError.cost(a, &y);
    assert!((cost.item() - expected).abs() < 1e-15);
    assert_eq!(cost.item(), mean_squared_error(a, tape.constant(y)).item());
    // d/da mean((a - y)²) = 2 (a - y) / n
    let grads = cost.backward();
    let g = grads.get(a).expect("gradient of the outputs");
    let want = [0.5 / 3.0, -1.0 / 3.0, 1.0 / 3.0];
    for (g, w) in g.data().iter().zip(want) {
        assert!((g - w).abs() < 1e-15, "{g} vs {w}");
    }
}

#[test]
fn costs_behind_a_box_take_labels_and_targets_too() {
    let tape = Tape::<f64>::new();
    let a = tape.constant(Tensor::from_vec(vec![0.2, 0.9, 0.6, 0.1], [2, 2]));
    let boxed: Box<dyn Cost<f64>> = Box::new(Quadratic);
    let labels = vec![1, 0];
    assert_eq!(
        boxed.cost(a, &labels).item(),
        Quadratic.cost(a, &labels).item()
    );
    let target = one_hot::<f64>(&labels, 2);
    assert_eq!(
        boxed.cost_of(a, Target::Values(&target)).item(),
        Quadratic.cost(a, &labels).item()
    );
    assert_eq!(boxed.name(), "quadratic");
}

#[test]
#[should_panic(expected = "mse: the target has shape [4, 2] but the outputs have shape [4, 1]")]
fn a_target_of_another_shape_panics_naming_the_cost_and_both_shapes() {
    let tape = Tape::<f32>::new();
    let a = tape.constant(Tensor::zeros([4, 1]));
    MeanSquaredError.cost(a, &Tensor::zeros([4, 2]));
}

#[test]
#[should_panic(
    expected = "quadratic: label 1 is out of range for outputs of shape [4, 1] (1 classes); \
                           for a regression, pass the wanted outputs as a tensor"
)]
fn labels_given_for_a_regression_explain_what_to_pass_instead() {
    let tape = Tape::<f32>::new();
    let a = tape.constant(Tensor::zeros([4, 1]));
    Quadratic.cost(a, &[0, 1, 1, 0]);
}

#[test]
#[should_panic(expected = "quadratic: outputs of shape [4, 2] do not fit 3 labels")]
fn too_few_labels_panic_naming_the_cost_and_the_shape() {
    let tape = Tape::<f32>::new();
    let a = tape.constant(Tensor::zeros([4, 2]));
    Quadratic.cost(a, &[0, 1, 1]);
}

#[test]
#[should_panic(
    expected = "cross-entropy: takes class labels, not a target tensor (shape [4, 1], outputs [4, 1])"
)]
fn cross_entropy_refuses_a_target_tensor() {
    let tape = Tape::<f32>::new();
    let a = tape.constant(Tensor::zeros([4, 1]));
    CrossEntropy.cost(a, &Tensor::zeros([4, 1]));
}

#[test]
fn the_xor_example_learns_xor() {
    let mut model = xor::network(1);
    let mut costs = Vec::new();
    xor::train(&mut model, 1000, |_, cost| costs.push(cost)).expect("training");
    assert_eq!(costs.len(), 1000);
    assert!(
        costs[999] < costs[0] / 10.0,
        "the cost fell only from {} to {}",
        costs[0],
        costs[999]
    );
    let predictions = model.predict(&xor::inputs());
    for (p, t) in predictions.data().iter().zip(xor::targets().data()) {
        assert!(
            (p - t).abs() < 0.1,
            "predicted {p} for {t}: {predictions:?}"
        );
    }
}
