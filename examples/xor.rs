//! XOR, the smallest problem that needs a hidden layer, as a regression on the targets
//! 0 and 1: a hand-written training loop (bind the parameters to a fresh tape, run the
//! network, take the cost, backward, optimizer step), then a checkpoint round trip.
//!
//! cargo run --example xor

use autodiff::{Tape, Tensor};
use nn::{
    Activation, Adam, Checkpoint, Cost, Init, MeanSquaredError, Model, Module, NnError, Optimizer,
};

/// The four inputs `(a, b)`, one per row.
pub fn inputs() -> Tensor<f32> {
    Tensor::from_vec(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [4, 2])
}

/// The wanted outputs `a xor b`, one per row.
pub fn targets() -> Tensor<f32> {
    Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], [4, 1])
}

/// A fresh 2-4-1 network: tanh hidden units, a sigmoid output in (0, 1).
pub fn network(seed: u64) -> Model<f32> {
    Model::new(
        &[2, 4, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Init::Xavier,
        seed,
    )
}

/// Trains `model` for `steps` steps on all four examples at once, with mean squared
/// error against the targets; `on_step(step, cost)` sees the cost before each update.
pub fn train(
    model: &mut Model<f32>,
    steps: usize,
    mut on_step: impl FnMut(usize, f32),
) -> Result<(), NnError> {
    let (x, y) = (inputs(), targets());
    let mut optimizer = Adam::new(0.05);
    for step in 1..=steps {
        // The tape lives for one step; it is dropped before the update, so the optimizer
        // writes the parameters in place instead of copying storage the tape still shares.
        let grads = {
            let tape = Tape::new();
            // A training pass (the mode matters to dropout and batch norm only).
            let params = model.params().bind(&tape).train(step as u64);
            let output = model.forward(&params, tape.constant(x.clone()));
            let cost = MeanSquaredError.cost(output, &y);
            on_step(step, cost.item());
            params.grads(cost.backward())?
        };
        optimizer.step(model.params_mut(), &grads)?;
    }
    Ok(())
}

fn main() -> Result<(), NnError> {
    let mut model = network(1);
    train(&mut model, 1000, |step, cost| {
        if step == 1 || step % 100 == 0 {
            println!("step {step:>4}  cost {cost:.6}");
        }
    })?;
    let predictions = model.predict(&inputs());
    let x = inputs();
    for (row, (p, t)) in predictions.data().iter().zip(targets().data()).enumerate() {
        let (a, b) = (x.data()[2 * row], x.data()[2 * row + 1]);
        println!("{a} xor {b} = {t}: predicted {p:.3}");
    }

    // A checkpoint round trip: save the parameters, load them into a differently seeded
    // network of the same shape, and get the same predictions back.
    let path = std::env::temp_dir().join(format!("xor-{}.safetensors", std::process::id()));
    Checkpoint::new(model.params().clone()).save(&path)?;
    let mut restored = network(2);
    Checkpoint::load(&path)?.restore_params(restored.params_mut())?;
    // Only a temporary file: failing to remove it is not worth failing the example.
    std::fs::remove_file(&path).ok();
    assert_eq!(restored.predict(&inputs()), predictions);
    println!(
        "checkpoint round trip through {}: same predictions",
        path.display()
    );
    Ok(())
}
