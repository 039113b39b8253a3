//! The figures are written and well formed: PNGs decode to the expected size, SVGs
//! parse as SVG documents with the expected labels.

use autodiff::Tensor;
use backprop::pictures::{self, Column, Layer, Panel, Shade};
use nn::ConfusionMatrix;

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("open png"),
    ));
    let reader = decoder.read_info().expect("a valid PNG");
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn weight_tiles_make_a_grid_of_28x28_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.png");
    let w = Tensor::<f32>::from_vec(
        (0..784 * 16)
            .map(|i| ((i % 97) as f32 - 48.0) / 48.0)
            .collect(),
        [784, 16],
    );
    pictures::weight_tiles(&path, &w, 4).expect("write");
    // 4 tiles of 28 px at scale 4, with 4 px gaps around them.
    assert_eq!(png_size(&path), (4 * (112 + 4) + 4, 4 * (112 + 4) + 4));
    let not_square = Tensor::<f32>::zeros([10, 3]);
    assert!(pictures::weight_tiles(&path, &not_square, 4).is_err());
}

#[test]
fn plots_and_figures_are_svg_with_their_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let curve = dir.path().join("curve.svg");
    pictures::training_curve(&curve, &[0.3, 0.1, 0.05], &[0.88, 0.92, 0.93]).expect("curve");
    let mut confusion = ConfusionMatrix::new(3);
    confusion.add(
        &Tensor::<f32>::from_vec(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [2, 3]),
        &[0, 2],
    );
    let matrix = dir.path().join("confusion.svg");
    pictures::confusion_matrix(&matrix, &confusion).expect("confusion");
    let grid = dir.path().join("wrong.svg");
    pictures::misclassified(&grid, &[(vec![0.5; 784], 3, 5)], 4).expect("grid");
    let figure = dir.path().join("nudges.svg");
    let layers = [Layer {
        name: "output".into(),
        note: "rows: digits".into(),
        rows: vec!["0".into(), "1".into()],
        columns: vec![Column {
            title: "output -dC/da".into(),
            values: vec![0.004, -0.02],
            shade: Shade::Nudge,
            marked: None,
        }],
    }];
    pictures::nudges_figure(
        &figure,
        "one example",
        ("input", &[0.0; 784]),
        &layers,
        None,
    )
    .expect("figure");
    for (path, label) in [
        (&curve, "test accuracy"),
        (&matrix, "predicted"),
        (&grid, "3 / 5"),
        (&figure, "output -dC/da"),
    ] {
        let text = std::fs::read_to_string(path).expect("read svg");
        assert!(
            text.contains("<svg") && text.trim_end().ends_with("</svg>"),
            "{} is not an SVG document",
            path.display()
        );
        assert!(text.contains(label), "{} lacks {label:?}", path.display());
    }
}

#[test]
fn a_picture_in_a_missing_directory_is_an_error_naming_it() {
    let err = pictures::Canvas::new(2, 2, [0, 0, 0])
        .save(std::path::Path::new("/nonexistent-dir/x.png"))
        .expect_err("no directory");
    assert!(err.to_string().contains("nonexistent-dir"), "{err}");
}

#[test]
fn a_line_plot_has_its_legend_and_refuses_nothing_to_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lines.svg");
    let parabola = |a: f64| (-10..=10).map(move |k| (k as f64 / 10.0, a * (k * k) as f64 / 100.0));
    let curves = [
        pictures::Curve {
            label: "measured".into(),
            points: parabola(1.0).collect(),
            color: [200, 30, 30],
            dashed: false,
        },
        // Ten times as steep: cut where it leaves the measured range.
        pictures::Curve {
            label: "model".into(),
            points: parabola(10.0).collect(),
            color: [120, 120, 120],
            dashed: true,
        },
    ];
    pictures::line_plot(&path, "a title", "step t", "cost", &curves).expect("plot");
    let text = std::fs::read_to_string(&path).expect("read svg");
    for label in ["a title", "step t", "cost", "measured", "model"] {
        assert!(text.contains(label), "the plot lacks {label:?}");
    }
    let empty = [pictures::Curve {
        label: "nothing".into(),
        points: vec![(0.0, f64::NAN)],
        color: [0, 0, 0],
        dashed: false,
    }];
    let err = pictures::line_plot(&path, "t", "x", "y", &empty).expect_err("nothing to plot");
    assert!(err.to_string().contains("nothing to plot"), "{err}");
}

/// A `<text>` element of an SVG document: its anchor point, whether it is right-aligned
/// there (ends at x), and its text, trimmed.
struct SvgText {
    x: i64,
    y: i64,
    ends_at_x: bool,
    text: String,
}

fn svg_texts(svg: &str) -> Vec<SvgText> {
    let attribute = |tag: &str, name: &str| -> Option<i64> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[start..].split('"').next()?.parse().ok()
    };
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let tag = &t[..t.find('>')?];
            Some(SvgText {
                x: attribute(tag, "x")?,
                y: attribute(tag, "y")?,
                ends_at_x: tag.contains("text-anchor=\"end\""),
                text: t[tag.len() + 1..t.find("</text>")?].trim().to_string(),
            })
        })
        .collect()
}

/// The labels `labels` are all present, right-aligned at one x (left of a layer's first
/// column) and one below the other: the rows of a layer, labelled.
fn assert_row_labels(texts: &[SvgText], labels: &[String]) {
    let at = |x: i64, label: &String| {
        texts
            .iter()
            .find(|t| t.ends_at_x && t.x == x && &t.text == label)
    };
    let column = texts
        .iter()
        .filter(|t| t.ends_at_x && t.text == labels[0])
        .map(|t| t.x)
        .find(|&x| labels.iter().all(|l| at(x, l).is_some()))
        .unwrap_or_else(|| panic!("no column of row labels {labels:?}"));
    let ys: Vec<i64> = labels
        .iter()
        .filter_map(|l| at(column, l))
        .map(|t| t.y)
        .collect();
    assert!(
        ys.windows(2).all(|p| p[0] < p[1]),
        "row labels {labels:?} are not top to bottom: {ys:?}"
    );
}

/// A figure like the nudges example's: a hidden layer of 16 and an output layer of 10,
/// activations and nudges, a neuron's weight nudges about 1e-6.
fn nudges_layers() -> Vec<Layer> {
    let layer = |name: &str, rows: Vec<String>, marked: usize| {
        let n = rows.len();
        Layer {
            name: name.into(),
            note: format!("rows: {name}; ringed: {marked}"),
            columns: vec![
                Column {
                    title: "activation a".into(),
                    values: (0..n).map(|j| j as f32 / n as f32).collect(),
                    shade: Shade::Activation,
                    marked: Some(marked),
                },
                Column {
                    title: "nudge -dC/da".into(),
                    // Largest |value| 0.0224, at the bottom row.
                    values: (0..n)
                        .map(|j| if j + 1 == n { -0.0224 } else { j as f32 * 1e-4 })
                        .collect(),
                    shade: Shade::Nudge,
                    marked: Some(marked),
                },
            ],
            rows,
        }
    };
    vec![
        layer("hidden 1", (0..16).map(|j| format!("#{j}")).collect(), 3),
        layer("output", (0..10).map(|d| d.to_string()).collect(), 7),
    ]
}

#[test]
fn the_nudges_figure_labels_every_row_and_gives_each_panel_its_legend_and_scale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nudges.svg");
    // Weight nudges of about 1e-6, both signs: the colour bar must show those numbers.
    let weights: Vec<f32> = (0..784)
        .map(|i| ((i % 29) as f32 - 14.0) / 14.0 * 1.4e-6)
        .collect();
    pictures::nudges_figure(
        &path,
        "test image 0, a 7",
        ("test image 0", &[0.5; 784]),
        &nudges_layers(),
        Some(&Panel {
            title: "weight nudges -dC/dw".into(),
            notes: vec!["into hidden 1 neuron #3".into()],
            values: &weights,
        }),
    )
    .expect("figure");
    let svg = std::fs::read_to_string(&path).expect("read svg");
    let texts = svg_texts(&svg);
    let has = |s: &str| texts.iter().any(|t| t.text == s);
    let count = |s: &str| texts.iter().filter(|t| t.text == s).count();
    // Every output neuron labelled with its digit, every hidden neuron with its index,
    // top to bottom.
    assert_row_labels(&texts, &(0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    assert_row_labels(
        &texts,
        &(0..16).map(|j| format!("#{j}")).collect::<Vec<_>>(),
    );
    // One legend per column (2 layers x 2 columns) plus the input's and the panel's,
    // each naming what its colours mean.
    assert_eq!(count("white 0, black 1"), 3, "activation legends");
    assert_eq!(count("red: up, blue: down"), 3, "nudge legends");
    // Each nudge column scaled to its own largest |value| (its bottom value, and the
    // left end of its colour bar), the panel to its own.
    assert_eq!(count("-0.0224"), 2 + 2, "values and scale ends");
    assert_eq!(count("+0.0224"), 2, "scale ends");
    assert!(has("-1.40e-6") && has("+1.40e-6"), "no panel scale");
    for heading in ["hidden 1", "output", "weight nudges -dC/dw", "test image 0"] {
        assert!(has(heading), "no {heading:?}");
    }
    assert!(!svg.contains("0.00000"), "an unreadable number");
}

#[test]
fn a_nudges_column_that_does_not_fit_its_rows_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layers = nudges_layers();
    layers[1].columns[1].values.pop();
    let err = pictures::nudges_figure(
        &dir.path().join("x.svg"),
        "t",
        ("input", &[0.0; 784]),
        &layers,
        None,
    )
    .expect_err("9 values for 10 rows");
    assert!(err.to_string().contains("9 values for 10 rows"), "{err}");
}

#[test]
fn the_largest_column_is_the_one_with_the_largest_norm() {
    // Three neurons' weight nudges, row-major [4, 3]: #0 has the largest single value,
    // #2 the largest norm, #1 is all zero.
    let m = [
        0.9, 0.0, 0.5, //
        0.0, 0.0, -0.5, //
        0.0, 0.0, 0.5, //
        0.0, 0.0, -0.5,
    ];
    let (j, norm) = pictures::largest_column(&m, 3).expect("three columns");
    assert_eq!(j, 2);
    assert!((norm - 1.0).abs() < 1e-6, "{norm}");
    // Ties go to the first; nothing has no largest.
    assert_eq!(pictures::largest_column(&[1.0, -1.0], 2), Some((0, 1.0)));
    assert_eq!(pictures::largest_column(&[], 0), None);
    // Tiny nudges are still told apart.
    let tiny = [1e-6, 3e-6, 2e-6, -4e-6];
    assert_eq!(pictures::largest_column(&tiny, 2).map(|c| c.0), Some(1));
}

#[test]
fn numbers_are_printed_with_three_significant_digits() {
    use pictures::{readable, signed_readable};
    assert_eq!(readable(1.4e-6), "1.40e-6");
    assert_eq!(signed_readable(1.4372e-6), "+1.44e-6");
    assert_eq!(signed_readable(-1.4e-6), "-1.40e-6");
    assert_eq!(signed_readable(-0.0224), "-0.0224");
    assert_eq!(signed_readable(0.0), "0");
    assert_eq!(readable(0.96875), "0.969");
    assert_eq!(readable(0.99996), "1.00");
    assert_eq!(readable(0.00998), "9.98e-3");
    assert_eq!(readable(0.009996), "0.0100");
    assert_eq!(readable(123.4), "123");
    assert_eq!(readable(12345.0), "1.23e4");
    assert_eq!(readable(f64::NAN), "NaN");
}

#[test]
fn digit_rows_put_each_thumbnails_lines_under_it_and_rows_one_below_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rows.svg");
    let thumbnail = |k: usize| pictures::Thumbnail {
        pixels: (0..784).map(|p| ((p + k) % 3) as f32 / 2.0).collect(),
        lines: vec![format!("#{k}"), format!("norm {k}")],
    };
    let rows = [
        pictures::DigitRow {
            title: "first row".into(),
            digits: (0..3).map(thumbnail).collect(),
        },
        pictures::DigitRow {
            title: "second row".into(),
            digits: (3..5).map(thumbnail).collect(),
        },
    ];
    pictures::digit_rows(&path, &["a title".into(), "what it shows".into()], &rows).expect("write");
    let svg = std::fs::read_to_string(&path).expect("read svg");
    assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    let texts = svg_texts(&svg);
    let find = |text: &str| {
        texts
            .iter()
            .find(|t| t.text == text)
            .unwrap_or_else(|| panic!("no {text:?} in the picture"))
    };
    let (title, second_title) = (find("a title"), find("what it shows"));
    let (first, second) = (find("first row"), find("second row"));
    assert!(title.y < second_title.y && second_title.y < first.y && first.y < second.y);
    for k in 0..5 {
        let (name, norm) = (find(&format!("#{k}")), find(&format!("norm {k}")));
        let heading = if k < 3 { first } else { second };
        // Under its image (84 pixels high) and its row's heading, in its own column.
        assert!(name.y > heading.y + 84 && norm.y > name.y && norm.x == name.x);
        assert!(
            k >= 3 || name.y < second.y,
            "#{k} is drawn into the next row"
        );
    }
    assert!(find("#1").x > find("#0").x && find("#0").x == find("#3").x);
}
