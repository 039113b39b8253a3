//! Seeing backprop: for one test image and a trained network A checkpoint, draw what
//! the cost "wants" of every neuron, using only the tape's own gradients.
//!
//! The output neuron for the right digit wants to go up and the others down, each in
//! proportion to how far it is from its target (`-dC/da`); those desires, weighted by
//! the connections, add up into the desired nudges of the layer before, and so on
//! backwards. For one first-layer neuron the 784 weight nudges `-dC/dw` are drawn as
//! an image: the weights from the brightest pixels change most.
//!
//! cargo run --release --example mnist                       # writes the checkpoint
//! cargo run --release --example nudges -- --index 0         # then this

use backprop::pictures::{activation_color, max_abs, nudge_color, nudges_figure, Column};
use clap::Parser;
use nn::{Checkpoint, Cost, Mnist, Network, NnError, Quadratic, Trainer};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    about = "Draw the desired nudges backprop computes for one test image and for a minibatch"
)]
struct Args {
    /// A network A checkpoint written by the mnist example.
    #[arg(long, default_value = "checkpoints/mnist-a.safetensors")]
    checkpoint: PathBuf,
    /// Which test image.
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// First-hidden-layer neuron whose weight nudges are drawn (default: the one the
    /// cost most wants to change).
    #[arg(long)]
    neuron: Option<usize>,
    /// Minibatch size for the averaged figure (test images from --index on), at least 1.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Directory for the pictures (default: beside the checkpoint).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory holding the MNIST files (default: $MNIST_DIR or the cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Per layer: mean activation and mean desired nudge `-dC/da` over the examples given,
/// plus the first layer's weight nudges `-dC/dW` ([784, 16]).
struct Nudges {
    activations: Vec<Vec<f32>>,
    nudges: Vec<Vec<f32>>,
    weight_nudges: Vec<f32>,
    neurons: usize,
}

/// Runs the network on `images` with the quadratic cost and reads the gradients of
/// every activation (kept with `retain_grad`) and of the first layer's weights.
fn nudges(
    trainer: &Trainer,
    images: autodiff::Tensor<f32>,
    labels: &[usize],
) -> Result<Nudges, NnError> {
    let tape = autodiff::Tape::new();
    let bound = trainer.model.params().bind(&tape);
    let layers = trainer.model.activations(&bound, tape.constant(images));
    for a in &layers {
        a.retain_grad();
    }
    let output = *layers.last().expect("at least one layer");
    let cost = Quadratic.cost(output, labels);
    let grads = cost.backward();
    let n = labels.len() as f32;
    let mut activations = Vec::new();
    let mut nudges = Vec::new();
    for a in &layers {
        let width = a.shape()[1];
        let value = a.value();
        let grad = grads
            .get(*a)
            .cloned()
            .unwrap_or_else(|| autodiff::Tensor::zeros(a.shape()));
        // Mean over the examples: C averages over them already, so the sum of -dC/da
        // rows is the mean desire.
        let mean = |t: &autodiff::Tensor<f32>, scale: f32| -> Vec<f32> {
            (0..width)
                .map(|j| t.data().chunks_exact(width).map(|row| row[j]).sum::<f32>() * scale)
                .collect()
        };
        activations.push(mean(&value, 1.0 / n));
        nudges.push(mean(&grad, -1.0));
    }
    let w = grads[bound.get("layers.0.weight")].clone();
    let neurons = w.shape()[1];
    Ok(Nudges {
        activations,
        nudges,
        weight_nudges: w.data().iter().map(|g| -g).collect(),
        neurons,
    })
}

fn column_of(weights: &[f32], neurons: usize, j: usize) -> Vec<f32> {
    weights.chunks_exact(neurons).map(|row| row[j]).collect()
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), NnError> {
    if args.batch == 0 {
        return Err(NnError::Data(
            "--batch 0 averages no images: give at least 1".into(),
        ));
    }
    let trainer = Trainer::from_checkpoint(Checkpoint::load(&args.checkpoint)?)?;
    if trainer.recipe.network != Network::A {
        return Err(NnError::Data(format!(
            "{} holds network {}; the nudges picture is drawn for network a",
            args.checkpoint.display(),
            trainer.recipe.network
        )));
    }
    let data = Mnist::load(args.data_dir.as_deref())?;
    if args.index >= data.test.len() {
        return Err(NnError::Data(format!(
            "--index {} is past the {} test images",
            args.index,
            data.test.len()
        )));
    }
    let out_dir = args.out.clone().unwrap_or_else(|| {
        args.checkpoint
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default()
    });
    std::fs::create_dir_all(&out_dir).map_err(|e| NnError::Io {
        path: out_dir.clone(),
        source: e,
    })?;
    let picture_error = |e: backprop::pictures::PictureError| NnError::Data(e.to_string());

    // One example.
    let example = data.test.slice(args.index, args.index + 1);
    let label = example.labels[0];
    let one = nudges(&trainer, example.images.clone(), &example.labels)?;
    let output = one.activations.last().cloned().unwrap_or_default();
    let predicted = nn::metrics::argmax_rows(&autodiff::Tensor::from_vec(
        output.clone(),
        [1, output.len()],
    ))[0];
    let neuron = args.neuron.unwrap_or_else(|| {
        let hidden = &one.nudges[0];
        (0..hidden.len())
            .max_by(|&a, &b| hidden[a].abs().total_cmp(&hidden[b].abs()))
            .unwrap_or(0)
    });
    if neuron >= one.neurons {
        return Err(NnError::Data(format!(
            "--neuron {neuron} is out of range: the first layer has {} neurons",
            one.neurons
        )));
    }
    println!(
        "test image {} (digit {label}), network predicts {predicted}",
        args.index
    );
    println!("desired nudges -dC/da (the gradient the tape computed, negated):");
    for (l, (acts, nudges)) in one.activations.iter().zip(&one.nudges).enumerate() {
        let name = if l + 1 == one.activations.len() {
            "output".to_string()
        } else {
            format!("hidden {}", l + 1)
        };
        println!("  {name:<9} neuron  activation  nudge");
        for (j, (a, n)) in acts.iter().zip(nudges).enumerate() {
            println!("  {:<9} {j:>6}  {a:>10.4}  {n:>+9.5}", "");
        }
    }
    let layer_columns = |n: &Nudges, with_activations: bool| -> Vec<Column> {
        let mut cols = Vec::new();
        for (l, (acts, nudges)) in n.activations.iter().zip(&n.nudges).enumerate() {
            let name = if l + 1 == n.activations.len() {
                "output".to_string()
            } else {
                format!("hidden {}", l + 1)
            };
            if with_activations {
                cols.push(Column {
                    title: format!("{name} a"),
                    values: acts.clone(),
                    color: activation_color,
                    limit: 1.0,
                });
            }
            cols.push(Column {
                title: format!("{name} -dC/da"),
                values: nudges.clone(),
                color: nudge_color,
                limit: max_abs(nudges),
            });
        }
        cols
    };
    let weights = column_of(&one.weight_nudges, one.neurons, neuron);
    let single = out_dir.join(format!("nudges-test-{}.svg", args.index));
    nudges_figure(
        &single,
        &format!(
            "test image {} (digit {label}, predicted {predicted}): what one example wants",
            args.index
        ),
        example.images.data(),
        &layer_columns(&one, true),
        Some((&format!("-dC/dw into hidden 1 #{neuron}"), &weights)),
    )
    .map_err(picture_error)?;
    println!(
        "weight nudges for first-layer neuron {neuron}: largest {:+.5}, drawn in {}",
        max_abs(&weights),
        single.display()
    );

    // A minibatch: the average desire next to a few single examples.
    let end = (args.index + args.batch).min(data.test.len());
    let batch = data.test.slice(args.index, end);
    let avg = nudges(&trainer, batch.images.clone(), &batch.labels)?;
    let mut columns = vec![Column {
        title: format!("mean of {} -dC/da", batch.labels.len()),
        values: avg.nudges.last().cloned().unwrap_or_default(),
        color: nudge_color,
        limit: max_abs(avg.nudges.last().map_or(&[][..], |v| v)),
    }];
    for k in 0..3.min(batch.labels.len()) {
        let ex = data.test.slice(args.index + k, args.index + k + 1);
        let n = nudges(&trainer, ex.images, &ex.labels)?;
        let out = n.nudges.last().cloned().unwrap_or_default();
        columns.push(Column {
            title: format!("digit {} alone", ex.labels[0]),
            limit: max_abs(&out),
            values: out,
            color: nudge_color,
        });
    }
    let avg_weights = column_of(&avg.weight_nudges, avg.neurons, neuron);
    let batch_path = out_dir.join(format!(
        "nudges-batch-{}-{}.svg",
        args.index,
        batch.labels.len()
    ));
    nudges_figure(
        &batch_path,
        &format!(
            "output nudges: the average over {} test images (from #{}) vs single examples",
            batch.labels.len(),
            args.index
        ),
        example.images.data(),
        &columns,
        Some((&format!("mean -dC/dw, hidden 1 #{neuron}"), &avg_weights)),
    )
    .map_err(picture_error)?;
    println!(
        "minibatch of {}: mean output nudges {:?}",
        batch.labels.len(),
        avg.nudges.last().map(|v| v
            .iter()
            .map(|x| (x * 1e4).round() / 1e4)
            .collect::<Vec<_>>())
    );
    println!(
        "pictures written: {} and {}",
        single.display(),
        batch_path.display()
    );
    Ok(())
}
