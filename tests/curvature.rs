//! The curvature example: its Lanczos eigenvalues of a network's cost Hessian, from
//! Hessian-vector products, match those of the whole Hessian (`func::hessian`) found
//! by Jacobi rotations written here, on networks small enough to form it; and the
//! example, run as a process, refuses what it cannot use with a message that says
//! what to do, and on a tiny data set prints the eigenvalues and draws the picture.

use crate::common;

// The example itself, so the test checks exactly what `cargo run --example curvature` runs.
#[allow(dead_code)]
#[path = "../examples/curvature.rs"]
mod example;

use autodiff::func;
use autodiff::{Tensor, Var};
use example::{batch_cost, lanczos, LanczosOptions, Layout};
use nn::{Activation, Cost, CrossEntropy, Init, Model, Network, Quadratic, Trainer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Every eigenvalue of the symmetric `n x n` matrix `a` (row-major), ascending, by
/// cyclic Jacobi rotations: each rotation zeroes one off-diagonal pair, and sweeps
/// repeat until the off-diagonal part is negligible.
fn jacobi_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q] * a[p * n + q])
            .sum();
        if off <= 1e-32 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // tan of the angle that zeroes a[p][q], the smaller root.
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut values: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
    values.sort_by(f64::total_cmp);
    values
}

#[test]
fn the_jacobi_reference_solves_matrices_with_known_eigenvalues() {
    assert_close(
        &jacobi_eigenvalues(vec![2.0, 1.0, 1.0, 2.0], 2),
        &[1.0, 3.0],
        1e-14,
    );
    // Q diag(d) Qᵀ for a Householder reflection Q = I - 2 u uᵀ.
    let d = [-3.0, 0.5, 0.5, 2.0, 7.0];
    let u = [0.1, -0.5, 0.3, 0.7, 0.2];
    let uu: f64 = u.iter().map(|x| x * x).sum();
    let q = |i: usize, j: usize| f64::from(u8::from(i == j)) - 2.0 * u[i] * u[j] / uu;
    let a: Vec<f64> = (0..25)
        .map(|ij| (0..5).map(|k| q(ij / 5, k) * d[k] * q(ij % 5, k)).sum())
        .collect();
    assert_close(&jacobi_eigenvalues(a, 5), &d, 1e-13);
}

/// `got` and `want` agree elementwise to `rel` relative to the larger magnitude.
fn assert_close(got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= rel * scale,
            "{got:?} vs {want:?}: {g} differs from {w} by {:e} (allowed {:e})",
            (g - w).abs(),
            rel * scale
        );
    }
}

/// A small network's cost on a batch, the whole Hessian (by `func::hessian` of the
/// cost as a function of one flat vector of all parameters), and its eigenvalues.
struct Small {
    model: Model<f64>,
    cost: Box<dyn Cost<f64>>,
    images: Tensor<f64>,
    labels: Vec<usize>,
}

impl Small {
    fn new(hidden: Activation, output: Activation, cost: Box<dyn Cost<f64>>) -> Self {
        let model = Model::<f64>::new(&[4, 5, 3], hidden, output, Init::Xavier, 3);
        let mut rng = StdRng::seed_from_u64(11);
        let images = Tensor::<f64>::randn([12, 4], &mut rng);
        let labels = (0..12).map(|i| (i * 7) % 3).collect();
        Small {
            model,
            cost,
            images,
            labels,
        }
    }

    fn params(&self) -> Vec<Tensor<f64>> {
        self.model.params().to_values()
    }

    /// The whole Hessian, `[n, n]`, symmetrised (it is symmetric to rounding).
    fn hessian(&self) -> (Vec<f64>, usize) {
        let params = self.params();
        let layout = Layout::of(&params);
        let shapes: Vec<Vec<usize>> = params.iter().map(|t| t.shape().to_vec()).collect();
        let f = batch_cost(&self.model, self.cost.as_ref(), &self.images, &self.labels);
        let flat = Tensor::from_vec(Layout::join(&params), [layout.numel()]);
        let h = func::hessian(
            |tape, p| {
                let mut at = 0;
                let parts: Vec<Var<'_, f64>> = shapes
                    .iter()
                    .map(|shape| {
                        let len = shape.iter().product::<usize>();
                        at += len;
                        let indices: Vec<usize> = (at - len..at).collect();
                        p[0].index_select(0, &indices).reshape(shape)
                    })
                    .collect();
                f(tape, &parts)
            },
            &flat,
        );
        let n = layout.numel();
        assert_eq!(h.shape(), &[n, n]);
        let h = h.data();
        let mut asymmetry = 0.0f64;
        let mut scale = 0.0f64;
        let mut sym = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                asymmetry = asymmetry.max((h[i * n + j] - h[j * n + i]).abs());
                scale = scale.max(h[i * n + j].abs());
                sym[i * n + j] = 0.5 * (h[i * n + j] + h[j * n + i]);
            }
        }
        assert!(
            asymmetry <= 1e-12 * scale,
            "the Hessian is not symmetric: {asymmetry:e} against entries up to {scale:e}"
        );
        (sym, n)
    }

    /// Checks the solver's top and bottom eigenvalues and top eigenvector against the
    /// whole Hessian.
    fn check(&self) {
        let (h, n) = self.hessian();
        let reference = jacobi_eigenvalues(h.clone(), n);
        let params = self.params();
        let layout = Layout::of(&params);
        let f = batch_cost(&self.model, self.cost.as_ref(), &self.images, &self.labels);
        let mut products = 0;
        let options = LanczosOptions {
            top: 5,
            bottom: 2,
            max_steps: n,
            tol: 1e-10,
            seed: 1,
        };
        let spectrum = lanczos(
            n,
            |x| {
                products += 1;
                Layout::join(&func::hvp(f, &params, &layout.split(x)))
            },
            &options,
            |_| {},
        );
        assert!(spectrum.converged);
        assert_eq!(products, spectrum.steps);
        let top: Vec<f64> = spectrum.top.iter().map(|r| r.value).collect();
        let bottom: Vec<f64> = spectrum.bottom.iter().take(2).map(|r| r.value).collect();
        let want_top: Vec<f64> = reference.iter().rev().take(5).copied().collect();
        // Each eigenvalue to 1e-8 of itself.
        for (got, want) in top
            .iter()
            .zip(&want_top)
            .chain(bottom.iter().zip(&reference))
        {
            assert!(
                (got - want).abs() <= 1e-8 * want.abs(),
                "Lanczos {got} vs Jacobi {want}; all: top {top:?} vs {want_top:?}, bottom {bottom:?} vs {:?}",
                &reference[..2]
            );
        }
        // The top eigenvector: H v = λ1 v, with H the whole Hessian.
        let v = &spectrum.top_vector;
        let residual: f64 = (0..n)
            .map(|i| {
                let hv: f64 = (0..n).map(|j| h[i * n + j] * v[j]).sum();
                (hv - top[0] * v[i]).powi(2)
            })
            .sum::<f64>()
            .sqrt();
        assert!(
            residual <= 1e-8 * top[0].abs(),
            "|H v1 - λ1 v1| = {residual:e} for λ1 = {}",
            top[0]
        );
        // Before the basis spans everything, for these sizes.
        assert!(
            spectrum.steps < n,
            "{} steps for {n} parameters",
            spectrum.steps
        );
    }
}

#[test]
fn lanczos_on_hessian_vector_products_matches_the_whole_hessian_sigmoid_quadratic() {
    // Network A's kind: sigmoid everywhere, quadratic cost; 4-5-3 has 43 parameters.
    let small = Small::new(
        Activation::Sigmoid,
        Activation::Sigmoid,
        Box::new(Quadratic),
    );
    assert_eq!(small.model.params().num_elements(), 43);
    small.check();
}

#[test]
fn lanczos_on_hessian_vector_products_matches_the_whole_hessian_tanh_cross_entropy() {
    // Networks B and C's kind of cost: logits and cross-entropy (tanh, as ReLU's
    // Hessian is mostly the cost's own).
    let small = Small::new(
        Activation::Tanh,
        Activation::Identity,
        Box::new(CrossEntropy),
    );
    small.check();
}

#[test]
fn lanczos_finds_repeated_eigenvalues_by_continuing_past_a_closed_krylov_space() {
    // A diagonal matrix with 5 three times: one start vector's Krylov space holds one
    // 5 and closes after 7 steps (one per distinct value); the solver continues from a
    // fresh direction orthogonal to it, twice, and finds the other two.
    let d = [5.0, -4.0, 2.0, 5.0, 1.0, 0.0, 5.0, -1.0, 3.0];
    let options = LanczosOptions {
        top: 4,
        bottom: 2,
        max_steps: d.len(),
        tol: 1e-12,
        seed: 7,
    };
    let spectrum = lanczos(
        d.len(),
        |x| x.iter().zip(&d).map(|(x, d)| x * d).collect(),
        &options,
        |_| {},
    );
    let top: Vec<f64> = spectrum.top.iter().map(|r| r.value).collect();
    let bottom: Vec<f64> = spectrum.bottom.iter().take(2).map(|r| r.value).collect();
    assert_close(&top, &[5.0, 5.0, 5.0, 3.0], 1e-12);
    assert_close(&bottom, &[-4.0, -1.0], 1e-12);
}

#[test]
fn the_tridiagonal_solver_matches_jacobi() {
    let alpha = [1.0, -2.0, 0.5, 3.0, 0.0, 1.5];
    let beta = [0.3, 1.0, -0.7, 0.0, 2.0];
    let n = alpha.len();
    let mut dense = vec![0.0; n * n];
    for i in 0..n {
        dense[i * n + i] = alpha[i];
        if i + 1 < n {
            dense[i * n + i + 1] = beta[i];
            dense[(i + 1) * n + i] = beta[i];
        }
    }
    let (values, vectors) = example::tridiagonal_eigen(&alpha, &beta);
    assert_close(&values, &jacobi_eigenvalues(dense.clone(), n), 1e-13);
    for (value, v) in values.iter().zip(&vectors) {
        for i in 0..n {
            let tv: f64 = (0..n).map(|j| dense[i * n + j] * v[j]).sum();
            assert!(
                (tv - value * v[i]).abs() < 1e-12,
                "T v != λ v for λ = {value}"
            );
        }
    }
}

/// The example's executable, built on first use with the profile `cargo test` built
/// the libraries with (as tests/demo_refuses.rs does for the demo).
fn example() -> &'static Path {
    common::build_example("curvature")
}

/// Runs the example in `cwd` with `args`, never reading the user's MNIST cache.
fn run_example(cwd: &Path, args: &[&str]) -> Output {
    common::run_example(example(), cwd, args)
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

/// The run failed without a panic, and its message holds every one of `parts`.
fn assert_refused(cwd: &Path, args: &[&str], parts: &[&str]) -> String {
    common::assert_refused(example(), cwd, args, parts)
}

/// The four MNIST files with `train` 28x28 training images (and 5 test images) in a
/// new folder `name` under `root`.
fn fake_mnist(root: &Path, name: &str, train: usize) -> PathBuf {
    let dir = root.join(name);
    let pixels = |n: usize| -> Vec<u8> { (0..n * 784).map(|i| ((i * 37) % 256) as u8).collect() };
    common::write_mnist(
        &dir,
        (&pixels(train), &common::labels(train)),
        (&pixels(5), &common::labels(5)),
    );
    dir
}

#[test]
fn a_missing_or_foreign_checkpoint_is_refused_with_what_to_run() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    // The default path, absent.
    assert_refused(
        cwd,
        &[],
        &[
            "no checkpoint at checkpoints/mnist-a.safetensors",
            "cargo run --release --example mnist",
        ],
    );
    assert_refused(
        cwd,
        &["--checkpoint", "nowhere/net.safetensors"],
        &[
            "nowhere/net.safetensors",
            "cargo run --release --example mnist",
        ],
    );
    std::fs::write(cwd.join("junk.safetensors"), b"not a checkpoint at all").expect("write");
    assert_refused(
        cwd,
        &["--checkpoint", "junk.safetensors"],
        &[
            "junk.safetensors",
            "not a safetensors file",
            "--example mnist",
        ],
    );
    Trainer::new(Network::D.recipe(), 1)
        .checkpoint()
        .save(cwd.join("lenet.safetensors"))
        .expect("save");
    assert_refused(
        cwd,
        &["--checkpoint", "lenet.safetensors"],
        &["lenet.safetensors", "network d", "perceptrons a, b and c"],
    );
}

#[test]
fn meaningless_values_are_refused_before_anything_is_read() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    std::fs::create_dir(cwd.join("a-folder")).expect("dir");
    for (args, parts) in [
        (
            &["--batch", "0"][..],
            &["--batch", "0 is not a count of at least 1"][..],
        ),
        (
            &["--batch", "-5"],
            &["--batch", "-5 is not a count of at least 1"],
        ),
        (
            &["--top", "0"],
            &["--top", "0 is not a count of at least 1"],
        ),
        (
            &["--iters", "ten"],
            &["--iters", "\"ten\" is not a whole number"],
        ),
        (&["--bottom", "-1"], &["--bottom", "-1 is not a count"]),
        (
            &["--top", "8", "--iters", "8"],
            &["--iters 8 is fewer than --top 8 plus --bottom 1"],
        ),
        (
            &["--tol", "0"],
            &["--tol", "0 is not a finite number above 0"],
        ),
        (
            &["--tol", "nan"],
            &["--tol", "NaN is not a finite number above 0"],
        ),
        (
            &["--tol", "1.5"],
            &["--tol", "1.5 is not a relative tolerance below 1"],
        ),
        (
            &["--span", "-1"],
            &["--span", "-1 is not a finite number above 0"],
        ),
        (
            &["--span", "inf"],
            &["--span", "inf is not a finite number above 0"],
        ),
        (
            &["--threads", "0"],
            &["--threads", "0 is not a count of at least 1"],
        ),
        (&["--out", "a-folder"], &["--out a-folder is a directory"]),
        (
            &["--out", "picture.png"],
            &["--out picture.png", "ending in .svg"],
        ),
    ] {
        let message = assert_refused(cwd, args, parts);
        assert!(
            !message.contains("no checkpoint"),
            "{args:?} looked for the checkpoint before refusing:\n{message}"
        );
    }
}

#[test]
fn a_run_on_a_tiny_data_set_prints_the_spectrum_and_draws_it_beside_the_checkpoint() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let data = fake_mnist(cwd, "digits", 30);
    let data = data.to_str().expect("a UTF-8 path");
    std::fs::create_dir(cwd.join("checkpoints")).expect("dir");
    // An untrained network A: the example only needs a checkpoint of its shape.
    Trainer::new(Network::A.recipe(), 1)
        .checkpoint()
        .save(cwd.join("checkpoints/a.safetensors"))
        .expect("save");
    let checkpoint = [
        "--checkpoint",
        "checkpoints/a.safetensors",
        "--data-dir",
        data,
    ];
    let mut args = checkpoint.to_vec();
    args.extend_from_slice(&["--batch", "31"]);
    assert_refused(
        cwd,
        &args,
        &["--batch 31 is more than the 30 training images"],
    );

    let mut args = checkpoint.to_vec();
    args.extend_from_slice(&["--batch", "20", "--top", "3", "--iters", "120"]);
    let out = run_example(cwd, &args);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    for part in [
        "13002 parameters",
        "largest eigenvalues of the Hessian",
        "λ1 ",
        "λ3 ",
        "smallest eigenvalues",
        "Hessian-vector products",
        "picture written to checkpoints/a.curvature.svg",
    ] {
        assert!(
            stdout.contains(part),
            "{part:?} not in the output:\n{stdout}"
        );
    }
    assert!(!stdout.contains("not converged"), "{stdout}");
    let svg =
        std::fs::read_to_string(cwd.join("checkpoints/a.curvature.svg")).expect("the picture");
    for label in [
        "top eigenvector",
        "random unit direction",
        "quadratic model",
        "step t",
    ] {
        assert!(svg.contains(label), "the picture lacks {label:?}");
    }
}
