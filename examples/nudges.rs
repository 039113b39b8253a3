//! Seeing backprop: for one test image and a trained network A checkpoint, draw what
//! the cost "wants" of every neuron, using only the tape's own gradients.
//!
//! The output neuron for the right digit wants to go up and the others down, each in
//! proportion to how far it is from its target (`-dC/da`); those desires, weighted by
//! the connections, add up into the desired nudges of the layer before, and so on
//! backwards. For one first-layer neuron, the one whose weight nudges are largest, the
//! 784 weight nudges `-dC/dw` are drawn as an image: the weights from the brightest
//! pixels change most.
//!
//! In the pictures activations are grey (white 0, black 1, like the input's ink) and
//! nudges are red (up) or blue (down); every column has its own legend and scale.
//!
//! cargo run --release --example mnist -- --net a            # writes the checkpoint
//! cargo run --release --example nudges -- --index 0         # then this

use backprop::pictures::{
    largest_column, max_abs, nudges_figure, readable, signed_readable, Column, Layer, Panel, Shade,
};
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
    /// First-hidden-layer neuron whose weight nudges are drawn (default: in each
    /// picture, the neuron whose weight nudges are largest).
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

fn norm(values: &[f32]) -> f32 {
    values
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt() as f32
}

/// The first-layer neuron whose weight nudges a picture draws, its weight nudges, and
/// the caption's words for why it was chosen.
struct Chosen {
    neuron: usize,
    weights: Vec<f32>,
    why: Vec<String>,
}

/// `--neuron` if given, else the neuron whose weight nudges in `n` have the largest norm.
fn choose(n: &Nudges, requested: Option<usize>, whose: &str) -> Chosen {
    let (largest, largest_norm) = largest_column(&n.weight_nudges, n.neurons).unwrap_or((0, 0.0));
    let neuron = requested.unwrap_or(largest);
    let weights = column_of(&n.weight_nudges, n.neurons, neuron);
    let why = if neuron == largest {
        vec![
            format!("into hidden 1 neuron #{neuron}: of all {},", n.neurons),
            format!("the one whose {whose}weight"),
            format!(
                "nudges are largest (norm {})",
                readable(largest_norm.into())
            ),
        ]
    } else {
        vec![
            format!("into hidden 1 neuron #{neuron} (--neuron),"),
            format!(
                "norm {}; #{largest} has the largest",
                readable(norm(&weights).into())
            ),
            format!(
                "{whose}weight nudges (norm {})",
                readable(largest_norm.into())
            ),
        ]
    };
    Chosen {
        neuron,
        weights,
        why,
    }
}

fn layer_name(l: usize, layers: usize) -> String {
    if l + 1 == layers {
        "output".to_string()
    } else {
        format!("hidden {}", l + 1)
    }
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
    if !args.checkpoint.exists() {
        return Err(NnError::Data(format!(
            "{} does not exist: train network A first with \
             `cargo run --release --example mnist -- --net a` (it writes \
             checkpoints/mnist-a.safetensors), or give --checkpoint PATH",
            args.checkpoint.display()
        )));
    }
    let checkpoint = Checkpoint::load(&args.checkpoint)?;
    let about = checkpoint.summary();
    let trainer = Trainer::from_checkpoint(checkpoint)?;
    if trainer.recipe.network != Network::A {
        return Err(NnError::Data(format!(
            "{} holds network {}; the nudges picture is drawn for network a",
            args.checkpoint.display(),
            trainer.recipe.network
        )));
    }
    println!("checkpoint {}: {about}", args.checkpoint.display());
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
    let picture_error = |e: backprop::pictures::PictureError| NnError::Data(e.to_string());

    // One example.
    let example = data.test.slice(args.index, args.index + 1);
    let label = example.labels[0];
    let one = nudges(&trainer, example.images.clone(), &example.labels)?;
    if let Some(neuron) = args.neuron.filter(|&j| j >= one.neurons) {
        return Err(NnError::Data(format!(
            "--neuron {neuron} is out of range: the first layer has {} neurons (0 to {})",
            one.neurons,
            one.neurons - 1
        )));
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| NnError::Io {
        path: out_dir.clone(),
        source: e,
    })?;
    let output = one.activations.last().cloned().unwrap_or_default();
    let predicted = nn::argmax_rows(&autodiff::Tensor::from_vec(
        output.clone(),
        [1, output.len()],
    ))[0];
    let chosen = choose(&one, args.neuron, "");
    let count = one.activations.len();

    println!(
        "test image {} is a {label}; the network predicts {predicted} (output {})",
        args.index,
        readable(output[predicted].into())
    );
    println!(
        "each neuron's activation a and desired nudge -dC/da (the tape's gradient of the \
         quadratic cost, negated: + wants the neuron up, - down):"
    );
    for (l, (acts, nudges)) in one.activations.iter().zip(&one.nudges).enumerate() {
        let output_layer = l + 1 == count;
        let rows = if output_layer { "digit" } else { "neuron" };
        println!(
            "  {:<9} {rows:>6}  {:>10}  {:>9}",
            layer_name(l, count),
            "activation",
            "nudge"
        );
        for (j, (a, n)) in acts.iter().zip(nudges).enumerate() {
            let note = match (output_layer, l) {
                (true, _) if j == label && j == predicted => "  <- the label, predicted",
                (true, _) if j == label => "  <- the label",
                (true, _) if j == predicted => "  <- predicted",
                (false, 0) if j == chosen.neuron => "  <- its weight nudges are drawn",
                _ => "",
            };
            println!(
                "  {:<9} {j:>6}  {:>10}  {:>9}{note}",
                "",
                readable((*a).into()),
                signed_readable((*n).into())
            );
        }
    }
    // One example's weight nudges are its pixels times the neuron's -dC/dz.
    let pixels = example.images.data();
    let dz = chosen
        .weights
        .iter()
        .zip(pixels)
        .map(|(w, x)| f64::from(*w) * f64::from(*x))
        .sum::<f64>()
        / pixels
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .max(1e-30);
    let (peak, _) = chosen
        .weights
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap_or((0, &0.0));
    let side = (pixels.len() as f64).sqrt() as usize;
    println!(
        "weight nudges -dC/dw into hidden 1 neuron {} ({}): norm {}, largest {} at pixel \
         (row {}, column {}); they are the pixels times -dC/dz = {}",
        chosen.neuron,
        if args.neuron.is_some() {
            "chosen with --neuron"
        } else {
            "the neuron whose weight nudges are largest"
        },
        readable(norm(&chosen.weights).into()),
        signed_readable(chosen.weights[peak].into()),
        peak / side.max(1),
        peak % side.max(1),
        signed_readable(dz)
    );

    let mut layers = Vec::new();
    for (l, (acts, nudges)) in one.activations.iter().zip(&one.nudges).enumerate() {
        let output_layer = l + 1 == count;
        let (rows, note, marked) = if output_layer {
            let note = if label == predicted {
                format!("rows: digits; ringed: the label, {label}")
            } else {
                format!("rows: digits; ringed: the label, {label} (predicted {predicted})")
            };
            (
                (0..acts.len()).map(|j| j.to_string()).collect(),
                note,
                Some(label),
            )
        } else if l == 0 {
            (
                (0..acts.len()).map(|j| format!("#{j}")).collect(),
                format!(
                    "rows: neurons; ringed: #{}, weights at right",
                    chosen.neuron
                ),
                Some(chosen.neuron),
            )
        } else {
            (
                (0..acts.len()).map(|j| format!("#{j}")).collect(),
                "rows: neurons".to_string(),
                None,
            )
        };
        layers.push(Layer {
            name: layer_name(l, count),
            note,
            rows,
            columns: vec![
                Column {
                    title: "activation a".into(),
                    values: acts.clone(),
                    shade: Shade::Activation,
                    marked,
                },
                Column {
                    title: "nudge -dC/da".into(),
                    values: nudges.clone(),
                    shade: Shade::Nudge,
                    marked,
                },
            ],
        });
    }
    let mut notes = chosen.why.clone();
    notes.push("for one example: its pixels".into());
    notes.push(format!("times -dC/dz = {}", signed_readable(dz)));
    let single = out_dir.join(format!("nudges-test-{}.svg", args.index));
    nudges_figure(
        &single,
        &format!(
            "test image {}, a {label} (predicted {predicted}): what one example wants of every neuron",
            args.index
        ),
        (&format!("test image {}", args.index), pixels),
        &layers,
        Some(&Panel {
            title: "weight nudges -dC/dw".into(),
            notes,
            values: &chosen.weights,
        }),
    )
    .map_err(picture_error)?;

    // A minibatch: the average desire next to a few single examples.
    let end = (args.index + args.batch).min(data.test.len());
    let batch = data.test.slice(args.index, end);
    let size = batch.labels.len();
    let avg = nudges(&trainer, batch.images.clone(), &batch.labels)?;
    let mean_output = avg.nudges.last().cloned().unwrap_or_default();
    let digits: Vec<String> = (0..mean_output.len()).map(|j| j.to_string()).collect();
    let mut columns = vec![Column {
        title: format!("mean of {size}"),
        values: mean_output.clone(),
        shade: Shade::Nudge,
        marked: None,
    }];
    for k in 0..3.min(size) {
        let ex = data.test.slice(args.index + k, args.index + k + 1);
        let n = nudges(&trainer, ex.images, &ex.labels)?;
        columns.push(Column {
            title: format!("#{}, a {}", args.index + k, ex.labels[0]),
            values: n.nudges.last().cloned().unwrap_or_default(),
            shade: Shade::Nudge,
            marked: Some(ex.labels[0]),
        });
    }
    let batch_chosen = choose(&avg, args.neuron, "mean ");
    let batch_path = out_dir.join(format!("nudges-batch-{}-{size}.svg", args.index));
    let last = args.index + size - 1;
    nudges_figure(
        &batch_path,
        &format!(
            "output nudges -dC/da: the mean over test images #{} to #{last} beside single examples",
            args.index
        ),
        (&format!("test image {}, the first", args.index), pixels),
        &[Layer {
            name: "output".into(),
            note: "rows: digits; ringed: each example's label".into(),
            rows: digits,
            columns,
        }],
        Some(&Panel {
            title: format!("mean weight nudges of {size}"),
            notes: batch_chosen.why.clone(),
            values: &batch_chosen.weights,
        }),
    )
    .map_err(picture_error)?;
    println!(
        "minibatch of {size} test images (#{} to #{last}): the mean desired nudge of each output neuron",
        args.index
    );
    println!("  {:>6}  {:>10}", "digit", "mean nudge");
    for (j, n) in mean_output.iter().enumerate() {
        println!("  {j:>6}  {:>10}", signed_readable((*n).into()));
    }
    println!(
        "mean weight nudges into hidden 1 neuron {} ({}): norm {}, largest |value| {}",
        batch_chosen.neuron,
        if args.neuron.is_some() {
            "chosen with --neuron"
        } else {
            "the neuron whose mean weight nudges are largest"
        },
        readable(norm(&batch_chosen.weights).into()),
        readable(max_abs(&batch_chosen.weights).into())
    );
    println!(
        "pictures written: {} and {}",
        single.display(),
        batch_path.display()
    );
    Ok(())
}
