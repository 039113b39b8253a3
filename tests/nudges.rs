//! The nudges example, run as a process on a freshly initialised network A and tiny
//! synthetic IDX data: it draws the neuron whose weight nudges are largest (checked
//! against the tape here), prints numbers a person can read and no debug output, labels
//! its pictures, and a missing checkpoint or a neuron out of range is a clear refusal.
//!
//! The example binary is built once per run of this test file, with the profile whose
//! libraries `cargo test` has just built.

use crate::common;

use backprop::pictures::largest_column;
use nn::{Cost, Mnist, Network, Quadratic, Trainer};
use std::path::Path;
use std::process::Output;

/// The example's executable, built on first use into the folder this test runs from.
fn example() -> &'static Path {
    common::build_example("nudges")
}

/// The four MNIST files with `train` and `test` 28x28 images in `dir`, ink varying
/// from image to image so that the neurons' nudges differ.
fn fake_mnist(dir: &Path, train: usize, test: usize) {
    let pixels = |n: usize| -> Vec<u8> {
        (0..n * 784)
            .map(|i| {
                let (image, p) = (i / 784, i % 784);
                let (row, col) = (p / 28, p % 28);
                // A bar whose place depends on the image, on a dark background.
                if (row + image * 3) % 28 < 6 || (col + image * 5) % 28 < 4 {
                    230
                } else {
                    (p % 7) as u8
                }
            })
            .collect()
    };
    common::write_mnist(
        dir,
        (&pixels(train), &common::labels(train)),
        (&pixels(test), &common::labels(test)),
    );
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    common::run_example(example(), cwd, args)
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

/// A network A checkpoint (untrained, seed `seed`) and fake data in a new folder.
fn setup(seed: u64) -> (tempfile::TempDir, Trainer) {
    let dir = tempfile::tempdir().expect("tempdir");
    fake_mnist(&dir.path().join("data"), 20, 12);
    let trainer = Trainer::new(Network::A.recipe(), seed);
    trainer
        .checkpoint()
        .save(dir.path().join("a.safetensors"))
        .expect("save the checkpoint");
    (dir, trainer)
}

/// For test image `index`, from the tape: the first-layer neuron whose weight nudges
/// `-dC/dW` have the largest norm (the one the example should draw), and the one whose
/// own nudge `-dC/da` is largest (the one it drew before, whose weight nudges can be
/// tiny when it is saturated).
fn largest_nudges(trainer: &Trainer, data: &Path, index: usize) -> (usize, usize) {
    let mnist = Mnist::load(Some(data)).expect("load the fake data");
    let example = mnist.test.slice(index, index + 1);
    let tape = autodiff::Tape::new();
    let bound = trainer.model.params().bind(&tape);
    let layers = trainer
        .model
        .activations(&bound, tape.constant(example.images.clone()));
    layers[0].retain_grad();
    let output = *layers.last().expect("layers");
    let grads = Quadratic.cost(output, &example.labels).backward();
    let w = &grads[bound.get("layers.0.weight")];
    let by_weights = largest_column(w.data(), w.shape()[1])
        .expect("16 neurons")
        .0;
    let by_activation = largest_column(grads.get(layers[0]).expect("kept").data(), 16)
        .expect("16 neurons")
        .0;
    (by_weights, by_activation)
}

/// The weight-nudge choice for image `index`.
fn largest_weight_nudges(trainer: &Trainer, data: &Path, index: usize) -> usize {
    largest_nudges(trainer, data, index).0
}

#[test]
fn the_pictures_draw_the_largest_weight_nudges_with_labels_and_readable_numbers() {
    let (dir, trainer) = setup(3);
    let cwd = dir.path();
    // An image for which the largest weight nudges and the largest activation nudge
    // belong to different neurons, so that the test tells the two choices apart.
    let telling = (0..12)
        .find(|&i| {
            let (w, a) = largest_nudges(&trainer, &cwd.join("data"), i);
            w != a
        })
        .expect("an image whose two choices differ");
    for index in [0, telling] {
        let index_arg = index.to_string();
        let out = run(
            cwd,
            &[
                "--checkpoint",
                "a.safetensors",
                "--data-dir",
                "data",
                "--out",
                "pictures",
                "--index",
                &index_arg,
                "--batch",
                "5",
            ],
        );
        let printed = text(&out);
        assert!(out.status.success(), "the example failed:\n{printed}");
        let expected = largest_weight_nudges(&trainer, &cwd.join("data"), index);
        let claim = format!(
            "weight nudges -dC/dw into hidden 1 neuron {expected} (the neuron whose weight \
             nudges are largest)"
        );
        assert!(
            printed.contains(&claim),
            "expected neuron {expected} to be drawn:\n{printed}"
        );
        for unreadable in ["Some(", "[", "0.00000"] {
            assert!(
                !printed.contains(unreadable),
                "{unreadable:?} printed:\n{printed}"
            );
        }
        let svg = std::fs::read_to_string(
            cwd.join("pictures")
                .join(format!("nudges-test-{index}.svg")),
        )
        .expect("the single-example picture");
        for part in [
            "white 0, black 1",
            "red: up, blue: down",
            "weight nudges -dC/dw",
            &format!("into hidden 1 neuron #{expected}: of all 16,"),
            "nudges are largest (norm",
            "nudge -dC/da",
            "activation a",
        ] {
            assert!(svg.contains(part), "the picture lacks {part:?}");
        }
        let batch = std::fs::read_to_string(
            cwd.join("pictures")
                .join(format!("nudges-batch-{index}-5.svg")),
        )
        .expect("the minibatch picture");
        assert!(batch.contains("mean weight nudges of 5"), "{batch}");
    }
}

#[test]
fn a_chosen_neuron_is_drawn_and_one_out_of_range_is_refused() {
    let (dir, trainer) = setup(5);
    let cwd = dir.path();
    let largest = largest_weight_nudges(&trainer, &cwd.join("data"), 0);
    let other = (largest + 1) % 16;
    let other_arg = other.to_string();
    let args = |neuron| {
        run(
            cwd,
            &[
                "--checkpoint",
                "a.safetensors",
                "--data-dir",
                "data",
                "--out",
                "pictures",
                "--batch",
                "3",
                "--neuron",
                neuron,
            ],
        )
    };
    let out = args(other_arg.as_str());
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!(
            "into hidden 1 neuron {other} (chosen with --neuron)"
        )),
        "{printed}"
    );
    let svg = std::fs::read_to_string(cwd.join("pictures").join("nudges-test-0.svg"))
        .expect("the picture");
    assert!(
        svg.contains(&format!("into hidden 1 neuron #{other} (--neuron),"))
            && svg.contains(&format!("; #{largest} has the largest")),
        "the caption should name the chosen and the largest neuron"
    );

    let out = args("16");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--neuron 16 is out of range: the first layer has 16 neurons"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_checkpoint_says_how_to_make_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &["--checkpoint", "nowhere.safetensors"]);
    assert!(!out.status.success());
    let message = text(&out);
    for part in [
        "nowhere.safetensors does not exist",
        "cargo run --release --example mnist -- --net a",
    ] {
        assert!(message.contains(part), "{part:?} not in:\n{message}");
    }
}
