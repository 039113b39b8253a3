//! Helpers shared by the integration tests: MNIST loaded once, a run resumed from a
//! checkpoint beside an uninterrupted one, IDX files of their own, and the examples
//! they run as processes. Each test crate uses a part of them.
#![allow(dead_code)]

use nn::{Checkpoint, Dataset, Mnist, Recipe, Trainer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock, PoisonError};

/// MNIST, loaded once for every test of the binary (fetched into the cache on first use).
pub fn mnist() -> &'static Mnist {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    DATA.get_or_init(|| match Mnist::load(None) {
        Ok(m) => m,
        Err(e) => panic!("MNIST is needed for these tests: {e}"),
    })
}

/// `recipe` from `seed` trained on `data` for its epochs twice: straight through, and
/// stopped after `stop` epochs, its checkpoint saved, loaded and resumed to the end.
/// The caller compares the two.
pub fn straight_and_resumed(
    recipe: &Recipe,
    seed: u64,
    data: &Dataset,
    stop: usize,
) -> (Trainer, Trainer) {
    let mut straight = Trainer::new(recipe.clone(), seed);
    for _ in 0..recipe.epochs {
        straight.train_epoch(data, |_, _, _| {}).expect("training");
    }
    let mut first = Trainer::new(recipe.clone(), seed);
    for _ in 0..stop {
        first.train_epoch(data, |_, _, _| {}).expect("training");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("resume.safetensors");
    first.checkpoint().save(&path).expect("save");
    let mut resumed =
        Trainer::from_checkpoint(Checkpoint::load(&path).expect("load")).expect("resume");
    while resumed.epoch < recipe.epochs {
        resumed.train_epoch(data, |_, _, _| {}).expect("training");
    }
    (straight, resumed)
}

/// An IDX file of unsigned bytes: the magic number (type 0x08, `rank` dimensions), each
/// dimension as a big-endian u32, then `data`.
pub fn idx_bytes(rank: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, rank];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Labels 0-9 in turn for `n` images.
pub fn labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

/// The four MNIST files in `dir` (created if needed): training and test images of 28x28
/// pixels (`pixels` holds 784 a image) with their labels.
pub fn write_mnist(dir: &Path, train: (&[u8], &[u8]), test: (&[u8], &[u8])) {
    std::fs::create_dir_all(dir).expect("data dir");
    let images = |(pixels, labels): (&[u8], &[u8])| {
        let n = labels.len() as u32;
        assert_eq!(pixels.len(), labels.len() * 784, "784 pixels an image");
        [
            idx_bytes(3, &[n, 28, 28], pixels),
            idx_bytes(1, &[n], labels),
        ]
    };
    let [train_images, train_labels] = images(train);
    let [test_images, test_labels] = images(test);
    let files = [train_images, train_labels, test_images, test_labels];
    for ((name, _, _), bytes) in nn::Mnist::FILES.iter().zip(files) {
        std::fs::write(dir.join(name), bytes).expect("write an IDX file");
    }
}

/// Builds the example `name` with the profile `cargo test` built the libraries with
/// (so nothing is rebuilt), once per test binary, and returns its executable's path:
/// the profile's `examples` folder, two levels above this test's own binary.
pub fn build_example(name: &str) -> &'static Path {
    static BUILT: Mutex<BTreeMap<String, &'static Path>> = Mutex::new(BTreeMap::new());
    // Held while building: a second test asking for the same example waits for it.
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&path) = built.get(name) {
        return path;
    }
    let path: &'static Path = Box::leak(build(name).into_boxed_path());
    built.insert(name.to_string(), path);
    path
}

fn build(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives two levels below the profile's folder");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => "bench",
        _ => "test",
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", profile, "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo to build the example");
    assert!(status.success(), "building example {name} failed: {status}");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs the example `exe` in `cwd` with `args`, never reading the user's MNIST cache.
pub fn run_example(exe: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .env_remove("MNIST_DIR")
        .env("XDG_CACHE_HOME", cwd.join("no-cache"))
        .output()
        .expect("run the example")
}

/// What a process printed, standard output then standard error.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the example `exe` (see [`run_example`]) and checks that it failed without a
/// panic and that its message holds every one of `parts`; returns the message.
pub fn assert_refused(exe: &Path, cwd: &Path, args: &[&str], parts: &[&str]) -> String {
    let out = run_example(exe, cwd, args);
    let message = output_text(&out);
    assert!(!out.status.success(), "{args:?} was accepted:\n{message}");
    assert!(
        !message.contains("panicked"),
        "{args:?} panicked:\n{message}"
    );
    for part in parts {
        assert!(
            message.contains(part),
            "{args:?}: {part:?} not in the message:\n{message}"
        );
    }
    message
}
