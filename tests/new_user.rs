//! A new user's crate, outside the workspace (tests/new_user/), built and run as its
//! author would: `cargo run` in a fresh target directory, with the dependency lines
//! README.md gives. It must compile (a stored cost used by two transforms, parameter
//! values without a map), print its gradients, and then stop on a layer given the wrong
//! width, with a panic that names the layer and points at the user's own line.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_crate_written_from_the_readme_builds_runs_and_panics_at_its_own_line() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let krate = root.join("tests/new_user");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Its own target directory: the one this test runs from is locked by `cargo test`.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("new_user");
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        // Built without debug info, which the test does not read (a faster build).
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env_remove("RUSTFLAGS")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = format!("stdout:\n{stdout}\nstderr:\n{stderr}");

    assert!(
        !stderr.contains("error["),
        "the crate does not compile:\n{said}"
    );
    for name in [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name}: gradient norm ")));
        assert!(line.is_some(), "no gradient line for {name}:\n{said}");
    }
    assert_eq!(
        out.status.code(),
        Some(101),
        "the wrong width must panic:\n{said}"
    );

    let main = std::fs::read_to_string(krate.join("src/main.rs")).expect("its main.rs");
    let line = main
        .lines()
        .position(|l| l.contains("model.forward(&bound, narrow)"))
        .expect("the wrong-width call")
        + 1;
    let at = format!("panicked at src/main.rs:{line}:");
    assert!(
        stderr.contains(&at),
        "the panic is not at the user's line {line}:\n{said}"
    );
    assert!(
        stderr.contains("layers.0 (linear 2 -> 3)"),
        "the panic does not name the layer:\n{said}"
    );
}
