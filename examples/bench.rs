//! The training benchmark: trains the networks of docs/networks.md on MNIST and prints, per
//! network, samples/s, the median epoch time, peak resident memory and the final test
//! accuracy (so a speed-up can never hide a broken result).
//!
//! cargo run --release --example bench -- --net all --epochs 3
//!
//! Each network's last line is machine-readable (`RESULT impl=backprop net=a ...`);
//! `bench/compare.sh` reads it beside the PyTorch reference's.
//!
//! With `--hvp` it times one Hessian-vector product of network B's cost at batch 128
//! instead (`autodiff::func::hvp`, forward pass included) and prints a `RESULT` line
//! with the median time and a `CHECK` line with the HVP's norm; `bench/transform.sh hvp` reads
//! them beside `bench/reference/torch_hvp.py`'s.
//!
//! With `--per-sample` it times per-sample gradients of network B at batch 128 (every
//! parameter's gradient for each example, `autodiff::func::per_sample`, forward pass
//! included), batched and as a loop of single-example backward passes, and prints a
//! `RESULT` line for each and a `CHECK` line with the gradients' norm;
//! `bench/transform.sh per-sample` reads them beside `bench/reference/torch_per_sample.py`'s.
//!
//! With `--steps N --batch B` it times N training steps of one network on fixed
//! batches of B training images instead of epochs, and reports the median step time and
//! the peak resident memory of the steps above what the process held before them and
//! the bytes of values the forward pass leaves on the tape;
//! `--recompute` runs blocks of layers recomputed during backward (gradient
//! checkpointing, `nn::Model::recompute`). `bench/recompute.sh` runs both ways.

use autodiff::{Float, Profile, Tape, Tensor, Var};
use clap::{Parser, ValueEnum};
use nn::{Cost, Mnist, Module, Network, NnError, Trainer};
use std::f64::consts::TAU;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/cli.rs"]
mod cli;
use cli::{measure_peak, peak_rss_mib, print_profile, roofline};

#[derive(Parser, Debug)]
#[command(about = "Time training epochs of the standard MNIST networks")]
struct Args {
    /// a, b, c, d or all.
    #[arg(long, default_value = "all")]
    net: String,
    /// Epochs per network (the median epoch time is reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Threads for large matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed for initialisation and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory holding the MNIST files (default: $MNIST_DIR or the cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the directory the data would be read from (fetching it if needed), then exit.
    #[arg(long)]
    locate_data: bool,
    /// Time one Hessian-vector product of network B's cost on the first 128 training
    /// images (forward pass included) instead of training.
    #[arg(long, group = "transform", conflicts_with_all = ["net", "epochs", "seed"])]
    hvp: bool,
    /// Time per-sample gradients of network B's cost on the first 128 training images
    /// (forward pass included), batched and as a loop over the examples, instead of
    /// training.
    #[arg(long, group = "transform", conflicts_with_all = ["net", "epochs", "seed"])]
    per_sample: bool,
    /// With --hvp or --per-sample: timed repetitions (the median is reported).
    #[arg(long, requires = "transform", default_value = "200")]
    reps: NonZeroUsize,
    /// With --hvp or --per-sample: untimed repetitions first.
    #[arg(long, requires = "transform", default_value_t = 50)]
    warmup: usize,
    /// Time this many training steps on fixed batches instead of epochs (one network).
    #[arg(long, conflicts_with_all = ["transform", "epochs"])]
    steps: Option<NonZeroUsize>,
    /// With --steps: images per batch (default: the recipe's).
    #[arg(long, requires = "steps")]
    batch: Option<NonZeroUsize>,
    /// With --steps: recompute blocks of layers during backward, given as layer ranges
    /// of `nn::Model::recompute` such as `1..4,4..7` (`default`: LeNet's two
    /// convolution stages, or every hidden layer of a perceptron).
    #[arg(long, requires = "steps")]
    recompute: Option<String>,
    /// With --steps: time every op of the steps (forward and vjp, by op name), the
    /// optimizer and what is left (the tape's bookkeeping, gradient accumulation), and
    /// print the table; with --hvp, the same for the Hessian-vector products (the cost,
    /// its recorded gradient and the backward pass of its dot product with v). Timing
    /// each op costs a little: leave it off for speed figures.
    #[arg(long, conflicts_with = "per_sample")]
    profile: bool,
    /// With --hvp or --per-sample: the precision (f32 as in training; f64 to check the
    /// result's norm).
    #[arg(long, requires = "transform", value_enum, default_value = "f32")]
    dtype: Dtype,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dtype {
    F32,
    F64,
}

/// Resets the peak-RSS counter so each network is measured on its own (Linux >= 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), NnError> {
    if args.locate_data {
        println!("{}", Mnist::locate(args.data_dir.as_deref())?.display());
        return Ok(());
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if args.profile && !args.hvp && args.steps.is_none() {
        return Err(NnError::Data(
            "--profile times the ops of --steps or --hvp: give one of them".into(),
        ));
    }
    autodiff::with_threads(threads, || {
        if args.hvp || args.per_sample {
            transform_bench(&args, threads)
        } else if let Some(steps) = args.steps {
            step_bench(&args, steps.get(), threads)
        } else {
            train_all(&args, threads)
        }
    })
}

fn train_all(args: &Args, threads: usize) -> Result<(), NnError> {
    let networks: Vec<Network> = match args.net.as_str() {
        "all" => vec![Network::A, Network::B, Network::C, Network::D],
        one => vec![one.parse().map_err(NnError::Data)?],
    };
    let data = Mnist::load(args.data_dir.as_deref())?;
    let dataset_mib = ((data.train.len() + data.test.len()) * data.train.features()) as f64 * 4.0
        / (1024.0 * 1024.0);
    println!(
        "MNIST as f32: {dataset_mib:.1} MiB; {threads} thread(s); {} epoch(s) per network",
        args.epochs
    );
    let peak = measure_peak(threads);
    for network in networks {
        reset_peak_rss();
        let flops = network.recipe().model(args.seed).flops_per_example();
        let mut trainer = Trainer::new(network.recipe(), args.seed);
        let mut times = Vec::new();
        for _ in 0..args.epochs.max(1) {
            let start = Instant::now();
            let stats = trainer.train_epoch(&data.train, |_, _, _| {})?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "net {network} epoch {} {:.3}s cost {:.5}",
                stats.epoch, secs, stats.mean_cost
            );
            times.push(secs);
        }
        let (accuracy, _) = trainer.evaluate(&data.test);
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let samples_per_s = data.train.len() as f64 / median;
        let rss = peak_rss_mib().unwrap_or(f64::NAN);
        println!(
            "RESULT impl=backprop net={network} threads={threads} epochs={} samples_per_s={samples_per_s:.0} median_epoch_s={median:.4} peak_rss_mib={rss:.1} accuracy={:.4} {}",
            times.len(),
            accuracy,
            roofline(flops, samples_per_s, peak)
        );
    }
    Ok(())
}

/// Resident memory now, in MiB (Linux).
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// `a..b,c..d` as ranges; `default` as the blocks `--recompute` documents.
fn parse_blocks(spec: &str, network: Network, layers: usize) -> Result<Vec<Range<usize>>, NnError> {
    if spec == "default" {
        return Ok(match network {
            Network::D => vec![1..4, 4..7],
            _ => std::iter::once(0..layers - 1).collect(),
        });
    }
    spec.split(',')
        .map(|r| {
            let (a, b) = r
                .split_once("..")
                .ok_or_else(|| NnError::Data(format!("--recompute: {r:?} is not a range a..b")))?;
            let parse = |s: &str| {
                s.trim()
                    .parse::<usize>()
                    .map_err(|e| NnError::Data(format!("--recompute: {r:?}: {e}")))
            };
            Ok(parse(a)?..parse(b)?)
        })
        .collect()
}

fn step_bench(args: &Args, steps: usize, threads: usize) -> Result<(), NnError> {
    let network: Network = args.net.parse().map_err(NnError::Data)?;
    let recipe = network.recipe();
    let batch = args.batch.map_or(recipe.batch, NonZeroUsize::get);
    let train = Mnist::load(args.data_dir.as_deref())?.train;
    // A few distinct batches, cycled: the timing sees real data, the memory no data set
    // beyond them.
    let batches: Vec<_> = (0..steps.min(4))
        .map(|b| {
            let indices: Vec<usize> = (0..batch).map(|i| (b * batch + i) % train.len()).collect();
            train.gather(&indices)
        })
        .collect();
    drop(train);
    let mut model = recipe.model(args.seed);
    // Counted before blocks are made recomputed: their products go on blocks' own tapes.
    let flops = model.flops_per_example();
    let blocks = match &args.recompute {
        Some(spec) => parse_blocks(spec, network, model.sizes().map_or(0, |s| s.len() - 1))?,
        None => Vec::new(),
    };
    model = model.recompute(&blocks);
    let cost = recipe.cost();
    let mut optimizer = recipe.optimizer();
    let peak = measure_peak(threads);
    let baseline = rss_mib().unwrap_or(f64::NAN);
    reset_peak_rss();
    let mut times = Vec::with_capacity(steps);
    let mut last = 0.0;
    let mut tape_mib = 0.0;
    let mut profile = Profile::default();
    let mut optimizer_s = 0.0;
    for step in 0..steps {
        let batch = &batches[step % batches.len()];
        let start = Instant::now();
        let grads = {
            let tape = Tape::new();
            tape.set_profiling(args.profile);
            let bound = model.params().bind(&tape).train(nn::step_seed(1, step));
            let out = model.forward(&bound, tape.constant(&batch.images));
            let c = Cost::cost(&cost, out, &batch.labels);
            last = c.item();
            // What the forward pass left on the tape for backward.
            tape_mib = tape.value_bytes() as f64 / (1024.0 * 1024.0);
            // With or without recomputed blocks, each value is dropped once the reverse
            // sweep has passed it (the trainer keeps them: docs/performance.md).
            let grads = bound.grads(c.backward_releasing())?;
            // The first step also sizes the allocator's pools, as below.
            if step > 0 {
                profile.merge(&tape.profile());
            }
            grads
        };
        let optimizer_start = Instant::now();
        optimizer.step(model.params_mut(), &grads)?;
        if step > 0 {
            optimizer_s += optimizer_start.elapsed().as_secs_f64();
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    if args.profile {
        let profiled = &times[1.min(times.len() - 1)..];
        print_profile(
            &profile,
            Some(optimizer_s),
            profiled.iter().sum::<f64>() / 1e3,
            (profiled.len(), "step"),
        );
    }
    let peak_rss = peak_rss_mib().unwrap_or(f64::NAN);
    // The first step also sizes the allocator's pools: the median leaves it out.
    let mut timed = times[times.len().min(1)..].to_vec();
    if timed.is_empty() {
        timed = times;
    }
    timed.sort_by(f64::total_cmp);
    let median = timed[timed.len() / 2];
    let blocks: Vec<String> = blocks
        .iter()
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    println!(
        "RESULT impl=backprop net={network} op=step batch={batch} threads={threads} steps={steps} recompute={} median_ms={median:.2} min_ms={:.2} peak_rss_mib={peak_rss:.1} baseline_rss_mib={baseline:.1} step_peak_mib={:.1} tape_mib={tape_mib:.1} cost={last:.5} {}",
        if blocks.is_empty() { "none".to_string() } else { blocks.join(",") },
        timed[0],
        peak_rss - baseline,
        roofline(flops, batch as f64 * 1e3 / median, peak),
    );
    Ok(())
}

/// Network B's widths (docs/networks.md) and the batch of the HVP benchmark.
const HVP_SIZES: [usize; 4] = [784, 128, 128, 10];
const HVP_BATCH: usize = 128;

fn transform_bench(args: &Args, threads: usize) -> Result<(), NnError> {
    let train = Mnist::load(args.data_dir.as_deref())?.train;
    let pixels = &train.pixels()[..HVP_BATCH * train.features()];
    let labels = &train.labels[..HVP_BATCH];
    match (args.per_sample, args.dtype) {
        (false, Dtype::F32) => time_hvp::<f32>(pixels, labels, args, threads, "f32"),
        (false, Dtype::F64) => time_hvp::<f64>(pixels, labels, args, threads, "f64"),
        (true, Dtype::F32) => time_per_sample::<f32>(pixels, labels, args, threads, "f32"),
        (true, Dtype::F64) => time_per_sample::<f64>(pixels, labels, args, threads, "f64"),
    }
    Ok(())
}

/// The median and the fastest of `reps` timed calls of `f` (ms) after `warmup` untimed
/// ones; each result is dropped inside its timing, as in the references.
fn time_calls<R>(args: &Args, mut f: impl FnMut() -> R) -> (f64, f64) {
    for _ in 0..args.warmup {
        black_box(f());
    }
    let mut times: Vec<f64> = (0..args.reps.get())
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

/// Network B's cost on one batch, each layer `x W + b` with `W` stored `[inputs,
/// outputs]`, in the tape's plain ops (as the PyTorch reference writes it).
fn network_b_cost<'t, T: Float>(
    tape: &'t Tape<T>,
    params: &[Var<'t, T>],
    x: &Tensor<T>,
    labels: &[usize],
) -> Var<'t, T> {
    let layers = params.len() / 2;
    let mut a = tape.constant(x);
    for l in 0..layers {
        a = a.matmul(params[2 * l]) + params[2 * l + 1];
        if l + 1 < layers {
            a = a.relu();
        }
    }
    a.cross_entropy(labels)
}

/// Pixel / 255 rounded once to T, as the references do (the nn crate's batches multiply
/// by 1/255 in f32, which an f64 check would see).
fn pixels_as<T: Float>(pixels: &[u8], labels: &[usize]) -> Tensor<T> {
    Tensor::from_vec(
        pixels
            .iter()
            .map(|&p| T::from_f64(f64::from(p) / 255.0))
            .collect(),
        [labels.len(), pixels.len() / labels.len()],
    )
}

fn time_hvp<T: Float>(pixels: &[u8], labels: &[usize], args: &Args, threads: usize, dtype: &str) {
    let x = pixels_as::<T>(pixels, labels);
    let (params, v) = hvp_parameters::<T>();
    let hvp = || autodiff::func::hvp(|tape, p| network_b_cost(tape, p, &x, labels), &params, &v);
    // What `func::hvp` records: the cost, its gradient recorded, and the gradient's dot
    // product with v, whose backward pass is the HVP.
    let record = |tape: &Tape<T>| {
        let vars: Vec<_> = params.iter().map(|p| tape.param(p)).collect();
        let g = network_b_cost(tape, &vars, &x, labels).grad(&vars);
        let zero = tape.constant(Tensor::scalar(T::zero()));
        g.iter()
            .zip(&v)
            .fold(zero, |s, (g, v)| s + (*g * tape.constant(v)).sum())
            .backward()
    };
    if args.profile {
        let mut profile = Profile::default();
        let start = Instant::now();
        for _ in 0..args.reps.get() {
            let tape = Tape::new();
            tape.set_profiling(true);
            black_box(record(&tape));
            profile.merge(&tape.profile());
        }
        print_profile(
            &profile,
            None,
            start.elapsed().as_secs_f64(),
            (args.reps.get(), "HVP"),
        );
    }
    let (median, min) = time_calls(args, hvp);

    let hv = hvp();
    let norm = hv
        .iter()
        .flat_map(|t| t.data())
        .map(|e| e.as_f64() * e.as_f64())
        .sum::<f64>()
        .sqrt();
    let tape = Tape::new();
    let vars: Vec<_> = params.iter().map(|p| tape.constant(p)).collect();
    let loss = network_b_cost(&tape, &vars, &x, labels).item().as_f64();
    // The arithmetic of the reference's double backward: the cost, its gradient recorded,
    // and the backward pass of the gradient's dot product with v.
    let flops = {
        let tape = Tape::new();
        record(&tape);
        tape.flops()
    };
    let peak = measure_peak(threads);
    let common =
        format!("impl=backprop net=b op=hvp batch={HVP_BATCH} threads={threads} dtype={dtype}");
    println!(
        "RESULT {common} reps={} median_ms={median:.4} min_ms={min:.4} {}",
        args.reps,
        roofline(flops, 1e3 / median, peak)
    );
    println!("CHECK {common} loss={loss} hvp_norm={norm}");
}

/// Network B's cross-entropy for each example of a batch (`batch[0]` the images,
/// `batch[1]` one-hot labels), one `x W + b` op a layer with the ReLU fused in.
fn network_b_per_example<'t, T: Float>(
    _: &'t Tape<T>,
    params: &[Var<'t, T>],
    batch: &[Var<'t, T>],
) -> Var<'t, T> {
    let layers = params.len() / 2;
    let mut a = batch[0];
    for l in 0..layers {
        let (w, b) = (params[2 * l], params[2 * l + 1]);
        a = if l + 1 < layers {
            a.linear_relu(w, b)
        } else {
            a.linear(w, b)
        };
    }
    -(a.log_softmax(1) * batch[1]).sum_axes(&[1], false)
}

fn time_per_sample<T: Float>(
    pixels: &[u8],
    labels: &[usize],
    args: &Args,
    threads: usize,
    dtype: &str,
) {
    use autodiff::func::{per_sample, PerSamplePath};
    let batch = [
        pixels_as::<T>(pixels, labels),
        nn::one_hot(labels, HVP_SIZES[HVP_SIZES.len() - 1]),
    ];
    let (params, _) = hvp_parameters::<T>();
    let common = format!("net=b op=per_sample batch={HVP_BATCH} threads={threads} dtype={dtype}");
    // The arithmetic of a training step on the batch: each example's weight gradients are
    // the batch's weight-gradient products cut by example.
    let flops = {
        let tape = Tape::new();
        let vars: Vec<_> = params.iter().map(|p| tape.param(p)).collect();
        let inputs: Vec<_> = batch.iter().map(|b| tape.constant(b)).collect();
        let _ = network_b_per_example(&tape, &vars, &inputs);
        tape.flops()
    };
    let peak = measure_peak(threads);
    for (name, path) in [
        ("backprop", PerSamplePath::Batched),
        ("backprop-loop", PerSamplePath::Loop),
    ] {
        let run = || per_sample(network_b_per_example, &params, &batch, path);
        let (median, min) = time_calls(args, run);
        let result = run();
        let norm = result
            .grads
            .iter()
            .flat_map(|t| t.data())
            .map(|e| e.as_f64() * e.as_f64())
            .sum::<f64>()
            .sqrt();
        let loss = result.losses.data().iter().map(|l| l.as_f64()).sum::<f64>() / HVP_BATCH as f64;
        println!(
            "RESULT impl={name} {common} reps={} median_ms={median:.4} min_ms={min:.4} {}",
            args.reps,
            roofline(flops, 1e3 / median, peak)
        );
        println!("CHECK impl={name} {common} loss={loss} grads_norm={norm}");
    }
    // The floor for any method that hands back every example's gradients: writing a
    // result of that size once (one thread, memory the allocator has handed out before).
    let total = HVP_BATCH * params.iter().map(Tensor::numel).sum::<usize>();
    let (median, min) = time_calls(args, || vec![T::one(); total]);
    println!(
        "RESULT impl=write-floor {common} reps={} median_ms={median:.4} min_ms={min:.4}",
        args.reps
    );
}

/// The HVP's parameters and direction, drawn as bench/reference/torch_hvp.py draws them
/// so that the two sides' norms compare: weight `l` from stream `2l` scaled by
/// `sqrt(2/fan_in)` (He), biases zero, the direction for parameter `p` (W1, b1, W2, b2,
/// W3, b3) from stream `100 + p`.
fn hvp_parameters<T: Float>() -> (Vec<Tensor<T>>, Vec<Tensor<T>>) {
    let tensor = |values: Vec<f64>, shape: &[usize]| {
        Tensor::from_vec(values.into_iter().map(T::from_f64).collect(), shape)
    };
    let mut params = Vec::new();
    for (l, w) in HVP_SIZES.windows(2).enumerate() {
        let scale = (2.0 / w[0] as f64).sqrt();
        let weight = normals(2 * l as u64, w[0] * w[1]);
        params.push(tensor(weight.into_iter().map(|z| z * scale).collect(), w));
        params.push(Tensor::zeros([w[1]]));
    }
    let v = params
        .iter()
        .enumerate()
        .map(|(p, t)| tensor(normals(100 + p as u64, t.numel()), t.shape()))
        .collect();
    (params, v)
}

/// `n` standard normals by Box-Muller from pairs of SplitMix64 draws started from state
/// `stream`, each draw mapped to `u = (top 53 bits + 1) / 2^53` in (0, 1].
fn normals(stream: u64, n: usize) -> Vec<f64> {
    let mut state = stream;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
        })
        .collect()
}
