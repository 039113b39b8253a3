//! The chain_rule example: its chain rule written out by hand (three factors for a
//! last-layer weight, a sum over 16 x 10 paths for a first-layer weight) equals the
//! tape's gradient to 1e-12 relative, in f64, for every weight of both layers of
//! network A-shaped nets with random parameters; and the example, run as a process,
//! refuses what it cannot use with a message that says what to do, and on a tiny data
//! set prints the derivation.

use crate::common;

// The example itself, so the test checks exactly what `cargo run --example chain_rule` runs.
#[allow(dead_code)]
#[path = "../examples/chain_rule.rs"]
mod example;

use example::{
    default_first_weight, default_last_weight, first_layer_weight, forward_by_hand,
    last_layer_weight, relative_difference, tape_gradients, worst_over_all_weights, Forward,
    Layers, TapeGradients, TOLERANCE,
};
use nn::{Activation, Init, Model, Network, Trainer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A 784-16-16-10 sigmoid network with N(0, 1/fan_in) weights and N(0, 0.5²) biases
/// (nonzero, so the bias levers are tested too), a fake image with black pixels, bright
/// ones and greys, and its label.
fn network_and_image(seed: u64) -> (Model<f64>, Vec<f64>, usize) {
    let sizes = Network::A.recipe().sizes;
    let mut model = Model::<f64>::new(
        &sizes,
        Activation::Sigmoid,
        Activation::Sigmoid,
        Init::ScaledNormal,
        seed,
    );
    let mut rng = StdRng::seed_from_u64(seed ^ 0xB1A5);
    for l in 0..3 {
        let bias = model
            .params_mut()
            .get_mut(&format!("layers.{l}.bias"))
            .expect("a bias");
        bias.data_mut()
            .iter_mut()
            .for_each(|b| *b = rng.random_range(-1.0..1.0));
    }
    // A blob of ink in the middle, black around it: like an MNIST digit.
    let image: Vec<f64> = (0..784)
        .map(|i| {
            let (r, c) = ((i / 28) as f64 - 13.5, (i % 28) as f64 - 12.0);
            let d = (r * r + c * c).sqrt();
            if d < 4.0 {
                1.0
            } else if d < 9.0 {
                rng.random_range(0.0..1.0)
            } else {
                0.0
            }
        })
        .collect();
    let label = (seed as usize * 3) % 10;
    (model, image, label)
}

fn setup(seed: u64) -> (Layers, Forward, TapeGradients) {
    let (model, image, label) = network_and_image(seed);
    let layers = Layers::of(&model).expect("a three-layer perceptron");
    let forward = forward_by_hand(&layers, &image, label);
    let tape = tape_gradients(&model, &image, label).expect("the tape's gradients");
    (layers, forward, tape)
}

#[test]
fn the_forward_pass_by_hand_is_the_models() {
    for seed in 1..=3 {
        let (_, f, tape) = setup(seed);
        assert!((f.cost - tape.cost).abs() <= 1e-14 * tape.cost);
        for (hand, tape) in f.a[2].iter().zip(&tape.output) {
            assert!((hand - tape).abs() <= 1e-14, "{hand} vs {tape}");
        }
        // Not saturated everywhere: the slopes the chain rule multiplies are not all 0.
        assert!(f.z[0].iter().any(|z| z.abs() < 3.0), "{:?}", f.z[0]);
    }
}

#[test]
fn three_factors_make_every_last_layer_weights_gradient() {
    for seed in 1..=3 {
        let (layers, f, tape) = setup(seed);
        for k in 0..16 {
            for m in 0..10 {
                let w = last_layer_weight(&layers, &f, &tape, k, m);
                // The factors are what the example says they are.
                assert_eq!(w.dz_dw, f.a[1][k]);
                let a = f.a[2][m];
                assert!((w.da_dz - a * (1.0 - a)).abs() <= 1e-15);
                assert_eq!(w.dc_da, a - f.y[m]);
                assert_eq!(w.product, w.dz_dw * w.da_dz * w.dc_da);
                // And their product is the tape's gradient, as are the bias's and the
                // previous neuron's.
                assert!(w.tape != 0.0);
                for (what, hand, tape) in [
                    ("dC/dw3", w.product, w.tape),
                    ("dC/db3", w.bias_product, w.bias_tape),
                    ("dC/da2", w.wishes, w.wishes_tape),
                ] {
                    let r = relative_difference(hand, tape);
                    assert!(
                        r <= TOLERANCE,
                        "seed {seed}, {what} at k={k} m={m}: by hand {hand:e}, tape {tape:e}, relative {r:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_sum_over_all_paths_makes_every_first_layer_weights_gradient() {
    for seed in 1..=3 {
        let (layers, f, tape) = setup(seed);
        let mut nonzero = 0;
        for i in 0..784 {
            for j in 0..16 {
                let p = first_layer_weight(&layers, &f, &tape, i, j);
                assert_eq!(p.paths.len(), 16);
                assert!(p.paths.iter().all(|row| row.len() == 10));
                let r = relative_difference(p.total, p.tape);
                assert!(
                    r <= TOLERANCE,
                    "seed {seed}, dC/dw1[{i},{j}]: 160 paths add to {:e}, the tape says {:e}, relative {r:e}",
                    p.total,
                    p.tape
                );
                if f.x[i] == 0.0 {
                    // A black pixel: every path starts with x_i = 0, and so does the tape.
                    assert_eq!((p.total, p.tape), (0.0, 0.0));
                } else {
                    nonzero += 1;
                    // The rows and the columns are the same paths grouped two ways.
                    let rows: f64 = p.row_sums().iter().sum();
                    let columns: f64 = p.column_sums().iter().sum();
                    assert!(relative_difference(rows, p.tape) <= TOLERANCE);
                    assert!(relative_difference(columns, p.tape) <= TOLERANCE);
                }
            }
        }
        assert!(nonzero > 100 * 16, "only {nonzero} weights from lit pixels");
        // The example's own summary over both layers says the same.
        assert!(worst_over_all_weights(&layers, &f, &tape) <= TOLERANCE);
    }
}

#[test]
fn the_agreement_has_teeth() {
    // Leaving out one factor of the paths (σ'(z2_k), say) misses the tape by far more
    // than the tolerance: the comparison is not vacuous.
    let (layers, f, tape) = setup(1);
    let (i, j) = default_first_weight(&layers, &f, &tape);
    let p = first_layer_weight(&layers, &f, &tape, i, j);
    let without: f64 = (0..16)
        .map(|k| {
            let slope = f.slope(1, k);
            p.paths[k].iter().sum::<f64>() / slope
        })
        .sum();
    assert!(relative_difference(without, p.tape) > 1e-2);
    // And the last layer's product without the sigmoid's slope.
    let w = last_layer_weight(&layers, &f, &tape, 3, 4);
    assert!(relative_difference(w.dz_dw * w.dc_da, w.tape) > 1e-2);
}

#[test]
fn the_default_weights_are_the_ones_the_help_describes() {
    for seed in 1..=3 {
        let (layers, f, tape) = setup(seed);
        // Last layer: into the true digit, the largest gradient of those 16 weights.
        let (k, m) = default_last_weight(&f);
        assert_eq!(m, f.label);
        let into_label: Vec<f64> = (0..16).map(|k| tape.w[2][k * 10 + m].abs()).collect();
        assert!(into_label.iter().all(|&g| g <= into_label[k]));
        // First layer: the brightest pixel, nearest the centre, and the neuron where
        // its weight's gradient is largest.
        let (i, j) = default_first_weight(&layers, &f, &tape);
        let brightest = f.x.iter().copied().fold(0.0, f64::max);
        assert_eq!(f.x[i], brightest);
        assert_eq!(
            (i / 28, i % 28),
            (13, 13),
            "the bright pixel nearest the centre"
        );
        let from_pixel: Vec<f64> = (0..16).map(|j| tape.w[0][i * 16 + j].abs()).collect();
        assert!(from_pixel.iter().all(|&g| g <= from_pixel[j]));
    }
}

/// The example's executable, built on first use with the profile `cargo test` built
/// the libraries with (as tests/curvature.rs does).
fn example() -> &'static Path {
    common::build_example("chain_rule")
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

/// The four MNIST files with 20 training and `test` test images of 28x28 pixels in a
/// new folder `name` under `root`.
fn fake_mnist(root: &Path, name: &str, test: usize) -> PathBuf {
    let dir = root.join(name);
    let pixels = |n: usize| -> Vec<u8> {
        (0..n * 784)
            .map(|i| {
                if i % 5 == 0 {
                    0
                } else {
                    ((i * 37) % 256) as u8
                }
            })
            .collect()
    };
    common::write_mnist(
        &dir,
        (&pixels(20), &common::labels(20)),
        (&pixels(test), &common::labels(test)),
    );
    dir
}

#[test]
fn a_missing_or_foreign_checkpoint_is_refused_with_what_to_run() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    // The default path, absent: the path and the command that writes it, not a bare
    // "No such file or directory".
    let message = assert_refused(
        cwd,
        &[],
        &[
            "no checkpoint at checkpoints/mnist-a.safetensors",
            "cargo run --release --example mnist",
        ],
    );
    assert!(!message.contains("No such file"), "{message}");
    assert_refused(
        cwd,
        &["--checkpoint", "nowhere/net.safetensors", "--index", "3"],
        &[
            "no checkpoint at nowhere/net.safetensors",
            "cargo run --release --example mnist",
        ],
    );
    std::fs::create_dir(cwd.join("a-folder")).expect("dir");
    assert_refused(
        cwd,
        &["--checkpoint", "a-folder"],
        &["--checkpoint a-folder is a directory"],
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
    Trainer::new(Network::B.recipe(), 1)
        .checkpoint()
        .save(cwd.join("b.safetensors"))
        .expect("save");
    assert_refused(
        cwd,
        &["--checkpoint", "b.safetensors"],
        &[
            "b.safetensors holds network b",
            "for network a",
            "cargo run --release --example mnist",
        ],
    );
}

#[test]
fn meaningless_flags_are_refused_before_anything_is_read() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    for (args, parts) in [
        (
            &["--index", "-1"][..],
            &["--index", "-1 is not a count (0 or more)"][..],
        ),
        (
            &["--index", "seven"],
            &["--index", "\"seven\" is not a whole number"],
        ),
        (
            &["--layer3-weight", "3"],
            &["--layer3-weight", "\"3\" is not two numbers FROM,TO"],
        ),
        (
            &["--layer3-weight", "3,7,1"],
            &["--layer3-weight", "is not two numbers FROM,TO"],
        ),
        (
            &["--layer3-weight", "a,7"],
            &["--layer3-weight", "\"a\" is not a whole number"],
        ),
        (
            &["--layer3-weight", "16,0"],
            &["--layer3-weight 16,0: hidden layer 2 has neurons 0-15, not 16"],
        ),
        (
            &["--layer3-weight", "0,10"],
            &["--layer3-weight 0,10: the output neurons are 0-9", "not 10"],
        ),
        (
            &["--layer1-weight", "784,0"],
            &[
                "--layer1-weight 784,0: the input pixels are 0-783",
                "not 784",
            ],
        ),
        (
            &["--layer1-weight", "0,16"],
            &["--layer1-weight 0,16: hidden layer 1 has neurons 0-15, not 16"],
        ),
        (
            &["--layer1-weight", "-1,2"],
            &["--layer1-weight", "-1 is not a count (0 or more)"],
        ),
        (&["--neuron", "3"], &["unexpected argument '--neuron'"]),
    ] {
        let message = assert_refused(cwd, args, parts);
        assert!(
            !message.contains("no checkpoint"),
            "{args:?} looked for the checkpoint before refusing:\n{message}"
        );
    }
    let help = run_example(cwd, &["--help"]);
    let help_text = text(&help);
    assert!(help.status.success(), "{help_text}");
    for flag in [
        "--checkpoint",
        "--index",
        "--layer3-weight <K,M>",
        "--layer1-weight <I,J>",
        "--data-dir",
    ] {
        assert!(
            help_text.contains(flag),
            "{flag} not in --help:\n{help_text}"
        );
    }
}

#[test]
fn a_run_on_a_tiny_data_set_writes_out_the_chain_rule_and_agrees_with_the_tape() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let data = fake_mnist(cwd, "digits", 5);
    let data = data.to_str().expect("a UTF-8 path");
    std::fs::create_dir(cwd.join("checkpoints")).expect("dir");
    // An untrained network A: the example only needs a checkpoint of its shape.
    Trainer::new(Network::A.recipe(), 1)
        .checkpoint()
        .save(cwd.join("checkpoints/mnist-a.safetensors"))
        .expect("save");
    assert_refused(
        cwd,
        &["--data-dir", data, "--index", "5"],
        &["--index 5 is past the 5 test images"],
    );

    let out = run_example(cwd, &["--data-dir", data, "--index", "2"]);
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    for part in [
        "test image 2 of 5",
        "a 2;",
        "the weight w3[",
        ",2] from hidden-2 neuron",
        "dz/dw = a2_",
        "da/dz = σ'(z) = a(1 - a)",
        "dC/da = (a - y)/n",
        "the tape's dC/dw (backward)",
        "its bias: dC/db3_2",
        "the pixel's brightness",
        "16 x 10 = 160 paths",
        "row sum",
        "sum of the 160 paths",
        "differ by at most",
        "(within 1e-12)",
    ] {
        assert!(
            stdout.contains(part),
            "{part:?} not in the output:\n{stdout}"
        );
    }
    assert!(!stdout.contains("DISAGREE"), "{stdout}");
    // Once for each layer's weight.
    assert_eq!(
        stdout.matches("the tape's dC/dw (backward)").count(),
        2,
        "{stdout}"
    );
    // Every relative difference printed is within the tolerance.
    let differences: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("relative difference"))
        .collect();
    assert!(differences.len() >= 3, "{stdout}");
    for line in differences {
        assert!(line.contains("(agree to 1e-12)"), "{line}");
    }
    // The table: a header, 16 rows and the column sums, each with 10 paths and a sum.
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("k\\m"))
        .take(18)
        .collect();
    assert_eq!(table.len(), 18, "{stdout}");
    for (k, line) in table[1..17].iter().enumerate() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 12, "row {k}: {line}");
        assert_eq!(cells[0], k.to_string());
    }

    // Chosen weights, including a black pixel (every fifth pixel of the fake images).
    let out = run_example(
        cwd,
        &[
            "--data-dir",
            data,
            "--index",
            "0",
            "--layer3-weight",
            "15,9",
            "--layer1-weight",
            "0,3",
        ],
    );
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    for part in [
        "the weight w3[15,9] from hidden-2 neuron 15 to output neuron 9",
        "the weight w1[0,3] from pixel 0 (row 0, column 0) to hidden-1 neuron 3",
        "the pixel is black",
    ] {
        assert!(
            stdout.contains(part),
            "{part:?} not in the output:\n{stdout}"
        );
    }
    assert!(!stdout.contains("(chosen:"), "{stdout}");
}
