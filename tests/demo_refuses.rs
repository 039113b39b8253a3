//! The MNIST demo, run as a process on tiny synthetic IDX data: it refuses values that
//! cannot mean anything (a zero or negative batch, a learning rate that is not a finite
//! positive number, zero epochs, flags that a mode ignores) before it reads or writes
//! anything, and it never replaces a checkpoint with one of other data or with a model
//! that trained nothing.
//!
//! The example binary is built once per run of this test file, with the profile whose
//! libraries `cargo test` has just built.

use crate::common;

use nn::data_identity;
use nn::{Checkpoint, Mnist};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The demo's executable, built on first use into the folder this test runs from
/// (`<target>/debug/deps` under `cargo test`, `<target>/release/deps` under `--release`).
fn demo() -> &'static Path {
    common::build_example("mnist")
}

/// Writes the four MNIST files with `train` and `test` images of 28x28 pixels into a
/// new folder `name` under `root`; `variant` changes every pixel, so two variants are
/// two different data sets of the same shape.
fn fake_mnist(root: &Path, name: &str, train: usize, test: usize, variant: u8) -> PathBuf {
    let dir = root.join(name);
    let pixels = |n: usize| -> Vec<u8> {
        (0..n * 784)
            .map(|i| ((i * 37 + usize::from(variant) * 101) % 256) as u8)
            .collect()
    };
    common::write_mnist(
        &dir,
        (&pixels(train), &common::labels(train)),
        (&pixels(test), &common::labels(test)),
    );
    dir
}

/// Runs the demo in `cwd` (where it writes `checkpoints/`) with `args`.
fn run_demo(cwd: &Path, args: &[&str]) -> Output {
    Command::new(demo())
        .args(args)
        .current_dir(cwd)
        // The data always comes from --data-dir or nowhere: never the user's cache.
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", cwd.join("no-cache"))
        .output()
        .expect("run the demo")
}

/// Runs the demo on the data in `data` for `epochs`, with `extra` flags.
fn train(cwd: &Path, data: &Path, epochs: &str, extra: &[&str]) -> Output {
    let data = data.to_str().expect("path");
    let mut args = vec!["--data-dir", data, "--epochs", epochs];
    args.extend_from_slice(extra);
    run_demo(cwd, &args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The run failed, its message holds every one of `parts`, and it left `cwd` as it was.
fn assert_refused(cwd: &Path, args: &[&str], parts: &[&str]) {
    let before = listing(cwd);
    let out = run_demo(cwd, args);
    let message = text(&out);
    assert!(!out.status.success(), "{args:?} was accepted:\n{message}");
    for part in parts {
        assert!(
            message.contains(part),
            "{args:?}: {part:?} not in the message:\n{message}"
        );
    }
    assert!(
        !message.contains("MNIST from"),
        "{args:?} read the data before refusing:\n{message}"
    );
    assert_eq!(listing(cwd), before, "{args:?} wrote something");
}

/// Every file under `dir` with its bytes, so a test can see that nothing changed.
fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn trained_on(path: &Path) -> Option<String> {
    Checkpoint::<f32>::load(path)
        .expect("a checkpoint")
        .info
        .get("data")
        .cloned()
}

fn identity_of(dir: &Path) -> String {
    data_identity(&Mnist::load_dir(dir).expect("fake data").train)
}

#[test]
fn meaningless_values_are_refused_before_anything_is_read_or_written() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let data = fake_mnist(cwd, "digits", 20, 10, 0);
    let data = data.to_str().expect("a UTF-8 path");
    for (args, parts) in [
        (
            &["--batch", "0"][..],
            &["--batch", "0 is not a count of at least 1"][..],
        ),
        (
            &["--batch", "-1"],
            &["--batch", "-1 is not a count of at least 1"],
        ),
        (
            &["--batch", "ten"],
            &["--batch", "\"ten\" is not a whole number"],
        ),
        (&["--lr", "nan"], &["--lr", "NaN cannot be a learning rate"]),
        (&["--lr", "inf"], &["--lr", "inf cannot be a learning rate"]),
        (
            &["--lr", "-inf"],
            &["--lr", "-inf cannot be a learning rate"],
        ),
        (&["--lr", "0"], &["--lr", "0 cannot be a learning rate"]),
        (&["--lr", "-1"], &["--lr", "-1 cannot be a learning rate"]),
        (&["--epochs", "0"], &["--epochs", "use --eval PATH"]),
        (&["--epochs", "-2"], &["--epochs", "use --eval PATH"]),
        (
            &["--threads", "0"],
            &["--threads", "0 is not a count of at least 1"],
        ),
        (
            &["--eval", "x.safetensors", "--epochs", "3"],
            &["--eval", "--epochs"],
        ),
        (
            &["--eval", "x.safetensors", "--save", "y.safetensors"],
            &["--eval", "--save"],
        ),
        (
            &["--resume", "x.safetensors", "--lr", "0.1"],
            &["--resume", "--lr"],
        ),
        (
            &["--resume", "x.safetensors", "--batch", "10"],
            &["--resume", "--batch"],
        ),
        (
            &["--resume", "x.safetensors", "--net", "b"],
            &["--resume", "--net"],
        ),
        (&["--save", "."], &["--save", "is a directory"]),
    ] {
        let mut all = vec!["--data-dir", data];
        all.extend_from_slice(args);
        assert_refused(cwd, &all, parts);
    }
}

#[test]
fn data_the_network_cannot_read_or_learn_from_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let empty = fake_mnist(cwd, "empty", 0, 10, 0);
    let out = run_demo(
        cwd,
        &["--data-dir", empty.to_str().expect("path"), "--epochs", "1"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds no training images"),
        "{}",
        text(&out)
    );
    assert!(!cwd.join("checkpoints").exists());
}

#[test]
fn a_batch_larger_than_the_training_set_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let data = fake_mnist(cwd, "digits", 20, 10, 0);
    let out = train(cwd, &data, "1", &["--batch", "21"]);
    let message = text(&out);
    assert!(!out.status.success(), "--batch 21 was accepted:\n{message}");
    for part in [
        "--batch 21 is more than the 20 training images",
        "pass --batch 20 or less",
    ] {
        assert!(
            message.contains(part),
            "{part:?} not in the message:\n{message}"
        );
    }
    assert!(!cwd.join("checkpoints").exists(), "it wrote a checkpoint");
    // The whole set as one batch is still a choice a run may make.
    let out = train(cwd, &data, "1", &["--batch", "20"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_run_on_other_data_writes_beside_the_checkpoint_it_would_replace() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let digits = fake_mnist(cwd, "digits", 30, 10, 0);
    let fashion = fake_mnist(cwd, "fashion", 30, 10, 1);
    let plain = cwd.join("checkpoints/mnist-a.safetensors");

    let first = train(cwd, &digits, "1", &[]);
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(trained_on(&plain), Some(identity_of(&digits)));
    let digits_model = std::fs::read(&plain).expect("the first checkpoint");

    // Other data: the first model stays, the new one goes beside it under a name that
    // ends in its data's identity.
    let second = train(cwd, &fashion, "1", &[]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(std::fs::read(&plain).expect("still there"), digits_model);
    let fashion_id = identity_of(&fashion);
    let hex = &fashion_id["sha256:".len().."sha256:".len() + 12];
    let beside = cwd.join(format!("checkpoints/mnist-a-{hex}.safetensors"));
    assert_eq!(trained_on(&beside), Some(fashion_id));
    assert!(text(&second).contains("holds a model trained on other data"));

    // The same data again: the plain name is replaced, as a rerun should.
    let third = train(cwd, &digits, "2", &[]);
    assert!(third.status.success(), "{}", text(&third));
    let rerun = Checkpoint::<f32>::load(&plain).expect("rerun");
    assert_eq!(rerun.info.get("epoch").map(String::as_str), Some("2"));

    // Resuming the digits model on the fashion data is refused before it trains.
    let before = listing(cwd);
    let resume = run_demo(
        cwd,
        &[
            "--data-dir",
            fashion.to_str().expect("path"),
            "--resume",
            plain.to_str().expect("path"),
            "--epochs",
            "3",
        ],
    );
    assert!(!resume.status.success());
    assert!(
        text(&resume).contains("was trained on other data"),
        "{}",
        text(&resume)
    );
    assert_eq!(listing(cwd), before);
}

#[test]
fn a_resume_with_no_epochs_left_saves_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let digits = fake_mnist(cwd, "digits", 30, 10, 0);
    let digits = digits.to_str().expect("path");
    let first = run_demo(cwd, &["--data-dir", digits, "--epochs", "2"]);
    assert!(first.status.success(), "{}", text(&first));
    let plain = "checkpoints/mnist-a.safetensors";
    for epochs in ["1", "2"] {
        assert_refused(
            cwd,
            &["--data-dir", digits, "--resume", plain, "--epochs", epochs],
            &[
                "has trained 2 epochs already",
                "--eval checkpoints/mnist-a.safetensors",
            ],
        );
    }
}

#[test]
fn a_checkpoint_that_does_not_say_its_data_is_not_replaced() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    let digits = fake_mnist(cwd, "digits", 30, 10, 0);
    std::fs::create_dir_all(cwd.join("checkpoints")).expect("dir");
    let plain = cwd.join("checkpoints/mnist-a.safetensors");
    std::fs::write(&plain, b"a model from before data identities").expect("write");
    let out = train(cwd, &digits, "1", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(&plain).expect("kept"),
        b"a model from before data identities"
    );
    assert!(text(&out).contains("does not say which data it was trained on"));
    // An explicit --save is the user's choice and is honoured.
    let chosen = cwd.join("mine.safetensors");
    let out = train(
        cwd,
        &digits,
        "1",
        &["--save", chosen.to_str().expect("path")],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(trained_on(&chosen), Some(identity_of(&digits)));
}
