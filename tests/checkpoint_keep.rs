//! Checkpoints a user does not lose: a save over an existing checkpoint keeps the old
//! file at `<path>.prev` (replacing an older one), only once the new file is fully
//! written; the MNIST demo says what it replaces and what replaces it; the examples
//! that read a checkpoint say which one they loaded, and write their pictures beside
//! it rather than into a `docs/` folder of wherever they run.

use crate::common;

use nn::{previous_path, write_keeping_previous};
use nn::{Checkpoint, ParamStore};
use std::path::Path;
use std::process::Output;

fn checkpoint(value: f32, epoch: &str) -> Checkpoint<f32> {
    let mut params = ParamStore::new();
    params.insert("w", autodiff::Tensor::from_vec(vec![value; 6], [2, 3]));
    let mut c = Checkpoint::new(params);
    c.info.insert("network".into(), "a".into());
    c.info.insert("epoch".into(), epoch.into());
    c
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn saving_twice_keeps_the_first_checkpoint_beside_the_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mnist-a.safetensors");
    let prev = dir.path().join("mnist-a.safetensors.prev");
    assert_eq!(previous_path(&path), prev);

    let first = checkpoint(1.0, "3");
    assert_eq!(
        first.save_keeping_previous(&path).expect("first save"),
        None
    );
    assert!(!prev.exists(), "nothing was replaced, so nothing is kept");
    let first_bytes = std::fs::read(&path).expect("the first checkpoint");

    let second = checkpoint(2.0, "1");
    assert_eq!(
        second.save_keeping_previous(&path).expect("second save"),
        Some(prev.clone())
    );
    assert_eq!(std::fs::read(&prev).expect("the kept file"), first_bytes);
    assert_eq!(Checkpoint::<f32>::load(&prev).expect("load .prev"), first);
    assert_eq!(Checkpoint::<f32>::load(&path).expect("load"), second);
    let second_bytes = std::fs::read(&path).expect("the second checkpoint");

    // A third save replaces the older .prev with the second checkpoint.
    let third = checkpoint(3.0, "2");
    third.save_keeping_previous(&path).expect("third save");
    assert_eq!(std::fs::read(&prev).expect("the kept file"), second_bytes);
    assert_eq!(Checkpoint::<f32>::load(&path).expect("load"), third);
    // No temporary file or link is left behind.
    assert_eq!(
        names(dir.path()),
        ["mnist-a.safetensors", "mnist-a.safetensors.prev"]
    );

    // A plain save still replaces without keeping.
    first.save(&path).expect("plain save");
    assert_eq!(std::fs::read(&prev).expect("the kept file"), second_bytes);
    assert_eq!(Checkpoint::<f32>::load(&path).expect("load"), first);
}

#[test]
fn an_interrupted_write_loses_neither_the_checkpoint_nor_the_kept_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    checkpoint(1.0, "1")
        .save_keeping_previous(&path)
        .expect("save");
    checkpoint(2.0, "2")
        .save_keeping_previous(&path)
        .expect("save");
    let (at_path, at_prev) = (
        std::fs::read(&path).expect("read"),
        std::fs::read(previous_path(&path)).expect("read"),
    );
    let failed = write_keeping_previous(&path, |f| {
        use std::io::Write;
        f.write_all(b"half a checkpoint")?;
        Err(std::io::Error::other("the disk filled up"))
    });
    assert!(failed.is_err());
    assert_eq!(std::fs::read(&path).expect("read"), at_path);
    assert_eq!(std::fs::read(previous_path(&path)).expect("read"), at_prev);
    assert_eq!(
        names(dir.path()),
        ["model.safetensors", "model.safetensors.prev"]
    );
}

#[test]
fn a_directory_at_the_path_is_not_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a-folder");
    std::fs::create_dir(&path).expect("dir");
    assert!(checkpoint(1.0, "1").save_keeping_previous(&path).is_err());
    assert!(path.is_dir());
    assert!(!previous_path(&path).exists());
    assert_eq!(names(dir.path()), ["a-folder"]);
}

#[test]
fn the_summary_says_what_an_older_checkpoint_lacks() {
    assert_eq!(
        checkpoint(1.0, "1").summary(),
        "network a, 1 epoch, test accuracy not recorded"
    );
    let mut c = checkpoint(1.0, "5");
    c.info.insert("test_accuracy".into(), "0.9512".into());
    c.info.insert("data_dir".into(), "/data/mnist".into());
    c.info
        .insert("data".into(), format!("sha256:{}", "ab".repeat(32)));
    assert_eq!(
        c.summary(),
        "network a, 5 epochs, test accuracy 95.12%, trained on /data/mnist (data abababababab)"
    );
}

/// 28x28 images of a pattern that differs per image, labels 0-9 in turn.
fn fake_mnist(dir: &Path, train: usize, test: usize) {
    let pixels = |n: usize, salt: usize| -> Vec<u8> {
        (0..n * 784)
            .map(|i| ((i * 37 + (i / 784) * 11 + salt) % 256) as u8)
            .collect()
    };
    common::write_mnist(
        dir,
        (&pixels(train, 0), &common::labels(train)),
        (&pixels(test, 5), &common::labels(test)),
    );
}

fn run(name: &str, cwd: &Path, args: &[&str]) -> (Output, String) {
    let exe = common::build_example(name);
    let out = common::run_example(exe, cwd, args);
    let text = common::output_text(&out);
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    (out, text)
}

fn assert_says(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in the output:\n{text}");
    }
}

#[test]
fn the_demo_says_what_it_replaces_and_keeps_it_and_the_examples_say_what_they_load() {
    let root = tempfile::tempdir().expect("tempdir");
    let cwd = root.path();
    fake_mnist(&cwd.join("data"), 30, 10);
    let plain = cwd.join("checkpoints/mnist-a.safetensors");
    let prev = cwd.join("checkpoints/mnist-a.safetensors.prev");

    let (_, first) = run("mnist", cwd, &["--data-dir", "data", "--epochs", "2"]);
    assert_says(
        &first,
        &["checkpoint written to checkpoints/mnist-a.safetensors: network a, 2 epochs, test accuracy "],
    );
    assert!(!first.contains("replaces"), "{first}");
    assert!(!prev.exists());
    let first_bytes = std::fs::read(&plain).expect("the first checkpoint");
    let saved = Checkpoint::<f32>::load(&plain).expect("load");
    let accuracy: f64 = saved.info["test_accuracy"].parse().expect("a fraction");
    assert!((0.0..=1.0).contains(&accuracy), "{accuracy}");
    let data_dir = std::fs::canonicalize(cwd.join("data")).expect("data dir");
    assert_eq!(saved.info["data_dir"], data_dir.display().to_string());
    let first_summary = saved.summary();
    assert!(
        first_summary.starts_with(&format!(
            "network a, 2 epochs, test accuracy {:.2}%, trained on {}",
            accuracy * 100.0,
            data_dir.display()
        )),
        "{first_summary}"
    );

    // A one-epoch rerun: said before it trains and after it saves, the first kept.
    let (_, second) = run("mnist", cwd, &["--data-dir", "data", "--epochs", "1"]);
    assert_says(
        &second,
        &[
            &format!(
                "note: checkpoints/mnist-a.safetensors holds {first_summary}; this run replaces \
                 it and keeps it as checkpoints/mnist-a.safetensors.prev"
            ),
            "checkpoint written to checkpoints/mnist-a.safetensors: network a, 1 epoch, test accuracy ",
            &format!(
                "it replaces {first_summary}, kept as checkpoints/mnist-a.safetensors.prev"
            ),
        ],
    );
    assert_eq!(std::fs::read(&prev).expect("the kept file"), first_bytes);
    let replaced_by = Checkpoint::<f32>::load(&plain).expect("load");
    assert_eq!(replaced_by.info["epoch"], "1");
    let leftovers: Vec<String> = names(&cwd.join("checkpoints"))
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An example that reads the checkpoint names it, and writes its picture beside it.
    let (_, per_sample) = run(
        "per_sample",
        cwd,
        &["--data-dir", "data", "--batch", "10", "--top", "2"],
    );
    assert_says(
        &per_sample,
        &[
            &format!(
                "checkpoint checkpoints/mnist-a.safetensors: {}",
                replaced_by.summary()
            ),
            "picture written: checkpoints/mnist-a.per-sample.svg",
        ],
    );
    assert!(cwd.join("checkpoints/mnist-a.per-sample.svg").is_file());
    assert!(!cwd.join("docs").exists(), "per_sample wrote into docs/");
}
