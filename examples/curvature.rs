//! The curvature of a trained network's cost: the largest eigenvalues of the Hessian of
//! the training cost with respect to every parameter (13,002 for network A), found by
//! Lanczos iteration on Hessian-vector products (`autodiff::func::hvp`, reverse over
//! reverse) without ever forming the 13,002 x 13,002 matrix; then the cost along the
//! top eigenvector and along a random direction, drawn beside the checkpoint.
//!
//! The cost is the network's own (quadratic for A, cross-entropy for B and C) averaged
//! over the first `--batch` training images, computed in f64 from the checkpoint's f32
//! parameters.
//!
//! cargo run --release --example mnist                        # writes the checkpoint
//! cargo run --release --example curvature -- --checkpoint checkpoints/mnist-a.safetensors

use autodiff::func::{hvp, value_and_grad};
use autodiff::{Tape, Tensor, Var};
use clap::Parser;
use nn::{Checkpoint, Cost, CrossEntropy, MeanSquaredError, Model, Module, Network, Quadratic};
use nn::{Mnist, NnError, Target, Trainer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "common/cli.rs"]
mod cli;
use cli::at_least_one;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    about = "The largest eigenvalues of a trained network's cost Hessian (Lanczos on Hessian-vector products), and the cost along the top eigenvector"
)]
pub struct Args {
    /// A checkpoint of a perceptron (network a, b or c) written by the mnist example.
    #[arg(long, default_value = "checkpoints/mnist-a.safetensors")]
    pub checkpoint: PathBuf,
    /// Training images the cost averages over (the first N), at least 1.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one, allow_negative_numbers = true)]
    pub batch: usize,
    /// How many of the largest eigenvalues to find, at least 1.
    #[arg(long, default_value_t = 5, value_parser = at_least_one, allow_negative_numbers = true)]
    pub top: usize,
    /// How many of the smallest (most negative) eigenvalues must converge too; 0 stops
    /// as soon as the largest have (the smallest Ritz value is still printed).
    #[arg(long, default_value_t = 1, value_parser = count, allow_negative_numbers = true)]
    pub bottom: usize,
    /// Most Lanczos steps (one Hessian-vector product each), at least --top plus --bottom.
    #[arg(long, default_value_t = 200, value_parser = at_least_one, allow_negative_numbers = true)]
    pub iters: usize,
    /// An eigenvalue counts as found when its residual |Hx - λx| is at most this times
    /// the largest |λ|: a number in (0, 1).
    #[arg(long, default_value_t = 1e-6, value_parser = tolerance, allow_hyphen_values = true)]
    pub tol: f64,
    /// Seed of Lanczos's start vector and of the random direction.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The picture's steps run over t in [-span, span], a finite number above 0 (default:
    /// where the quadratic model along the top eigenvector rises by four times the cost).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub span: Option<f64>,
    /// Where to write the picture, an .svg file (default: beside the checkpoint,
    /// <name>.curvature.svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Directory holding the four MNIST IDX files (raw or .gz); default $MNIST_DIR or the cache.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Threads for large matrix products, at least 1 (default: all cores).
    #[arg(long, value_parser = at_least_one, allow_negative_numbers = true)]
    pub threads: Option<usize>,
}

/// A count that may be 0.
fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 0 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!("{n} is not a count (0 or more)")),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// A finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!("{x} is not a finite number above 0")),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A relative tolerance: above 0 and below 1.
fn tolerance(s: &str) -> Result<f64, String> {
    let x = positive(s)?;
    if x < 1.0 {
        Ok(x)
    } else {
        Err(format!("{x} is not a relative tolerance below 1"))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
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

/// The cost of `model` on a batch as a function of all its parameters, one tape value
/// per parameter tensor in store order: what `func::hvp` differentiates twice.
pub fn batch_cost<'a>(
    model: &'a Model<f64>,
    cost: &'a dyn Cost<f64>,
    images: &'a Tensor<f64>,
    labels: &'a [usize],
) -> impl for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64> + Copy + 'a {
    move |tape, params| {
        let bound = model.params().bind_vars(params);
        let output = model.forward(&bound, tape.constant(images));
        cost.cost_of(output, Target::Labels(labels))
    }
}

/// `f` at `params`, recorded with the parameters as constants (no gradient state).
pub fn value_at(
    f: impl for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
    params: &[Tensor<f64>],
) -> f64 {
    let tape = Tape::new();
    let vars: Vec<_> = params.iter().map(|p| tape.constant(p)).collect();
    f(&tape, &vars).item()
}

/// The shapes of a list of tensors, to move between them and one flat vector.
pub struct Layout {
    shapes: Vec<Vec<usize>>,
}

impl Layout {
    /// The layout of `tensors`.
    pub fn of(tensors: &[Tensor<f64>]) -> Self {
        Layout {
            shapes: tensors.iter().map(|t| t.shape().to_vec()).collect(),
        }
    }

    /// The number of elements in all.
    pub fn numel(&self) -> usize {
        self.shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// Cuts a flat vector into tensors of this layout.
    pub fn split(&self, flat: &[f64]) -> Vec<Tensor<f64>> {
        assert_eq!(flat.len(), self.numel(), "Layout::split: wrong length");
        let mut at = 0;
        self.shapes
            .iter()
            .map(|shape| {
                let n = shape.iter().product::<usize>();
                at += n;
                Tensor::from_vec(flat[at - n..at].to_vec(), shape)
            })
            .collect()
    }

    /// The tensors' elements one after another.
    pub fn join(tensors: &[Tensor<f64>]) -> Vec<f64> {
        tensors
            .iter()
            .flat_map(|t| t.data().iter().copied())
            .collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `a += s b`.
fn axpy(a: &mut [f64], s: f64, b: &[f64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += s * y;
    }
}

/// A unit vector in a uniformly random direction.
pub fn random_unit(n: usize, rng: &mut StdRng) -> Vec<f64> {
    let mut v = Tensor::<f64>::randn([n], rng).into_vec();
    let length = norm(&v);
    if length > 0.0 {
        v.iter_mut().for_each(|x| *x /= length);
    }
    v
}

/// The eigenvalues (ascending) and unit eigenvectors (`vectors[k]` belongs to
/// `values[k]`) of the symmetric tridiagonal matrix with diagonal `alpha` and
/// off-diagonal `beta` (`beta[i]` joins rows i and i+1): the implicit QL algorithm
/// with Wilkinson-style shifts (EISPACK's tql2).
pub fn tridiagonal_eigen(alpha: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = alpha.len();
    assert!(
        n == 0 || beta.len() + 1 >= n,
        "tridiagonal_eigen: {} off-diagonal values for {n} rows",
        beta.len()
    );
    let mut d = alpha.to_vec();
    let mut e: Vec<f64> = (0..n)
        .map(|i| if i + 1 < n { beta[i] } else { 0.0 })
        .collect();
    // z[k * n + i]: component k of eigenvector i.
    let mut z = vec![0.0; n * n];
    for i in 0..n {
        z[i * n + i] = 1.0;
    }
    let (mut f, mut tst1) = (0.0f64, 0.0f64);
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n && e[m].abs() > f64::EPSILON * tst1 {
            m += 1;
        }
        if m > l {
            // 30 sweeps suffice in practice (convergence is cubic); the cap only keeps
            // a NaN from looping for ever.
            for _ in 0..60 {
                let g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let (mut c, mut c2, mut c3) = (1.0, 1.0, 1.0);
                let el1 = e[l + 1];
                let (mut s, mut s2) = (0.0, 0.0);
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    let g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..n {
                        let h = z[k * n + i + 1];
                        z[k * n + i + 1] = s * z[k * n + i] + c * h;
                        z[k * n + i] = c * z[k * n + i] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= f64::EPSILON * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].total_cmp(&d[b]));
    let values = order.iter().map(|&i| d[i]).collect();
    let vectors = order
        .iter()
        .map(|&i| (0..n).map(|k| z[k * n + i]).collect())
        .collect();
    (values, vectors)
}

/// What [`lanczos`] looks for.
#[derive(Clone, Debug)]
pub struct LanczosOptions {
    /// How many of the largest eigenvalues must converge.
    pub top: usize,
    /// How many of the smallest (most negative) must converge too (0: none).
    pub bottom: usize,
    /// Most steps (matrix-vector products).
    pub max_steps: usize,
    /// Converged: residual at most `tol` times the largest |eigenvalue| found.
    pub tol: f64,
    /// Seed of the start vector (and of any restart).
    pub seed: u64,
}

/// An approximate eigenvalue and the norm of its residual `|A x - θ x|`, which bounds
/// its distance to an eigenvalue of `A`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ritz {
    /// The Ritz value θ.
    pub value: f64,
    /// `|A x - θ x|` for its unit Ritz vector x.
    pub residual: f64,
}

/// What [`lanczos`] found.
#[derive(Clone, Debug)]
pub struct Spectrum {
    /// The largest eigenvalues, largest first (up to `top` of them).
    pub top: Vec<Ritz>,
    /// The smallest (most negative) eigenvalues, smallest first (as many as `top` or
    /// `bottom` asked for, whichever is more; check their residuals).
    pub bottom: Vec<Ritz>,
    /// The unit eigenvector of `top[0]`.
    pub top_vector: Vec<f64>,
    /// Steps taken, one matrix-vector product each.
    pub steps: usize,
    /// Whether every eigenvalue asked for (`top` largest, `bottom` smallest) converged.
    pub converged: bool,
}

/// Where [`lanczos`] stands after a step, for progress reports.
pub struct LanczosStep<'a> {
    /// Steps taken.
    pub step: usize,
    /// The current largest Ritz values, largest first.
    pub top: &'a [Ritz],
    /// The current smallest Ritz value.
    pub bottom: Ritz,
    /// How many of `top` have converged.
    pub converged: usize,
    /// How many of the `bottom` smallest asked for have converged.
    pub bottom_converged: usize,
    /// Whether this is the last step.
    pub last: bool,
}

/// The largest and smallest eigenvalues of the symmetric `n x n` matrix `A` that
/// `matvec` multiplies by, by the Lanczos iteration with full reorthogonalisation:
/// step j adds `A q_j` to a Krylov basis, orthogonalised (twice, so the basis stays
/// orthonormal to rounding) against every earlier basis vector; the eigenvalues of the
/// small tridiagonal matrix `T = Qᵀ A Q` (the Ritz values) approach both ends of the
/// spectrum first. Stops when the `top` largest and `bottom` smallest have residuals
/// within `tol`, after `max_steps`, or when the basis spans everything. If the Krylov space closes early
/// (an invariant subspace), it continues from a fresh random vector orthogonal to it.
/// `on_step` sees every step.
pub fn lanczos(
    n: usize,
    mut matvec: impl FnMut(&[f64]) -> Vec<f64>,
    options: &LanczosOptions,
    mut on_step: impl FnMut(&LanczosStep<'_>),
) -> Spectrum {
    let top = options.top.max(1).min(n);
    let bottom = options.bottom.min(n);
    let max_steps = options.max_steps.min(n);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let (mut alpha, mut beta) = (Vec::new(), Vec::<f64>::new());
    let mut q = random_unit(n, &mut rng);
    let mut scale = 0.0f64;
    let mut found = (Vec::new(), Vec::new(), Vec::new());
    let mut converged = false;
    while alpha.len() < max_steps {
        let mut w = matvec(&q);
        assert_eq!(w.len(), n, "lanczos: matvec returned the wrong length");
        let a = dot(&q, &w);
        axpy(&mut w, -a, &q);
        if let (Some(&b), Some(previous)) = (beta.last(), basis.last()) {
            axpy(&mut w, -b, previous);
        }
        basis.push(q);
        alpha.push(a);
        for _ in 0..2 {
            for v in &basis {
                let c = dot(v, &w);
                axpy(&mut w, -c, v);
            }
        }
        let b = norm(&w);
        scale = scale.max(a.abs() + b + beta.last().map_or(0.0, |x: &f64| x.abs()));
        let (values, vectors) = tridiagonal_eigen(&alpha, &beta);
        let m = values.len();
        // |A Q y - θ Q y| = b |y_last| (the Lanczos relation A Q = Q T + b q eᵀ).
        let ritz = |k: usize| Ritz {
            value: values[k],
            residual: b * vectors[k][m - 1].abs(),
        };
        let largest: Vec<Ritz> = (0..top.min(m)).map(|k| ritz(m - 1 - k)).collect();
        let smallest: Vec<Ritz> = (0..top.max(bottom).min(m)).map(ritz).collect();
        let size = values
            .first()
            .map_or(0.0, |v| v.abs())
            .max(values.last().map_or(0.0, |v| v.abs()));
        let found_within = |rs: &[Ritz]| {
            rs.iter()
                .filter(|r| r.residual <= options.tol * size)
                .count()
        };
        let done = found_within(&largest);
        let done_bottom = found_within(&smallest[..bottom.min(m)]);
        // A closed Krylov space has exact Ritz values, but perhaps not the largest ones
        // (the start vector may miss an eigenvector): those are only final with the
        // space continued, or complete.
        let closed = b <= 1e-10 * scale;
        let all = done == top && done_bottom == bottom && m >= (top + bottom).min(n);
        converged = (!closed && all) || m == n;
        on_step(&LanczosStep {
            step: m,
            top: &largest,
            bottom: smallest[0],
            converged: if closed { 0 } else { done },
            bottom_converged: if closed { 0 } else { done_bottom },
            last: converged || m == max_steps,
        });
        found = (largest, smallest, vectors[m - 1].clone());
        if converged {
            break;
        }
        if closed {
            w = random_unit(n, &mut rng);
            for _ in 0..2 {
                for v in &basis {
                    let c = dot(v, &w);
                    axpy(&mut w, -c, v);
                }
            }
            let length = norm(&w);
            w.iter_mut().for_each(|x| *x /= length);
            beta.push(0.0);
        } else {
            w.iter_mut().for_each(|x| *x /= b);
            beta.push(b);
        }
        q = w;
    }
    let (top_values, bottom_values, y) = found;
    let mut top_vector = vec![0.0; n];
    for (v, &c) in basis.iter().zip(&y) {
        axpy(&mut top_vector, c, v);
    }
    let length = norm(&top_vector);
    if length > 0.0 {
        top_vector.iter_mut().for_each(|x| *x /= length);
    }
    Spectrum {
        top: top_values,
        bottom: bottom_values,
        top_vector,
        steps: alpha.len(),
        converged,
    }
}

/// The network of a checkpoint as a function of its parameters, in f64.
pub struct Network64 {
    /// Which of the standard networks.
    pub network: Network,
    /// The model, parameters in f64.
    pub model: Model<f64>,
    /// Its training cost.
    pub cost: Box<dyn Cost<f64>>,
    /// Epochs it was trained for.
    pub epoch: usize,
    /// One line about the checkpoint: network, epochs, test accuracy, data.
    pub about: String,
}

/// How to get a checkpoint this example can read.
const TRAIN_ONE: &str =
    "train one with `cargo run --release --example mnist` (network a; --net b or c for the others)";

/// Reads a perceptron's checkpoint (networks a, b, c) into f64, refusing other kinds
/// with a message that names the file and says how to write one.
pub fn load_network(path: &Path) -> Result<Network64, Box<dyn Error>> {
    if !path.exists() {
        return Err(format!(
            "no checkpoint at {}: {TRAIN_ONE}, or pass --checkpoint PATH",
            path.display()
        )
        .into());
    }
    let explain = |e: NnError| {
        format!("{e}\n(this example reads the checkpoints the mnist example writes: {TRAIN_ONE})")
    };
    let checkpoint = Checkpoint::<f32>::load(path).map_err(explain)?;
    let about = checkpoint.summary();
    let trainer = Trainer::from_checkpoint(checkpoint).map_err(explain)?;
    let recipe = &trainer.recipe;
    if recipe.network == Network::D {
        return Err(format!(
            "{} holds network d (LeNet-5, convolutional); this example reads the perceptrons a, b and c: {TRAIN_ONE}",
            path.display()
        )
        .into());
    }
    let cost: Box<dyn Cost<f64>> = match recipe.cost().name() {
        "quadratic" => Box::new(Quadratic),
        "cross-entropy" => Box::new(CrossEntropy),
        "mse" => Box::new(MeanSquaredError),
        other => {
            return Err(format!(
                "{}: network {} trains on a cost this example does not know ({other})",
                path.display(),
                recipe.network
            )
            .into())
        }
    };
    let mut model = Model::<f64>::new(&recipe.sizes, recipe.hidden, recipe.output, recipe.init, 0);
    let mut store = nn::ParamStore::new();
    for (name, value) in trainer.model.params().iter() {
        store.insert(name, value.cast::<f64>());
    }
    model.params_mut().assign_from(store).map_err(|m| {
        format!(
            "{}: does not fit network {}: {m}",
            path.display(),
            recipe.network
        )
    })?;
    Ok(Network64 {
        network: recipe.network,
        model,
        cost,
        epoch: trainer.epoch,
        about,
    })
}

/// Where the picture goes without `--out`: beside the checkpoint, `<stem>.curvature.svg`.
pub fn default_picture(checkpoint: &Path) -> PathBuf {
    let stem = checkpoint
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "network".into());
    checkpoint.with_file_name(format!("{stem}.curvature.svg"))
}

/// Refuses what cannot mean anything before anything is read.
fn check_args(args: &Args) -> Result<(), String> {
    if args.iters < args.top + args.bottom {
        return Err(format!(
            "--iters {} is fewer than --top {} plus --bottom {}: Lanczos finds at most one eigenvalue per step",
            args.iters, args.top, args.bottom
        ));
    }
    if let Some(out) = &args.out {
        if out.is_dir() {
            return Err(format!(
                "--out {} is a directory; give a file path ending in .svg",
                out.display()
            ));
        }
        if out
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
            != Some("svg")
        {
            return Err(format!(
                "--out {}: the picture is written as SVG; give a path ending in .svg",
                out.display()
            ));
        }
    }
    Ok(())
}

/// An eigenvalue with 8 significant digits.
fn precise(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.7e}")
    } else {
        format!("{x:.8}")
    }
}

/// A number short enough for a label, with 4 significant digits.
fn short(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    check_args(&args)?;
    let started = Instant::now();
    let net = load_network(&args.checkpoint)?;
    println!("checkpoint {}: {}", args.checkpoint.display(), net.about);
    let data = Mnist::load(args.data_dir.as_deref())?;
    println!(
        "MNIST from {}: {} training images",
        data.dir.display(),
        data.train.len()
    );
    if data.train.features() != net.model.inputs() {
        return Err(format!(
            "{} holds images of {} pixels, but network {} reads {}",
            data.dir.display(),
            data.train.features(),
            net.network,
            net.model.inputs()
        )
        .into());
    }
    if args.batch > data.train.len() {
        return Err(format!(
            "--batch {} is more than the {} training images in {}",
            args.batch,
            data.train.len(),
            data.dir.display()
        )
        .into());
    }
    let batch = data.train.slice(0, args.batch);
    let images = batch.images.cast::<f64>();
    let f = batch_cost(&net.model, net.cost.as_ref(), &images, &batch.labels);
    let params = net.model.params().to_values();
    let layout = Layout::of(&params);
    let n = layout.numel();
    let layers = net
        .model
        .sizes()
        .map_or_else(|| "LeNet-5".to_string(), |s| format!("{s:?}"));
    println!(
        "network {} {layers} (epoch {}): {} cost over the first {} training images, as a function of all {n} parameters (f64)",
        net.network,
        net.epoch,
        net.cost.name(),
        args.batch
    );

    let (cost, gradient) = value_and_grad(f, &params);
    let gradient = Layout::join(&gradient);
    println!(
        "cost {}, gradient norm {}",
        short(cost),
        short(norm(&gradient))
    );

    let mut hvps = 0usize;
    let lanczos_started = Instant::now();
    let matvec = |x: &[f64]| {
        hvps += 1;
        Layout::join(&hvp(f, &params, &layout.split(x)))
    };
    println!(
        "Lanczos on Hessian-vector products: the {} largest eigenvalues to a residual of {:e} x |λ|, at most {} steps",
        args.top, args.tol, args.iters
    );
    let options = LanczosOptions {
        top: args.top,
        bottom: args.bottom,
        max_steps: args.iters,
        tol: args.tol,
        seed: args.seed,
    };
    let spectrum = lanczos(n, matvec, &options, |s| {
        if s.step % 10 == 0 || s.last {
            let values: Vec<String> = s.top.iter().map(|r| short(r.value)).collect();
            println!(
                "  step {:>4}: largest {} ({}/{} converged), smallest {}{}, {:.1}s",
                s.step,
                values.join(" "),
                s.converged,
                args.top,
                short(s.bottom.value),
                if args.bottom > 0 {
                    format!(" ({}/{} converged)", s.bottom_converged, args.bottom)
                } else {
                    String::new()
                },
                lanczos_started.elapsed().as_secs_f64()
            );
        }
    });
    let lanczos_seconds = lanczos_started.elapsed().as_secs_f64();
    let size = spectrum
        .top
        .iter()
        .chain(&spectrum.bottom)
        .fold(0.0f64, |m, r| m.max(r.value.abs()));
    let mark = |r: &Ritz| {
        if r.residual <= args.tol * size {
            ""
        } else {
            "  (not converged: raise --iters)"
        }
    };
    println!(
        "\nlargest eigenvalues of the Hessian (algebraic: the most positive curvature first):"
    );
    for (k, r) in spectrum.top.iter().enumerate() {
        println!(
            "  λ{:<3} {:>15}   residual {:.1e}{}",
            k + 1,
            precise(r.value),
            r.residual,
            mark(r)
        );
    }
    println!("smallest eigenvalues (the most negative curvature first):");
    for r in spectrum.bottom.iter().take(args.bottom.max(1)) {
        println!(
            "       {:>15}   residual {:.1e}{}",
            precise(r.value),
            r.residual,
            mark(r)
        );
    }
    println!(
        "{} Lanczos steps, {hvps} Hessian-vector products, {lanczos_seconds:.2}s \
         (residual: Lanczos's estimate of |Hx - λx| for the unit Ritz vector x)",
        spectrum.steps
    );
    // The estimate assumes exact arithmetic; one more product measures it for v1.
    let lambda1 = spectrum.top.first().map_or(0.0, |r| r.value);
    let mut check = Layout::join(&hvp(f, &params, &layout.split(&spectrum.top_vector)));
    hvps += 1;
    axpy(&mut check, -lambda1, &spectrum.top_vector);
    println!(
        "check: |H v1 - λ1 v1| = {:.1e} measured with one more Hessian-vector product",
        norm(&check)
    );

    // The picture: the cost along the top eigenvector and along a random direction.
    let mut v1 = spectrum.top_vector.clone();
    if dot(&gradient, &v1) > 0.0 {
        // The sign is arbitrary: downhill to the right.
        v1.iter_mut().for_each(|x| *x = -*x);
    }
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5EED_D1EC_7104);
    let u = random_unit(n, &mut rng);
    let u_curvature = dot(&u, &Layout::join(&hvp(f, &params, &layout.split(&u))));
    hvps += 1;
    println!(
        "curvature along a random unit direction uᵀHu = {} (λ1 = {}); slope along v1 = {}",
        short(u_curvature),
        short(lambda1),
        short(dot(&gradient, &v1))
    );
    let span = args.span.unwrap_or_else(|| {
        let t = (8.0 * cost / lambda1).sqrt();
        if t.is_finite() && t > 0.0 {
            t
        } else {
            1.0
        }
    });
    let steps: Vec<f64> = (0..=40).map(|k| span * (k as f64 / 20.0 - 1.0)).collect();
    let along = |d: &[f64]| -> Vec<(f64, f64)> {
        steps
            .iter()
            .map(|&t| {
                let moved: Vec<Tensor<f64>> = params
                    .iter()
                    .zip(layout.split(d))
                    .map(|(p, d)| p.zip_map(&d, |p, d| p + t * d))
                    .collect();
                (t, value_at(f, &moved))
            })
            .collect()
    };
    let g1 = dot(&gradient, &v1);
    let curves = vec![
        backprop::pictures::Curve {
            label: format!("along the top eigenvector v1 (λ1 = {})", short(lambda1)),
            points: along(&v1),
            color: [200, 30, 30],
            dashed: false,
        },
        backprop::pictures::Curve {
            label: format!(
                "along a random unit direction u (uᵀHu = {})",
                short(u_curvature)
            ),
            points: along(&u),
            color: [30, 80, 200],
            dashed: false,
        },
        backprop::pictures::Curve {
            label: "quadratic model C + (g·v1) t + λ1 t²/2".into(),
            points: steps
                .iter()
                .map(|&t| (t, cost + g1 * t + 0.5 * lambda1 * t * t))
                .collect(),
            color: [120, 120, 120],
            dashed: true,
        },
    ];
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_picture(&args.checkpoint));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    backprop::pictures::line_plot(
        &out,
        &format!(
            "network {}: {} cost over {} training images along two unit directions",
            net.network,
            net.cost.name(),
            args.batch
        ),
        "step t (parameters θ + t·d, |d| = 1)",
        &format!("{} cost", net.cost.name()),
        &curves,
    )?;
    println!("picture written to {}", out.display());
    println!(
        "{hvps} Hessian-vector products and {} cost evaluations, {:.1}s in all",
        2 * steps.len() + 1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
