//! What a GPT's attention looks at: the pictures of every head are well-formed SVG with
//! a cell per layer and head and nothing drawn above the diagonal, the gradient of a
//! prediction's cost with respect to a head's attention agrees with finite differences,
//! and the Shakespeare example draws them from a checkpoint and refuses what it cannot
//! draw.

use crate::common;
use backprop::attention::{
    draw_attention, draw_cost_gradient, Attention, AttentionError, CostGradient,
};
use nn::{Gpt, GptConfig};
use std::path::Path;

const ALPHABET: &str = "ab&<c d";

fn ids(prompt: &str) -> Vec<usize> {
    prompt
        .chars()
        .map(|c| {
            ALPHABET
                .chars()
                .position(|a| a == c)
                .expect("in the alphabet")
        })
        .collect()
}

fn tiny_config() -> GptConfig {
    GptConfig {
        context: 8,
        layers: 2,
        heads: 3,
        embed: 12,
        ..GptConfig::new(ALPHABET.chars().count())
    }
}

/// Checks that `svg` is one well-formed element tree whose root is `<svg>`: every tag
/// closed in order, every `&` an entity. Returns the elements' opening tags.
fn parse_svg(svg: &str) -> Vec<String> {
    let body = svg
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .expect("an XML declaration")
        .trim();
    let mut stack: Vec<String> = Vec::new();
    let mut opened = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        check_entities(text);
        assert!(
            !stack.is_empty() || text.trim().is_empty(),
            "text outside the root: {text:?}"
        );
        let end = rest[start..].find('>').expect("a tag closes") + start;
        let tag = &rest[start + 1..end];
        check_entities(tag);
        assert!(!tag.contains('<'), "a '<' inside the tag {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "closing {name}");
        } else {
            assert!(
                !stack.is_empty() || opened.is_empty(),
                "a second root element: {tag:?}"
            );
            let name = tag.split_whitespace().next().expect("a name");
            let name = name.trim_end_matches('/').to_string();
            opened.push(tag.to_string());
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
    let root = opened.first().expect("a root element");
    assert!(
        root.starts_with("svg ") && root.contains("xmlns=\"http://www.w3.org/2000/svg\""),
        "the root is not an SVG element: {root}"
    );
    opened
}

fn check_entities(text: &str) {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
            "a bare '&' in {text:?}"
        );
    }
}

/// An attribute's value in an opening tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].split('"').next()
}

/// The weights drawn in each cell, in order: `((layer, head), [(q, k, value)])`.
type Cells = Vec<((usize, usize), Vec<(usize, usize, f64)>)>;

fn drawn(tags: &[String]) -> Cells {
    let mut cells: Cells = Vec::new();
    for tag in tags {
        let number = |name| -> usize {
            attribute(tag, name)
                .and_then(|v| v.parse().ok())
                .expect("a number")
        };
        if tag.starts_with("g ") && attribute(tag, "class") == Some("cell") {
            cells.push(((number("data-layer"), number("data-head")), Vec::new()));
        } else if tag.starts_with("rect ") && attribute(tag, "class") == Some("w") {
            let v: f64 = attribute(tag, "data-v")
                .and_then(|v| v.parse().ok())
                .expect("a value");
            let entry = (number("data-q"), number("data-k"), v);
            let (_, cell) = cells.last_mut().expect("a weight inside a cell");
            cell.push(entry);
        }
    }
    cells
}

#[test]
fn the_attention_picture_has_a_cell_per_layer_and_head_and_nothing_above_the_diagonal() {
    let model = Gpt::<f32>::new(tiny_config(), 3);
    let prompt = "ab&<c d";
    let attention = Attention::of(&model, &ids(prompt)).expect("attention");
    let time = prompt.chars().count();
    assert_eq!(
        (attention.layers, attention.heads, attention.time),
        (2, 3, time)
    );
    for layer in 0..2 {
        for head in 0..3 {
            let pattern = attention.head(layer, head);
            for q in 0..time {
                let row = &pattern[q * time..(q + 1) * time];
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
                assert!(row[q + 1..].iter().all(|&w| w == 0.0), "{row:?}");
            }
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attention.svg");
    draw_attention(&path, &attention, prompt).expect("draw");
    let svg = std::fs::read_to_string(&path).expect("read");
    let tags = parse_svg(&svg);
    let cells = drawn(&tags);
    let expected: Vec<(usize, usize)> = (0..2).flat_map(|l| (0..3).map(move |h| (l, h))).collect();
    let keys: Vec<(usize, usize)> = cells.iter().map(|c| c.0).collect();
    assert_eq!(
        keys, expected,
        "one cell per layer and head, a row per layer"
    );
    for ((layer, head), weights) in &cells {
        // Only the lower triangle is drawn, each weight once, with its exact value.
        assert_eq!(weights.len(), time * (time + 1) / 2);
        let pattern = attention.head(*layer, *head);
        for &(q, k, v) in weights {
            assert!(k <= q, "a weight drawn above the diagonal: ({q}, {k})");
            assert_eq!(v, pattern[q * time + k], "({q}, {k})");
        }
        assert!(svg.contains(&format!(">layer {layer}, head {head}<")));
    }
    // The characters as tick labels, escaped, a space shown as one.
    for label in [">&amp;<", ">&lt;<", ">␣<", ">d<"] {
        assert!(svg.contains(label), "no tick label {label}");
    }
    assert!(svg.contains(">attention weight<") && svg.contains(">1.00<"));

    let err = draw_attention(&path, &attention, "ab").expect_err("a prompt of another length");
    assert!(err.to_string().contains("2 characters"), "{err}");
}

/// `model` with every attention weight of `layer` scaled by `factor`, so that its
/// heads do not read every position alike.
fn sharpened(mut model: Gpt<f64>, factor: f64) -> Gpt<f64> {
    let layers = model.config().layers;
    for layer in 0..layers {
        let name = format!("h.{layer}.attn.c_attn.weight");
        let w = model.params_mut().get_mut(&name).expect("c_attn");
        let data = w.data().iter().map(|v| v * factor).collect();
        *w = autodiff::Tensor::from_vec(data, w.shape());
    }
    model
}

#[test]
fn the_gradient_panel_matches_finite_differences_through_the_heads_queries_and_keys() {
    let config = GptConfig {
        heads: 2,
        embed: 8,
        ..tiny_config()
    };
    let model = sharpened(Gpt::<f64>::new(config, 5), 20.0);
    let prompt = ids("ab&a<cb");
    let head_dim = config.head_dim();
    for layer in 0..config.layers {
        for head in 0..config.heads {
            let g = CostGradient::of(&model, &prompt, layer, head, None).expect("gradient");
            assert_eq!((g.position, g.target), (5, prompt[6]));
            let time = prompt.len();
            for q in 0..time {
                for k in q + 1..time {
                    assert_eq!(g.gradient[q * time + k], 0.0, "above the diagonal");
                }
                // In the last layer only the scored row reaches the cost; the rows
                // after it never do.
                let row = &g.gradient[q * time..(q + 1) * time];
                if q > g.position || (layer + 1 == config.layers && q != g.position) {
                    assert!(row.iter().all(|&v| v == 0.0), "row {q}: {row:?}");
                }
            }
            // The head's query and key columns change the cost only through this
            // head's attention: d cost = Σ (d cost / d attention) ⊙ d attention.
            let name = format!("h.{layer}.attn.c_attn.weight");
            let eps = 1e-5;
            let nudged = |sign: f64| {
                let mut m = sharpened(Gpt::<f64>::new(config, 5), 20.0);
                let w = m.params_mut().get_mut(&name).expect("c_attn");
                let cols = w.shape()[1];
                let mut data = w.data().to_vec();
                for i in 0..config.embed {
                    for d in 0..head_dim {
                        for part in [0, 1] {
                            let col = part * config.embed + head * head_dim + d;
                            let direction = ((i * 7 + d * 3 + part) % 5) as f64 - 2.0;
                            data[i * cols + col] += sign * eps * direction;
                        }
                    }
                }
                *w = autodiff::Tensor::from_vec(data, w.shape());
                CostGradient::of(&m, &prompt, layer, head, None).expect("nudged")
            };
            let (up, down) = (nudged(1.0), nudged(-1.0));
            let measured = (up.cost - down.cost) / (2.0 * eps);
            let predicted: f64 = g
                .gradient
                .iter()
                .zip(up.attention.iter().zip(&down.attention))
                .map(|(g, (a, b))| g * (a - b) / (2.0 * eps))
                .sum();
            assert!(measured.abs() > 1e-4, "a direction that moves the cost");
            assert!(
                (measured - predicted).abs() <= 1e-6 * measured.abs().max(1.0),
                "layer {layer}, head {head}: finite differences {measured}, gradient {predicted}"
            );
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("grad.svg");
    let g = CostGradient::of(&model, &prompt, 1, 1, Some(2)).expect("gradient");
    draw_cost_gradient(&path, &g, "ab&a<cb").expect("draw");
    let svg = std::fs::read_to_string(&path).expect("read");
    let cells = drawn(&parse_svg(&svg));
    let keys: Vec<(usize, usize)> = cells.iter().map(|c| c.0).collect();
    assert_eq!(keys, [(1, 1), (1, 1)], "the pattern, then the gradient");
    for ((_, drawn), values) in cells.iter().zip([&g.attention, &g.gradient]) {
        assert_eq!(drawn.len(), 7 * 8 / 2, "the lower triangle");
        for &(q, k, v) in drawn {
            assert_eq!(v, values[q * 7 + k], "({q}, {k})");
        }
    }
    assert!(
        svg.contains("position 2 (&amp;) predicting a"),
        "the scored prediction"
    );
}

#[test]
fn what_cannot_be_drawn_is_an_error_saying_why() {
    let model = Gpt::<f32>::new(tiny_config(), 1);
    let cases = [
        (
            Attention::of(&model, &[]).err(),
            AttentionError::EmptyPrompt,
        ),
        (
            Attention::of(&model, &[0; 9]).err(),
            AttentionError::TooLong {
                length: 9,
                context: 8,
            },
        ),
        (
            Attention::of(&model, &[0, 7]).err(),
            AttentionError::UnknownId {
                id: 7,
                position: 1,
                vocab: 7,
            },
        ),
        (
            CostGradient::of(&model, &[0, 1], 2, 0, None).err(),
            AttentionError::NoLayer {
                layer: 2,
                layers: 2,
            },
        ),
        (
            CostGradient::of(&model, &[0, 1], 0, 3, None).err(),
            AttentionError::NoHead { head: 3, heads: 3 },
        ),
        (
            CostGradient::of(&model, &[0, 1], 0, 0, Some(1)).err(),
            AttentionError::NoNextCharacter {
                position: 1,
                length: 2,
            },
        ),
        (
            CostGradient::of(&model, &[0], 0, 0, None).err(),
            AttentionError::NoNextCharacter {
                position: 0,
                length: 1,
            },
        ),
    ];
    for (got, expected) in cases {
        assert_eq!(got.as_ref(), Some(&expected));
    }
    let message = AttentionError::NoLayer {
        layer: 4,
        layers: 2,
    }
    .to_string();
    assert_eq!(message, "there is no layer 4: the model has 2 (0 to 1)");
}

#[test]
fn the_loss_curve_draws_one_evaluation_or_many_and_refuses_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("loss.svg");
    backprop::pictures::loss_curve(&path, &[(0, 4.2, 4.3)]).expect("one evaluation");
    let evaluations = [(0, 4.2, 4.3), (250, 2.1, 2.3), (500, 1.6, 1.9)];
    backprop::pictures::loss_curve(&path, &evaluations).expect("three");
    let svg = std::fs::read_to_string(&path).expect("read");
    for label in ["train", "validation", "iteration", "500"] {
        assert!(svg.contains(label), "the curve lacks {label:?}");
    }
    let err = backprop::pictures::loss_curve(&path, &[(0, f64::NAN, 1.0)]).expect_err("none");
    assert!(err.to_string().contains("nothing to plot"), "{err}");
}

fn example() -> &'static Path {
    common::build_example("shakespeare")
}

#[test]
fn the_example_draws_attention_from_a_checkpoint_and_refuses_what_it_cannot_draw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("verse.txt");
    let verse = "Thou art more lovely & more temperate.\nRough winds do shake the buds.\n";
    std::fs::write(&text, verse.repeat(30)).expect("write the text");
    let save = dir.path().join("ck").join("tiny.safetensors");
    let (text, save) = (text.display().to_string(), save.display().to_string());
    let train = [
        "--layers",
        "2",
        "--heads",
        "2",
        "--embed",
        "8",
        "--context",
        "8",
        "--batch",
        "4",
        "--warmup",
        "1",
        "--iters",
        "4",
        "--eval-interval",
        "2",
        "--eval-iters",
        "1",
        "--threads",
        "1",
        "--text",
        &text,
        "--save",
        &save,
    ];
    let out = common::run_example(example(), dir.path(), &train);
    let printed = common::output_text(&out);
    assert!(out.status.success(), "{printed}");
    let loss = dir.path().join("ck").join("tiny-loss.svg");
    assert!(printed.contains(&format!("loss curve written to {}", loss.display())));
    let curve = std::fs::read_to_string(&loss).expect("the loss curve");
    assert!(curve.contains("validation") && curve.contains("iteration"));

    let draw = [
        "--attention",
        "--load",
        &save,
        "--prompt",
        "Thou art",
        "--threads",
        "1",
    ];
    let mut args = draw.to_vec();
    args.extend(["--layer", "1", "--head", "1"]);
    let out = common::run_example(example(), dir.path(), &args);
    let printed = common::output_text(&out);
    assert!(out.status.success(), "{printed}");
    for name in ["tiny-attention.svg", "tiny-attention-grad.svg"] {
        let path = dir.path().join("ck").join(name);
        assert!(printed.contains(&path.display().to_string()), "{printed}");
        let svg = std::fs::read_to_string(&path).expect("the picture");
        parse_svg(&svg);
    }
    let grid = std::fs::read_to_string(dir.path().join("ck").join("tiny-attention.svg"))
        .expect("the grid");
    assert_eq!(drawn(&parse_svg(&grid)).len(), 4, "2 layers x 2 heads");

    for (extra, parts) in [
        (
            &["--layer", "2"][..],
            &["--layer", "no layer 2", "0 to 1"][..],
        ),
        (&["--head", "2"], &["--head", "no head 2"]),
        (&["--position", "7"], &["--position", "no next character"]),
    ] {
        let mut args = draw.to_vec();
        args.extend(extra);
        common::assert_refused(example(), dir.path(), &args, parts);
    }
    let with_prompt = |prompt: &'static str| {
        [
            "--attention",
            "--load",
            &save,
            "--prompt",
            prompt,
            "--threads",
            "1",
        ]
    };
    common::assert_refused(
        example(),
        dir.path(),
        &with_prompt("Thou art more"),
        &["13 characters", "context of 8"],
    );
    common::assert_refused(
        example(),
        dir.path(),
        &with_prompt("Thou~"),
        &["'~'", "not in the vocabulary"],
    );
    common::assert_refused(example(), dir.path(), &with_prompt("T"), &["at least 2"]);
}
