//! What each example wants: for one minibatch of training images and a trained network
//! A checkpoint, every example's own gradient (`nn::per_sample_grads`, one batched
//! pass), compared with the batch's mean gradient, the step SGD would take.
//!
//! The examples whose gradients are longest pull hardest on the step; those whose
//! gradient points away from the mean (lowest cosine) disagree most with the rest of
//! the batch. Both are printed as a table and drawn as rows of digits, each with its
//! label, prediction, gradient norm and cosine under it. The picture goes beside the
//! checkpoint unless `--out PATH` says where.
//!
//! cargo run --release --example mnist -- --net a             # writes the checkpoint
//! cargo run --release --example per_sample -- --seed 3         # then this

use backprop::pictures::{digit_rows, readable, signed_readable, DigitRow, Thumbnail};
use clap::Parser;
use nn::{per_sample_grads, Checkpoint, Mnist, Network, NnError, Quadratic, Trainer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    about = "For one minibatch of network A, the examples whose gradients pull hardest and those that disagree most with the batch's mean gradient"
)]
struct Args {
    /// A network A checkpoint written by the mnist example.
    #[arg(long, default_value = "checkpoints/mnist-a.safetensors")]
    checkpoint: PathBuf,
    /// Minibatch size, at least 2 (one example always agrees with its own mean).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The minibatch is the training images from this one on.
    #[arg(long, default_value_t = 0, conflicts_with = "seed")]
    index: usize,
    /// Draw the minibatch's training images at random with this seed instead.
    #[arg(long)]
    seed: Option<u64>,
    /// How many examples each row of the table and picture shows.
    #[arg(long, default_value_t = 8)]
    top: usize,
    /// Where to write the picture, an SVG file (default: beside the checkpoint,
    /// `<checkpoint stem>.per-sample.svg`, e.g. checkpoints/mnist-a.per-sample.svg).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory holding the MNIST files (default: $MNIST_DIR or the cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// One example of the batch and what its gradient says.
struct Example {
    image: usize,
    label: usize,
    predicted: usize,
    cost: f64,
    norm: f64,
    cosine: f64,
}

/// Where the picture goes without `--out`: beside the checkpoint, as the mnist demo's
/// pictures do, `<stem>.per-sample.svg`.
fn default_picture(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "network".into());
    checkpoint.with_file_name(format!("{stem}.per-sample.svg"))
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
    if args.batch < 2 {
        return Err(NnError::Data(format!(
            "--batch {} is too small: the mean of one gradient is itself, give at least 2",
            args.batch
        )));
    }
    if args.top == 0 {
        return Err(NnError::Data(
            "--top 0 shows nothing: give at least 1".into(),
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
            "{} holds network {}; this example is drawn for network a",
            args.checkpoint.display(),
            trainer.recipe.network
        )));
    }
    println!("checkpoint {}: {about}", args.checkpoint.display());
    let train = Mnist::load(args.data_dir.as_deref())?.train;
    if args.batch > train.len() {
        return Err(NnError::Data(format!(
            "--batch {} is more than the {} training images",
            args.batch,
            train.len()
        )));
    }
    let images: Vec<usize> = match args.seed {
        Some(seed) => {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut picked = rand::seq::index::sample(&mut rng, train.len(), args.batch).into_vec();
            picked.sort_unstable();
            picked
        }
        None if args.index + args.batch <= train.len() => {
            (args.index..args.index + args.batch).collect()
        }
        None => {
            return Err(NnError::Data(format!(
                "--index {} with --batch {} runs past the {} training images",
                args.index,
                args.batch,
                train.len()
            )))
        }
    };
    let batch = train.gather(&images);

    // Network A's cost is the quadratic one it was trained with.
    let model = &trainer.model;
    let each = per_sample_grads(
        model,
        model.params(),
        &Quadratic,
        &batch.images,
        &batch.labels,
    );
    let n = each.len();
    // The batch's mean gradient, the step SGD would take (negated), as one flat vector.
    let mut mean: Vec<f64> = Vec::new();
    for g in each.values() {
        let per = g.numel() / n;
        let mut sum = vec![0.0f64; per];
        for row in g.data().chunks_exact(per) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        mean.extend(sum.into_iter().map(|s| s / n as f64));
    }
    let mean_norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut dots = vec![0.0f64; n];
    let mut offset = 0;
    for g in each.values() {
        let per = g.numel() / n;
        for (dot, row) in dots.iter_mut().zip(g.data().chunks_exact(per)) {
            *dot += row
                .iter()
                .zip(&mean[offset..offset + per])
                .map(|(&v, m)| f64::from(v) * m)
                .sum::<f64>();
        }
        offset += per;
    }
    let norms = each.norms();
    let predicted = nn::argmax_rows(&model.predict(&batch.images));
    let examples: Vec<Example> = (0..n)
        .map(|i| Example {
            image: images[i],
            label: batch.labels[i],
            predicted: predicted[i],
            cost: f64::from(each.costs.data()[i]),
            norm: norms[i],
            // A zero gradient has no direction: it neither agrees nor disagrees.
            cosine: if norms[i] * mean_norm > 0.0 {
                dots[i] / (norms[i] * mean_norm)
            } else {
                0.0
            },
        })
        .collect();

    let top = args.top.min(n);
    let mut by_norm: Vec<&Example> = examples.iter().collect();
    by_norm.sort_by(|a, b| b.norm.total_cmp(&a.norm).then(a.image.cmp(&b.image)));
    let mut by_cosine: Vec<&Example> = examples.iter().collect();
    by_cosine.sort_by(|a, b| a.cosine.total_cmp(&b.cosine).then(a.image.cmp(&b.image)));
    let (hardest, dissenting) = (&by_norm[..top], &by_cosine[..top]);

    let which = match args.seed {
        Some(seed) => format!("{n} training images drawn with seed {seed}"),
        None => format!("training images #{} to #{}", args.index, args.index + n - 1),
    };
    let mean_cost = examples.iter().map(|e| e.cost).sum::<f64>() / n as f64;
    let agree = examples.iter().filter(|e| e.cosine > 0.0).count();
    println!(
        "minibatch of {which}: mean cost {}, mean gradient norm {}; {agree} of {n} \
         examples' gradients point within 90 degrees of the mean",
        readable(mean_cost),
        readable(mean_norm)
    );
    let header = format!(
        "  {:>4}  {:>6}  {:>5}  {:>9}  {:>8}  {:>8}  {:>7}",
        "rank", "image", "label", "predicted", "cost", "norm", "cosine"
    );
    let row = |k: usize, e: &Example| {
        println!(
            "  {:>4}  {:>6}  {:>5}  {:>9}  {:>8}  {:>8}  {:>7}",
            k + 1,
            e.image,
            e.label,
            e.predicted,
            readable(e.cost),
            readable(e.norm),
            signed_readable(e.cosine)
        )
    };
    println!("pull hardest: the {top} largest gradient norms ‖g_i‖");
    println!("{header}");
    for (k, e) in hardest.iter().enumerate() {
        row(k, e);
    }
    println!("disagree most: the {top} lowest cosines between g_i and the mean gradient");
    println!("{header}");
    for (k, e) in dissenting.iter().enumerate() {
        row(k, e);
    }

    let thumbnails = |chosen: &[&Example]| -> Vec<Thumbnail> {
        chosen
            .iter()
            .map(|e| {
                let k = images.iter().position(|&i| i == e.image).unwrap_or(0);
                let f = train.features();
                Thumbnail {
                    pixels: batch.images.data()[k * f..(k + 1) * f].to_vec(),
                    lines: vec![
                        format!("#{}: a {}", e.image, e.label),
                        format!("predicted {}", e.predicted),
                        format!("norm {}", readable(e.norm)),
                        format!("cos {}", signed_readable(e.cosine)),
                    ],
                }
            })
            .collect()
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_picture(&args.checkpoint));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| NnError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    digit_rows(
        &out,
        &[
            format!("What each example of one minibatch wants: network A, {which}"),
            "Each example's gradient g_i of its own cost, against the batch's mean gradient:"
                .into(),
            "its norm ‖g_i‖ says how hard it pulls, its cosine with the mean whether it pulls \
             along (+1) or against (-1)."
                .into(),
        ],
        &[
            DigitRow {
                title: format!("pull hardest: the {top} largest norms"),
                digits: thumbnails(hardest),
            },
            DigitRow {
                title: format!("disagree most: the {top} lowest cosines with the mean"),
                digits: thumbnails(dissenting),
            },
        ],
    )
    .map_err(|e| NnError::Data(e.to_string()))?;
    println!("picture written: {}", out.display());
    Ok(())
}
