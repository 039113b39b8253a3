//! The Shakespeare GPT example as a user runs it, on a small text of its own (no
//! download): a run stopped and resumed from its checkpoint ends bit for bit where an
//! uninterrupted one does, sampling continues a prompt, and a prompt with a character
//! the model never saw is refused.

use crate::common;
use nn::Checkpoint;
use std::path::Path;

fn example() -> &'static Path {
    common::build_example("shakespeare")
}

/// A tiny model's flags on `text`, `iters` iterations, checkpoint at `save`.
fn tiny(text: &Path, iters: &str, save: &Path) -> Vec<String> {
    let flags = [
        "--layers",
        "1",
        "--heads",
        "2",
        "--embed",
        "8",
        "--context",
        "8",
        "--batch",
        "4",
        "--warmup",
        "2",
        "--eval-interval",
        "3",
        "--eval-iters",
        "2",
        "--threads",
        "1",
        "--dropout",
        "0.1",
    ];
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    args.extend(["--text".into(), text.display().to_string()]);
    args.extend(["--iters".into(), iters.into()]);
    args.extend(["--save".into(), save.display().to_string()]);
    args
}

fn run_ok(cwd: &Path, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::run_example(example(), cwd, &args);
    let text = common::output_text(&out);
    assert!(out.status.success(), "{args:?} failed:\n{text}");
    text
}

#[test]
fn a_resumed_run_is_bit_identical_and_sampling_continues_the_prompt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("verse.txt");
    let verse =
        "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n";
    std::fs::write(&text, verse.repeat(40)).expect("write the text");
    let (straight, stopped) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );

    let out = run_ok(dir.path(), &tiny(&text, "6", &straight));
    assert!(out.contains("iter 0: train loss"), "{out}");
    assert!(out.contains("iter 6: train loss"), "{out}");
    assert!(out.contains("RESULT impl=backprop net=gpt"), "{out}");
    let mut paused = tiny(&text, "6", &stopped);
    paused.extend(["--pause-at".into(), "3".into()]);
    let out = run_ok(dir.path(), &paused);
    assert!(
        out.contains("iter 3: train loss") && !out.contains("iter 6"),
        "{out}"
    );
    let resume = [
        "--resume",
        &stopped.display().to_string(),
        "--iters",
        "6",
        "--save",
        &stopped.display().to_string(),
        "--threads",
        "1",
        "--text",
        &text.display().to_string(),
    ]
    .map(String::from);
    let out = run_ok(dir.path(), &resume);
    assert!(out.contains("resuming"), "{out}");
    let (a, b) = (
        Checkpoint::<f32>::load(&straight).expect("straight"),
        Checkpoint::<f32>::load(&stopped).expect("resumed"),
    );
    assert_eq!(a.params, b.params, "parameters, bit for bit");
    assert_eq!(a.optimizer, b.optimizer, "AdamW's state");
    assert_eq!(a.info.get("iter").map(String::as_str), Some("6"));
    // The evaluations so far travel in the checkpoint: the resumed run's loss curve
    // starts at iteration 0, with the same numbers.
    let losses = a.info.get("losses").expect("the loss history");
    assert_eq!(
        losses.split(',').count(),
        3,
        "iterations 0, 3 and 6: {losses}"
    );
    assert_eq!(a.info.get("losses"), b.info.get("losses"));

    let sample = [
        "--sample",
        "30",
        "--load",
        &straight.display().to_string(),
        "--prompt",
        "Thou",
    ]
    .map(String::from);
    let out = run_ok(dir.path(), &sample);
    let line = out.trim_end_matches('\n');
    assert!(
        line.starts_with("Thou") && line.chars().count() == 34,
        "{out:?}"
    );
    assert!(line.chars().all(|c| verse.contains(c)), "{out:?}");
    let refused = common::assert_refused(
        example(),
        dir.path(),
        &[
            "--sample",
            "5",
            "--load",
            &straight.display().to_string(),
            "--prompt",
            "Thou~",
        ],
        &["'~'", "not in the vocabulary"],
    );
    assert!(refused.contains("U+007E"), "{refused}");
}
