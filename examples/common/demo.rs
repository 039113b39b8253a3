//! The MNIST demo's program, shared by `examples/mnist.rs` (network A by default) and
//! `examples/pytorch_mnist.rs` (network E): trains with a progress bar per epoch, then
//! reports test accuracy and the confusion matrix and writes a checkpoint.

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nn::data_identity;
use nn::previous_path;
use nn::{Activation, Checkpoint, Init, Mnist, Network, Schedule, Trainer};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[path = "alloc.rs"]
mod alloc;
#[path = "cli.rs"]
mod cli;
use cli::{at_least_one, non_negative};

#[derive(Parser, Debug)]
#[command(about = "Train a digit classifier on MNIST with backprop's autodiff tape")]
struct Args {
    /// Which network: a (784-16-16-10 sigmoid, the video's; mnist's default), b
    /// (784-128-128-10 ReLU, Adam), c (784-1024-1024-10 ReLU, SGD with momentum), d
    /// (LeNet-5, Adam), a96 (alias 3b1b-96: a's shape with ReLU, AdamW, a one-cycle
    /// schedule and shifted inputs) or e (alias pytorch: PyTorch's own MNIST example, two
    /// convolutions, dropout, Adadelta, StepLR; pytorch_mnist's default).
    #[arg(long)]
    net: Option<Network>,
    /// Epochs to train (total, counting those of a resumed checkpoint); default per network.
    /// A learning-rate schedule spans a fresh run's epochs; a resumed run keeps the span
    /// its checkpoint planned (past it, cosine and one-cycle stay at their last value;
    /// step and exponential decays go on decaying, as PyTorch's do).
    #[arg(long, value_parser = epochs, allow_negative_numbers = true)]
    epochs: Option<usize>,
    /// Learning rate, a finite number above 0; default per network.
    #[arg(long, value_parser = learning_rate, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Minibatch size, at least 1 and at most the number of training images; default
    /// per network.
    #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
    batch: Option<usize>,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Weight initialiser: normal, scaled (N(0, 1/fan_in)), xavier, he or uniform (U(±1/sqrt(fan_in)), PyTorch's default).
    #[arg(long)]
    init: Option<Init>,
    /// Hidden-layer activation: sigmoid, relu or tanh; default per network.
    #[arg(long)]
    hidden: Option<Activation>,
    /// Learning-rate schedule over the run's epochs, peaking at the learning rate:
    /// constant, cosine, one-cycle (PyTorch's OneCycleLR defaults),
    /// one-cycle:WARMUP:DIV:FINAL_DIV, step:STEP_SIZE:GAMMA (StepLR, per epoch) or
    /// exponential:GAMMA (per epoch); default per network (one-cycle for a96).
    #[arg(long)]
    schedule: Option<Schedule>,
    /// Weight decay (decoupled for a96's AdamW, L2 for SGD and Adam); default per network.
    #[arg(long, value_parser = non_negative)]
    weight_decay: Option<f64>,
    /// Augmentation: shift every training image each epoch by up to this many pixels
    /// each way (seeded by --seed and the epoch); default per network (1 for a96).
    #[arg(long)]
    shift: Option<usize>,
    /// Directory holding the four MNIST IDX files (raw or .gz); default $MNIST_DIR or the cache.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Threads for large matrix products, at least 1 (default: all cores).
    #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// Where to write the checkpoint. By default checkpoints/mnist-<net>.safetensors, or,
    /// when that file holds a model trained on other data, a name beside it that ends in
    /// this data's identity. A file already there is kept as <path>.prev.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Load a checkpoint and report its test accuracy without training.
    #[arg(long, conflicts_with_all = ["resume", "epochs", "lr", "batch", "seed", "init", "save", "detect_anomaly", "net", "hidden", "schedule", "weight_decay", "shift"])]
    eval: Option<PathBuf>,
    /// Continue training from a checkpoint, optimizer state included; its network, learning
    /// rate, batch size, initialiser and seed are the checkpoint's.
    #[arg(long, conflicts_with_all = ["net", "lr", "batch", "seed", "init", "hidden", "schedule", "weight_decay", "shift"])]
    resume: Option<PathBuf>,
    /// Check every op for NaN/infinity while training and stop at the first one (slower;
    /// without it, a diverged batch is replayed with the check on to name the op).
    #[arg(long)]
    detect_anomaly: bool,
}

/// A number of epochs: at least 1, since training none would only rewrite a checkpoint.
fn epochs(s: &str) -> Result<usize, String> {
    at_least_one(s)
        .map_err(|why| format!("{why}: to evaluate a checkpoint without training, use --eval PATH"))
}

/// A learning rate: finite and above 0 (NaN, infinity, 0 or a negative rate cannot train).
fn learning_rate(s: &str) -> Result<f64, String> {
    let lr: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(format!(
            "{lr} cannot be a learning rate: it must be a finite number above 0"
        ))
    }
}

/// Runs the demo with `network` unless `--net` names another.
pub fn main(network: Network) -> ExitCode {
    alloc::keep_freed_memory();
    let mut args = Args::parse();
    args.net.get_or_insert(network);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match autodiff::with_threads(threads, || run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first 12 hex digits of a data identity: enough to tell data sets apart in a
/// file name or a message.
fn short(identity: &str) -> &str {
    let hex = identity.strip_prefix("sha256:").unwrap_or(identity);
    &hex[..hex.len().min(12)]
}

/// Refuses data the network cannot read or that leaves nothing to train or test on.
fn check_data(data: &Mnist, trainer: &Trainer, training: bool) -> Result<(), String> {
    let inputs = trainer.recipe.sizes[0];
    if data.train.features() != inputs {
        return Err(format!(
            "{} holds images of {} pixels, but network {} reads {inputs}",
            data.dir.display(),
            data.train.features(),
            trainer.recipe.network
        ));
    }
    if training && data.train.is_empty() {
        return Err(format!("{} holds no training images", data.dir.display()));
    }
    if data.test.is_empty() {
        return Err(format!("{} holds no test images", data.dir.display()));
    }
    Ok(())
}

/// What a checkpoint path holds before this run writes there.
enum Existing {
    /// No file.
    Nothing,
    /// A checkpoint of a model trained on the data set with this identity.
    TrainedOn(String),
    /// A file that does not say which data its model learned from (an older checkpoint,
    /// or not a checkpoint at all).
    Unknown,
}

fn existing(path: &Path) -> Existing {
    if !path.exists() {
        return Existing::Nothing;
    }
    match Checkpoint::<f32>::load(path) {
        Ok(c) => c
            .info
            .get("data")
            .cloned()
            .map_or(Existing::Unknown, Existing::TrainedOn),
        Err(_) => Existing::Unknown,
    }
}

/// Where a run without `--save` writes: `checkpoints/mnist-<net>.safetensors` if that is
/// free or holds a model of the same data; otherwise a name beside it that ends in the
/// data's identity, so a run on other data never replaces the model another run trained.
fn default_checkpoint(network: Network, identity: &str) -> Result<PathBuf, String> {
    let dir = Path::new("checkpoints");
    let plain = dir.join(format!("mnist-{network}.safetensors"));
    let why = match existing(&plain) {
        Existing::Nothing => return Ok(plain),
        Existing::TrainedOn(data) if data == identity => return Ok(plain),
        Existing::TrainedOn(data) => {
            format!("holds a model trained on other data ({})", short(&data))
        }
        Existing::Unknown => "holds a file that does not say which data it was trained on".into(),
    };
    let beside = dir.join(format!("mnist-{network}-{}.safetensors", short(identity)));
    match existing(&beside) {
        Existing::Nothing => {}
        Existing::TrainedOn(data) if data == identity => {}
        _ => {
            return Err(format!(
                "{} {why}, and {} holds another model too: pass --save PATH to say where this run's checkpoint goes",
                plain.display(),
                beside.display()
            ))
        }
    }
    println!(
        "note: {} {why}; this run's checkpoint goes to {} (choose with --save PATH)",
        plain.display(),
        beside.display()
    );
    Ok(beside)
}

fn run(args: Args) -> Result<(), Box<dyn Error>> {
    if let Some(save) = &args.save {
        if save.is_dir() {
            return Err(
                format!("--save {} is a directory; give a file path", save.display()).into(),
            );
        }
    }
    let load_data = || -> Result<Mnist, nn::NnError> {
        let data = Mnist::load(args.data_dir.as_deref())?;
        println!(
            "MNIST from {}: {} training and {} test images",
            data.dir.display(),
            data.train.len(),
            data.test.len()
        );
        Ok(data)
    };

    if let Some(path) = &args.eval {
        // The checkpoint is read first, so a bad path fails before any data is loaded.
        let trainer = Trainer::from_checkpoint(Checkpoint::load(path)?)?;
        let data = load_data()?;
        check_data(&data, &trainer, false)?;
        if let Some(trained_on) = &trainer.trained_on {
            let here = data_identity(&data.train);
            if *trained_on != here {
                println!(
                    "note: the model was trained on other data ({}) than {} holds ({})",
                    short(trained_on),
                    data.dir.display(),
                    short(&here)
                );
            }
        }
        let (acc, confusion) = trainer.evaluate(&data.test);
        println!(
            "checkpoint {} (network {}, epoch {})",
            path.display(),
            trainer.recipe.network,
            trainer.epoch
        );
        println!("test accuracy {:.2}%\n{confusion}", acc * 100.0);
        return Ok(());
    }

    let mut trainer = match &args.resume {
        Some(path) => {
            let t = Trainer::from_checkpoint(Checkpoint::load(path)?)?;
            println!(
                "resuming {} at epoch {} (network {})",
                path.display(),
                t.epoch,
                t.recipe.network
            );
            t
        }
        None => {
            let mut recipe = args.net.unwrap_or(Network::A).recipe();
            if let Some(lr) = args.lr {
                recipe.lr = lr;
            }
            if let Some(b) = args.batch {
                recipe.batch = b;
            }
            if let Some(init) = args.init {
                recipe.init = init;
            }
            if let Some(hidden) = args.hidden {
                recipe.hidden = hidden;
            }
            if let Some(schedule) = args.schedule {
                recipe.schedule = schedule;
            }
            if let Some(wd) = args.weight_decay {
                recipe.weight_decay = wd;
            }
            if let Some(shift) = args.shift {
                recipe.shift = shift;
            }
            // A learning-rate schedule spans the run's epochs.
            if let Some(epochs) = args.epochs {
                recipe.epochs = epochs;
            }
            Trainer::new(recipe, args.seed)
        }
    };
    trainer.detect_anomaly = args.detect_anomaly;
    let epochs = args.epochs.unwrap_or(trainer.recipe.epochs);
    if let (Some(path), true) = (&args.resume, epochs <= trainer.epoch) {
        return Err(format!(
            "{} has trained {} epochs already, so {epochs} epochs in all leaves nothing to train: \
             pass a larger --epochs to continue, or --eval {} to evaluate it",
            path.display(),
            trainer.epoch,
            path.display()
        )
        .into());
    }
    let data = load_data()?;
    check_data(&data, &trainer, true)?;
    if let Some(batch) = args.batch.filter(|&b| b > data.train.len()) {
        // One step an epoch on the whole set, each a batch this large: not minibatch
        // training, and what looks like a working run learns next to nothing.
        return Err(format!(
            "--batch {batch} is more than the {} training images in {}: pass --batch {} or less",
            data.train.len(),
            data.dir.display(),
            data.train.len()
        )
        .into());
    }
    let identity = data_identity(&data.train);
    if let (Some(path), Some(trained_on)) = (&args.resume, &trainer.trained_on) {
        if *trained_on != identity {
            return Err(format!(
                "{} was trained on other data ({}) than {} holds ({}): resume it on its own data, or start a new run",
                path.display(),
                short(trained_on),
                data.dir.display(),
                short(&identity)
            )
            .into());
        }
    }
    trainer.trained_on = Some(identity.clone());
    let save = match &args.save {
        Some(path) => path.clone(),
        None => default_checkpoint(trainer.recipe.network, &identity)?,
    };
    if let Some((old, _)) = replaced(&save) {
        println!(
            "note: {} holds {old}; this run replaces it and keeps it as {} \
             (choose another file with --save PATH)",
            save.display(),
            previous_path(&save).display()
        );
    }
    let r = &trainer.recipe;
    println!(
        "network {}: {:?}, {} hidden, {} output, {} cost, {}, lr {} ({} schedule), batch {}, init {}, {}seed {}, {} parameters",
        r.network,
        r.sizes,
        r.hidden,
        r.output,
        trainer.recipe.cost().name(),
        trainer.optimizer.state().kind,
        r.lr,
        r.schedule,
        r.batch,
        r.init,
        [
            (r.weight_decay > 0.0).then(|| format!("weight decay {}, ", r.weight_decay)),
            (r.shift > 0).then(|| format!("inputs shifted up to {} px, ", r.shift)),
        ]
        .into_iter()
        .flatten()
        .collect::<String>(),
        trainer.seed,
        trainer.model.params().num_elements()
    );

    let style = ProgressStyle::with_template(
        "epoch {prefix:>3} [{bar:30}] {pos}/{len} batches, cost {msg} ({eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let (mut costs, mut accuracies) = (Vec::new(), Vec::new());
    while trainer.epoch < epochs {
        let bar = ProgressBar::new(data.train.num_batches(trainer.recipe.batch) as u64)
            .with_style(style.clone());
        bar.set_prefix((trainer.epoch + 1).to_string());
        let start = Instant::now();
        let stats = trainer.train_epoch(&data.train, |done, _, cost| {
            bar.set_position(done as u64);
            if done % 20 == 0 {
                bar.set_message(format!("{cost:.4}"));
            }
        });
        bar.finish_and_clear();
        let stats = stats?;
        let seconds = start.elapsed().as_secs_f64();
        let (acc, _) = trainer.evaluate(&data.test);
        costs.push(stats.mean_cost);
        accuracies.push(acc);
        println!(
            "epoch {:>3}  cost {:.5}  test accuracy {:6.2}%  {:.2}s",
            stats.epoch,
            stats.mean_cost,
            acc * 100.0,
            seconds
        );
    }
    let (accuracy, confusion) = trainer.evaluate(&data.test);
    println!(
        "\nfinal test accuracy {:.2}% after {} epochs",
        accuracy * 100.0,
        trainer.epoch
    );
    println!("confusion matrix (rows: true digit, columns: predicted)\n{confusion}");
    save_checkpoint(&trainer, &data, accuracy, &save)?;
    match write_pictures(&trainer, &data, &save, &costs, &accuracies, &confusion) {
        Ok(paths) => println!("pictures written: {}", paths.join(", ")),
        // The checkpoint is what matters; a picture that fails is reported, not fatal.
        Err(e) => eprintln!("warning: could not write the pictures: {e}"),
    }
    Ok(())
}

/// What the file at `path` holds before this run replaces it: one line about it and
/// its recorded test accuracy; `None` when there is no file.
fn replaced(path: &Path) -> Option<(String, Option<f64>)> {
    if !path.is_file() {
        return None;
    }
    Some(match Checkpoint::<f32>::load(path) {
        Ok(c) => {
            let accuracy = c.info.get("test_accuracy").and_then(|a| a.parse().ok());
            (c.summary(), accuracy)
        }
        Err(_) => (
            "a file that is not a checkpoint this demo can read".into(),
            None,
        ),
    })
}

/// Writes the trainer's checkpoint to `path` with the test accuracy and the data it was
/// trained on, keeping the file it replaces at `<path>.prev`, and says what it wrote
/// and what it replaced.
fn save_checkpoint(
    trainer: &Trainer,
    data: &Mnist,
    accuracy: f64,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let mut checkpoint = trainer.checkpoint();
    checkpoint
        .info
        .insert("test_accuracy".into(), format!("{accuracy:?}"));
    let dir = std::fs::canonicalize(&data.dir).unwrap_or_else(|_| data.dir.clone());
    checkpoint
        .info
        .insert("data_dir".into(), dir.display().to_string());
    // Read again now: the file may have changed while this run trained.
    let old = replaced(path);
    let kept = checkpoint.save_keeping_previous(path)?;
    println!(
        "checkpoint written to {}: {}",
        path.display(),
        checkpoint.summary()
    );
    if let (Some(prev), Some((old, old_accuracy))) = (kept, old) {
        println!(
            "it replaces {old}, kept as {} (to go back: mv {} {})",
            prev.display(),
            prev.display(),
            path.display()
        );
        if let Some(old_accuracy) = old_accuracy.filter(|&a| a > accuracy) {
            println!(
                "note: the replaced model's test accuracy was higher ({:.2}% against {:.2}%)",
                old_accuracy * 100.0,
                accuracy * 100.0
            );
        }
    }
    Ok(())
}

/// Writes, beside the checkpoint: the first layer's weights as 28x28 tiles, the
/// training curve, the confusion matrix and a grid of misclassified test digits.
fn write_pictures(
    trainer: &Trainer,
    data: &Mnist,
    checkpoint: &std::path::Path,
    costs: &[f64],
    accuracies: &[f64],
    confusion: &nn::ConfusionMatrix,
) -> Result<Vec<String>, backprop::pictures::PictureError> {
    use backprop::pictures;
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mnist".into());
    let dir = checkpoint
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let path = |suffix: &str| dir.join(format!("{stem}-{suffix}"));
    let mut written = Vec::new();
    if let Some(w) = trainer.model.params().get("layers.0.weight") {
        if w.shape()[0] == 784 {
            let p = path("weights.png");
            pictures::weight_tiles(&p, w, 4)?;
            written.push(p.display().to_string());
        }
    }
    if !costs.is_empty() {
        let p = path("training.svg");
        pictures::training_curve(&p, costs, accuracies)?;
        written.push(p.display().to_string());
    }
    let p = path("confusion.svg");
    pictures::confusion_matrix(&p, confusion)?;
    written.push(p.display().to_string());
    let mut wrong = Vec::new();
    let mut start = 0;
    while wrong.len() < 24 && start < data.test.len() {
        let batch = data.test.slice(start, start + 1000);
        let predicted = nn::argmax_rows(&trainer.model.predict(&batch.images));
        let features = data.test.features();
        for (k, (&p, &t)) in predicted.iter().zip(&batch.labels).enumerate() {
            if p != t && wrong.len() < 24 {
                wrong.push((
                    batch.images.data()[k * features..(k + 1) * features].to_vec(),
                    p,
                    t,
                ));
            }
        }
        start += 1000;
    }
    let p = path("misclassified.svg");
    pictures::misclassified(&p, &wrong, 8)?;
    written.push(p.display().to_string());
    Ok(written)
}
