//! The per_sample example, run as a process on an untrained network A and a few
//! synthetic IDX images: the examples it names as pulling hardest and disagreeing most,
//! and their printed norms and cosines, are checked against per-example gradients
//! computed here; the picture holds one thumbnail per named example; bad arguments are
//! refused with a message saying what to do.

use crate::common;

use nn::{per_sample_grads, Mnist, Network, Quadratic, Trainer};
use std::path::Path;
use std::process::Output;

fn example() -> &'static Path {
    common::build_example("per_sample")
}

/// `count` 28x28 images of scattered ink (a different scatter per image, from a small
/// linear congruential generator) with labels 0-9 in turn.
fn images(count: usize, salt: u64) -> (Vec<u8>, Vec<u8>) {
    let mut state = 0x2545_F491_4F6C_DD1D ^ salt;
    let pixels = (0..count * 784)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = (state >> 56) as u8;
            if v < 180 {
                0
            } else {
                v
            }
        })
        .collect();
    let labels = (0..count).map(|i| (i % 10) as u8).collect();
    (pixels, labels)
}

/// A network A checkpoint (untrained) and 30 training and 5 test images in a new folder.
fn setup() -> (tempfile::TempDir, Trainer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (train, train_labels) = images(30, 1);
    let (test, test_labels) = images(5, 2);
    common::write_mnist(&data, (&train, &train_labels), (&test, &test_labels));
    let trainer = Trainer::new(Network::A.recipe(), 4);
    trainer
        .checkpoint()
        .save(dir.path().join("a.safetensors"))
        .expect("save the checkpoint");
    (dir, trainer)
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    common::run_example(example(), cwd, args)
}

fn text(out: &Output) -> String {
    common::output_text(out)
}

/// The table rows printed under the line that starts with `heading`: (image, norm,
/// cosine) each.
fn table(printed: &str, heading: &str) -> Vec<(usize, f64, f64)> {
    printed
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(2) // the heading and the column names
        .map_while(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let number = |k: usize| cells.get(k)?.parse::<f64>().ok();
            Some((cells.get(1)?.parse().ok()?, number(5)?, number(6)?))
        })
        .collect()
}

/// Each example's gradient norm and cosine with the batch's mean gradient, computed
/// here from the library's per-example gradients.
fn norms_and_cosines(
    trainer: &Trainer,
    data: &Path,
    start: usize,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let batch = Mnist::load(Some(data))
        .expect("load")
        .train
        .slice(start, start + n);
    let model = &trainer.model;
    let each = per_sample_grads(
        model,
        model.params(),
        &Quadratic,
        &batch.images,
        &batch.labels,
    );
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            each.values()
                .flat_map(|g| {
                    let per = g.numel() / n;
                    g.data()[i * per..(i + 1) * per]
                        .iter()
                        .map(|&v| f64::from(v))
                })
                .collect()
        })
        .collect();
    let mean: Vec<f64> = (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let norms: Vec<f64> = rows.iter().map(|r| norm(r)).collect();
    let cosines = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(a, b)| a * b).sum::<f64>() / (norm(r) * norm(&mean)))
        .collect();
    (norms, cosines)
}

/// Agrees with `want` to the three significant digits printed.
fn close(printed: f64, want: f64) -> bool {
    (printed - want).abs() <= 5e-3 * want.abs() + 1e-12
}

#[test]
fn the_table_and_picture_name_the_hardest_pulling_and_most_dissenting_examples() {
    let (dir, trainer) = setup();
    let cwd = dir.path();
    let args = [
        "--checkpoint",
        "a.safetensors",
        "--data-dir",
        "data",
        "--batch",
        "12",
        "--index",
        "3",
        "--top",
        "4",
        "--out",
        "pictures/each.svg",
    ];
    let out = run(cwd, &args);
    let printed = text(&out);
    assert!(out.status.success(), "the example failed:\n{printed}");
    assert!(printed.contains("training images #3 to #14"), "{printed}");

    let (norms, cosines) = norms_and_cosines(&trainer, &cwd.join("data"), 3, 12);
    let mut by_norm: Vec<usize> = (0..12).collect();
    by_norm.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
    let mut by_cosine: Vec<usize> = (0..12).collect();
    by_cosine.sort_by(|&a, &b| cosines[a].total_cmp(&cosines[b]));
    // The two orders must differ for the test to tell them apart.
    assert_ne!(by_norm[..4], by_cosine[..4]);

    let hardest = table(&printed, "pull hardest");
    let dissenting = table(&printed, "disagree most");
    assert_eq!(hardest.len(), 4, "{printed}");
    assert_eq!(dissenting.len(), 4, "{printed}");
    for (k, &(image, norm, cosine)) in hardest.iter().enumerate() {
        let i = by_norm[k];
        assert_eq!(image, 3 + i, "rank {} by norm:\n{printed}", k + 1);
        assert!(
            close(norm, norms[i]),
            "norm {norm} printed, {} computed",
            norms[i]
        );
        assert!(close(cosine, cosines[i]), "cosine {cosine}, {}", cosines[i]);
    }
    let top_norm = norms.iter().copied().fold(0.0, f64::max);
    assert!(close(hardest[0].1, top_norm));
    for (k, &(image, _, cosine)) in dissenting.iter().enumerate() {
        let i = by_cosine[k];
        assert_eq!(image, 3 + i, "rank {} by cosine:\n{printed}", k + 1);
        assert!(close(cosine, cosines[i]), "cosine {cosine}, {}", cosines[i]);
    }
    for unreadable in ["NaN", "Some(", "0.00000"] {
        assert!(
            !printed.contains(unreadable),
            "{unreadable:?} printed:\n{printed}"
        );
    }

    let svg = std::fs::read_to_string(cwd.join("pictures/each.svg")).expect("the picture");
    assert!(svg.trim_end().ends_with("</svg>"));
    // Every thumbnail has a line "norm ..." and a line "cos ..." under it.
    let lines = |start: &str| svg.lines().filter(|l| l.trim().starts_with(start)).count();
    assert_eq!((lines("norm "), lines("cos ")), (8, 8), "{svg}");
    for part in [
        "pull hardest",
        "disagree most",
        "What each example of one minibatch wants",
    ] {
        assert!(svg.contains(part), "the picture lacks {part:?}");
    }

    // A seed draws its own minibatch, the same one every time.
    let seeded = |seed: &str| {
        let out = run(
            cwd,
            &[&args[..6], &["--seed", seed, "--out", "s.svg"]].concat(),
        );
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = seeded("7");
    assert!(
        first.contains("12 training images drawn with seed 7"),
        "{first}"
    );
    assert_eq!(first, seeded("7"));
}

#[test]
fn bad_arguments_are_refused_with_a_clear_message() {
    let (dir, _) = setup();
    let cwd = dir.path();
    let with = |extra: &[&str]| {
        let args = [
            &["--checkpoint", "a.safetensors", "--data-dir", "data"],
            extra,
        ]
        .concat();
        run(cwd, &args)
    };
    for (extra, says) in [
        (&["--batch", "0"][..], "--batch 0 is too small"),
        (&["--batch", "1"][..], "give at least 2"),
        (&["--batch", "31"][..], "more than the 30 training images"),
        (
            &["--index", "25", "--batch", "10"][..],
            "runs past the 30 training images",
        ),
        (&["--top", "0"][..], "--top 0 shows nothing"),
        (&["--batch", "ten"][..], "invalid value 'ten'"),
        (&["--index", "1", "--seed", "2"][..], "cannot be used with"),
    ] {
        let out = with(extra);
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(
            text(&out).contains(says),
            "{extra:?}: {says:?} not in:\n{}",
            text(&out)
        );
    }
    let out = run(cwd, &["--checkpoint", "nowhere.safetensors"]);
    assert!(!out.status.success());
    for part in [
        "nowhere.safetensors does not exist",
        "cargo run --release --example mnist -- --net a",
    ] {
        assert!(
            text(&out).contains(part),
            "{part:?} not in:\n{}",
            text(&out)
        );
    }
}
