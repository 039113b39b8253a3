//! The figures are written and well formed: PNGs decode to the expected size, SVGs
//! parse as SVG documents with the expected labels.

use autodiff::Tensor;
use backprop::pictures::{self, Column};
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
    let columns = [Column {
        title: "output -dC/da".into(),
        values: vec![0.004, -0.02],
        color: pictures::nudge_color,
        limit: 0.02,
    }];
    pictures::nudges_figure(
        &figure,
        "one example",
        &[0.0; 784],
        &columns,
        Some(("weights", &[0.1; 784])),
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
