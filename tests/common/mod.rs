//! Helpers shared by the integration tests: IDX files of their own, and the examples
//! they run as processes. Each test crate uses a part of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Builds the example `name` with the profile `cargo test` built the libraries with
/// (so nothing is rebuilt), and returns its executable's path: the profile's
/// `examples` folder, two levels above this test's own binary.
pub fn build_example(name: &str) -> PathBuf {
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
