//! Pictures of what training and backpropagation do, drawn from the engine's own values
//! and gradients: images as PNG (`png`), plots and figures as SVG (`plotters`, which
//! writes text as SVG text, so no font files are needed).

use nn::ConfusionMatrix;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// A picture could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct PictureError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

fn fail(path: &Path, e: impl std::fmt::Display) -> PictureError {
    PictureError {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// An RGB image being assembled before it is written as PNG.
pub struct Canvas {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with one colour.
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Self {
        Canvas {
            width,
            height,
            rgb: fill
                .iter()
                .copied()
                .cycle()
                .take(width * height * 3)
                .collect(),
        }
    }

    /// Draws `values` (row-major, `w` wide) with each value as a `scale x scale` block at
    /// (`x`, `y`), coloured by `color`.
    pub fn blit(
        &mut self,
        x: usize,
        y: usize,
        w: usize,
        values: &[f32],
        scale: usize,
        color: impl Fn(f32) -> [u8; 3],
    ) {
        for (i, &v) in values.iter().enumerate() {
            let (row, col) = (i / w.max(1), i % w.max(1));
            let c = color(v);
            for dy in 0..scale {
                for dx in 0..scale {
                    let (px, py) = (x + col * scale + dx, y + row * scale + dy);
                    if px < self.width && py < self.height {
                        let at = (py * self.width + px) * 3;
                        self.rgb[at..at + 3].copy_from_slice(&c);
                    }
                }
            }
        }
    }

    /// Writes the canvas as an 8-bit RGB PNG.
    pub fn save(&self, path: &Path) -> Result<(), PictureError> {
        let file = std::fs::File::create(path).map_err(|e| fail(path, e))?;
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| fail(path, e))?;
        writer
            .write_image_data(&self.rgb)
            .map_err(|e| fail(path, e))?;
        writer.finish().map_err(|e| fail(path, e))
    }
}

/// Pixel intensity in [0, 1] as black-on-white ink.
pub fn ink(v: f32) -> [u8; 3] {
    let g = (255.0 * (1.0 - v.clamp(0.0, 1.0))) as u8;
    [g, g, g]
}

/// A diverging colour for `v / limit` in [-1, 1]: blue below zero, red above, white at 0.
pub fn diverging(v: f32, limit: f32) -> [u8; 3] {
    let t = if limit > 0.0 {
        (v / limit).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let fade = |t: f32| (255.0 * (1.0 - t.abs())) as u8;
    if t >= 0.0 {
        [255, fade(t), fade(t)]
    } else {
        [fade(t), fade(t), 255]
    }
}

/// The largest magnitude in `values` (0 for none): the scale of a diverging colour map.
pub fn max_abs(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The first layer's weights of a 784-input network as 28x28 tiles, one per hidden
/// neuron, in a grid `columns` wide: what each neuron "looks for" (red: positive).
pub fn weight_tiles(
    path: &Path,
    weight: &autodiff::Tensor<f32>,
    columns: usize,
) -> Result<(), PictureError> {
    let (inputs, neurons) = (weight.shape()[0], weight.shape()[1]);
    let side = (inputs as f64).sqrt() as usize;
    if side * side != inputs {
        return Err(fail(
            path,
            format!(
                "weights of shape {:?} are not square images",
                weight.shape()
            ),
        ));
    }
    let (scale, gap) = (4, 4);
    let columns = columns.max(1);
    let rows = neurons.div_ceil(columns);
    let tile = side * scale;
    let mut canvas = Canvas::new(
        columns * (tile + gap) + gap,
        rows * (tile + gap) + gap,
        [255, 255, 255],
    );
    for j in 0..neurons {
        let column: Vec<f32> = (0..inputs)
            .map(|i| weight.data()[i * neurons + j])
            .collect();
        let limit = max_abs(&column);
        let (x, y) = (
            gap + (j % columns) * (tile + gap),
            gap + (j / columns) * (tile + gap),
        );
        canvas.blit(x, y, side, &column, scale, |v| diverging(v, limit));
    }
    canvas.save(path)
}

fn svg_area(path: &Path, size: (u32, u32)) -> DrawingArea<SVGBackend<'_>, Shift> {
    let root = SVGBackend::new(path, size).into_drawing_area();
    let _ = root.fill(&WHITE);
    root
}

/// Mean training cost and test accuracy per epoch, on two axes.
pub fn training_curve(path: &Path, costs: &[f64], accuracies: &[f64]) -> Result<(), PictureError> {
    let n = costs.len().max(1) as f64;
    let max_cost = costs.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let min_acc = accuracies.iter().copied().fold(1.0, f64::min).min(0.9) - 0.01;
    let root = svg_area(path, (720, 420));
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "training: mean cost and test accuracy per epoch",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.5..n + 0.5, 0.0..max_cost)?
            .set_secondary_coord(0.5..n + 0.5, min_acc..1.0);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("mean training cost")
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("test accuracy")
            .draw()?;
        chart
            .draw_series(LineSeries::new(
                costs.iter().enumerate().map(|(i, &c)| (i as f64 + 1.0, c)),
                RED.stroke_width(2),
            ))?
            .label("cost")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        chart
            .draw_secondary_series(LineSeries::new(
                accuracies
                    .iter()
                    .enumerate()
                    .map(|(i, &a)| (i as f64 + 1.0, a)),
                BLUE.stroke_width(2),
            ))?
            .label("test accuracy")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// The confusion matrix as a heat map with its counts.
pub fn confusion_matrix(path: &Path, confusion: &ConfusionMatrix) -> Result<(), PictureError> {
    let k = confusion.classes();
    let cell = 44i32;
    let (left, top) = (70i32, 60i32);
    let size = (
        (left + cell * k as i32 + 20) as u32,
        (top + cell * k as i32 + 50) as u32,
    );
    let root = svg_area(path, size);
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        let font = ("sans-serif", 14).into_font();
        root.draw(&Text::new(
            "confusion matrix: rows true digit, columns predicted",
            (10, 12),
            ("sans-serif", 16).into_font(),
        ))?;
        let max_off = (0..k)
            .flat_map(|t| (0..k).filter(move |&p| p != t).map(move |p| (t, p)))
            .map(|(t, p)| confusion.get(t, p))
            .max()
            .unwrap_or(1)
            .max(1);
        for t in 0..k {
            let row_total: u64 = (0..k).map(|p| confusion.get(t, p)).sum();
            for p in 0..k {
                let count = confusion.get(t, p);
                // Diagonal in green by its share of the row, mistakes in red by count.
                let color = if t == p {
                    let s = count as f64 / row_total.max(1) as f64;
                    RGBColor(
                        (255.0 * (1.0 - 0.6 * s)) as u8,
                        255,
                        (255.0 * (1.0 - 0.6 * s)) as u8,
                    )
                } else {
                    let s = (count as f64 / max_off as f64).sqrt();
                    RGBColor(
                        255,
                        (255.0 * (1.0 - 0.8 * s)) as u8,
                        (255.0 * (1.0 - 0.8 * s)) as u8,
                    )
                };
                let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200),
                ))?;
                root.draw(&Text::new(
                    count.to_string(),
                    (x + 6, y + cell / 2 - 6),
                    font.clone(),
                ))?;
            }
            root.draw(&Text::new(
                t.to_string(),
                (left - 20, top + t as i32 * cell + cell / 2 - 6),
                font.clone(),
            ))?;
            root.draw(&Text::new(
                t.to_string(),
                (left + t as i32 * cell + cell / 2 - 4, top - 18),
                font.clone(),
            ))?;
        }
        root.draw(&Text::new(
            "true",
            (10, top + cell * k as i32 / 2),
            font.clone(),
        ))?;
        root.draw(&Text::new(
            "predicted",
            (left + cell * k as i32 / 2 - 30, top + cell * k as i32 + 12),
            font.clone(),
        ))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// Draws a 28x28 (or any square) image as grey cells in an SVG area, ink only.
fn draw_digit<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pixels: &[f32],
    x: i32,
    y: i32,
    cell: i32,
    color: impl Fn(f32) -> [u8; 3],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let side = (pixels.len() as f64).sqrt() as usize;
    for (i, &v) in pixels.iter().enumerate() {
        let [r, g, b] = color(v);
        if [r, g, b] == [255, 255, 255] {
            continue; // white on white: skip, keeps the file small
        }
        let (px, py) = (x + (i % side) as i32 * cell, y + (i / side) as i32 * cell);
        area.draw(&Rectangle::new(
            [(px, py), (px + cell, py + cell)],
            RGBColor(r, g, b).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(x, y), (x + cell * side as i32, y + cell * side as i32)],
        RGBColor(180, 180, 180),
    ))?;
    Ok(())
}

/// A grid of misclassified digits with their predicted and true labels.
pub fn misclassified(
    path: &Path,
    digits: &[(Vec<f32>, usize, usize)],
    columns: usize,
) -> Result<(), PictureError> {
    let columns = columns.max(1);
    let rows = digits.len().div_ceil(columns).max(1);
    let (cell, tile_w, tile_h) = (3i32, 100i32, 112i32);
    let root = svg_area(
        path,
        (
            (columns as i32 * tile_w + 20) as u32,
            (rows as i32 * tile_h + 40) as u32,
        ),
    );
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.draw(&Text::new(
            "misclassified test digits (predicted / true)",
            (10, 10),
            ("sans-serif", 16).into_font(),
        ))?;
        for (k, (pixels, predicted, truth)) in digits.iter().enumerate() {
            let (x, y) = (
                10 + (k % columns) as i32 * tile_w,
                34 + (k / columns) as i32 * tile_h,
            );
            draw_digit(&root, pixels, x, y, cell, ink)?;
            let label = format!("{predicted} / {truth}");
            root.draw(&Text::new(
                label,
                (x + 20, y + 28 * cell + 4),
                ("sans-serif", 14).into_font().color(&RED),
            ))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// One digit of [`digit_rows`]: its pixels (a square image, ink in [0, 1]) and the
/// lines of text written under it.
pub struct Thumbnail {
    /// The image, row by row.
    pub pixels: Vec<f32>,
    /// What is written under it, one line each.
    pub lines: Vec<String>,
}

/// A row of [`digit_rows`]: a heading above its digits.
pub struct DigitRow {
    /// The row's heading.
    pub title: String,
    /// The digits, left to right.
    pub digits: Vec<Thumbnail>,
}

/// Rows of digit thumbnails, each row under its heading and each digit with its lines
/// of text under it, below `title` (one line each): examples picked out of a batch
/// with what was measured on them.
pub fn digit_rows(path: &Path, title: &[String], rows: &[DigitRow]) -> Result<(), PictureError> {
    let (cell, tile_w, line_h, heading_h) = (3i32, 112i32, 15i32, 26i32);
    let lines = rows
        .iter()
        .flat_map(|r| r.digits.iter().map(|d| d.lines.len()))
        .max()
        .unwrap_or(0) as i32;
    let side = |pixels: &[f32]| (pixels.len() as f64).sqrt() as i32;
    let image_h = rows
        .iter()
        .flat_map(|r| r.digits.iter().map(|d| side(&d.pixels) * cell))
        .max()
        .unwrap_or(0);
    let tile_h = image_h + 6 + lines * line_h + 10;
    let columns = rows
        .iter()
        .map(|r| r.digits.len())
        .max()
        .unwrap_or(0)
        .max(1) as i32;
    let top = 12 + title.len() as i32 * 20 + 6;
    let width = (columns * tile_w + 20) as u32;
    let height = (top + rows.len() as i32 * (heading_h + tile_h) + 10) as u32;
    let root = svg_area(path, (width, height));
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        for (k, line) in title.iter().enumerate() {
            let size = if k == 0 { 16 } else { 14 };
            root.draw(&Text::new(
                line.as_str(),
                (10, 10 + k as i32 * 20),
                ("sans-serif", size).into_font(),
            ))?;
        }
        for (r, row) in rows.iter().enumerate() {
            let y = top + r as i32 * (heading_h + tile_h);
            root.draw(&Text::new(
                row.title.as_str(),
                (10, y + 4),
                ("sans-serif", 15).into_font().style(FontStyle::Bold),
            ))?;
            for (k, digit) in row.digits.iter().enumerate() {
                let (x, y) = (10 + k as i32 * tile_w, y + heading_h);
                draw_digit(&root, &digit.pixels, x, y, cell, ink)?;
                for (l, line) in digit.lines.iter().enumerate() {
                    root.draw(&Text::new(
                        line.as_str(),
                        (x, y + image_h + 6 + l as i32 * line_h),
                        ("sans-serif", 12).into_font(),
                    ))?;
                }
            }
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// A number a person can read: three significant digits, in scientific notation below
/// 0.01 and from 10,000 on (`1.44e-6`, `0.0224`, `0.969`, `123`, `1.23e4`); zero is `0`.
pub fn readable(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".into() } else { v.to_string() };
    }
    // Round to three significant digits first, so 0.99996 becomes 1.00, not 1.000.
    let sci = format!("{v:.2e}");
    let exponent: i32 = sci
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    if (-2..4).contains(&exponent) {
        let rounded: f64 = sci.parse().unwrap_or(v);
        let decimals = (2 - exponent).max(0) as usize;
        format!("{rounded:.decimals$}")
    } else {
        sci
    }
}

/// [`readable`] with its sign always shown, as a nudge's direction: `+1.44e-6`, `-0.0224`.
pub fn signed_readable(v: f64) -> String {
    let text = readable(v);
    if v > 0.0 {
        format!("+{text}")
    } else {
        text
    }
}

/// The column with the largest Euclidean norm of a row-major matrix `columns` wide, with
/// that norm; `None` when there is no column. On the first layer's weight nudges
/// `-dC/dW` (`[784, 16]`) it is the hidden neuron whose incoming weights the cost most
/// wants to change.
pub fn largest_column(matrix: &[f32], columns: usize) -> Option<(usize, f32)> {
    if columns == 0 {
        return None;
    }
    let mut squares = vec![0.0f64; columns];
    for row in matrix.chunks_exact(columns) {
        for (s, &v) in squares.iter_mut().zip(row) {
            *s += f64::from(v) * f64::from(v);
        }
    }
    squares
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(j, s)| (j, s.sqrt() as f32))
}

/// How a column of the nudges figure colours its values. Each column draws its own
/// legend: what the colours mean and the numbers at the ends of its scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shade {
    /// Activations in [0, 1] in grey, white 0 to black 1: the input digit's own ink.
    Activation,
    /// Signed nudges, red up and blue down, white 0, scaled to the column's largest
    /// |value|.
    Nudge,
}

impl Shade {
    fn color(self, v: f32, limit: f32) -> [u8; 3] {
        match self {
            Shade::Activation => ink(v),
            Shade::Nudge => diverging(v, limit),
        }
    }

    fn limit(self, values: &[f32]) -> f32 {
        match self {
            Shade::Activation => 1.0,
            Shade::Nudge => max_abs(values),
        }
    }

    fn text(self, v: f32) -> String {
        match self {
            Shade::Activation => readable(f64::from(v)),
            Shade::Nudge => signed_readable(f64::from(v)),
        }
    }
}

/// One column of a layer in the nudges figure: a value per neuron, top to bottom.
pub struct Column {
    /// Heading above the column.
    pub title: String,
    /// Values, top to bottom, one per row of the layer.
    pub values: Vec<f32>,
    /// How the values are coloured (and so which legend the column gets).
    pub shade: Shade,
    /// A row drawn with a ring around its cell: the label, the neuron whose weights are
    /// drawn.
    pub marked: Option<usize>,
}

/// One layer of the nudges figure: its neurons' labels and its columns side by side.
pub struct Layer {
    /// Heading ("hidden 1", "output").
    pub name: String,
    /// A short line under the heading: what the rows are, what is ringed.
    pub note: String,
    /// One label per row: the neuron's index, or the digit an output neuron stands for.
    pub rows: Vec<String>,
    /// The columns, left to right.
    pub columns: Vec<Column>,
}

/// A square image of signed values (one neuron's weight nudges) with its own colour bar,
/// red up and blue down, scaled to its own largest |value|.
pub struct Panel<'a> {
    /// Heading above the image.
    pub title: String,
    /// Short lines under the heading: which neuron, why it was chosen.
    pub notes: Vec<String>,
    /// Row-major values, a square number of them.
    pub values: &'a [f32],
}

// The nudges figure's layout, in pixels.
const HEAD_Y: i32 = 40;
const NOTE_Y: i32 = 58;
const NOTE_PITCH: i32 = 15;
const COLUMN_HEAD_Y: i32 = 80;
const ROWS_Y: i32 = 100;
const PITCH: i32 = 24;
const CELL: i32 = 20;
const LABEL_W: i32 = 34;
const COLUMN_W: i32 = 122;
const GROUP_GAP: i32 = 18;
const INPUT_W: i32 = 150;
const PANEL_CELL: i32 = 5;
const PANEL_W: i32 = 250;
const LEGEND_H: i32 = 50;
const GREY: RGBColor = RGBColor(110, 110, 110);

/// A legend `width` wide at (`x`, `y`): what the colours mean, a colour bar, and the
/// numbers at its ends and middle.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    shade: Shade,
    limit: f32,
    (x, y): (i32, i32),
    width: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let meaning = match shade {
        Shade::Activation => "white 0, black 1",
        Shade::Nudge => "red: up, blue: down",
    };
    area.draw(&Text::new(
        meaning,
        (x, y),
        ("sans-serif", 14).into_font().color(&GREY),
    ))?;
    let (lo, hi) = match shade {
        Shade::Activation => (0.0, 1.0),
        Shade::Nudge => (-limit, limit),
    };
    let bar_y = y + 18;
    let steps = (width / 2).max(1);
    for i in 0..steps {
        let v = lo + (hi - lo) * (i as f32 + 0.5) / steps as f32;
        let [r, g, b] = shade.color(v, limit);
        let x0 = x + i * width / steps;
        let x1 = x + (i + 1) * width / steps;
        area.draw(&Rectangle::new(
            [(x0, bar_y), (x1, bar_y + 10)],
            RGBColor(r, g, b).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(x, bar_y), (x + width, bar_y + 10)],
        RGBColor(150, 150, 150),
    ))?;
    let font = ("sans-serif", 13).into_font();
    let at = |h: HPos| TextStyle::from(font.clone()).pos(Pos::new(h, VPos::Top));
    let ticks = match shade {
        Shade::Activation => ["0".to_string(), "0.5".to_string(), "1".to_string()],
        Shade::Nudge if limit > 0.0 => [
            signed_readable(f64::from(-limit)),
            "0".to_string(),
            signed_readable(f64::from(limit)),
        ],
        Shade::Nudge => [String::new(), "all 0".to_string(), String::new()],
    };
    let [left, middle, right] = ticks;
    area.draw(&Text::new(left, (x, bar_y + 13), at(HPos::Left)))?;
    area.draw(&Text::new(
        middle,
        (x + width / 2, bar_y + 13),
        at(HPos::Center),
    ))?;
    area.draw(&Text::new(right, (x + width, bar_y + 13), at(HPos::Right)))?;
    Ok(())
}

/// The backpropagation figure: the input digit (with a line saying which it is), then
/// per layer a labelled row per neuron with its columns (activations in grey, desired
/// nudges red up and blue down), each column with its own legend and scale, and
/// optionally one neuron's weight nudges as an image with its own colour bar.
pub fn nudges_figure(
    path: &Path,
    title: &str,
    (input_note, input): (&str, &[f32]),
    layers: &[Layer],
    panel: Option<&Panel>,
) -> Result<(), PictureError> {
    for layer in layers {
        if let Some(c) = layer
            .columns
            .iter()
            .find(|c| c.values.len() != layer.rows.len())
        {
            return Err(fail(
                path,
                format!(
                    "{}: column {:?} has {} values for {} rows",
                    layer.name,
                    c.title,
                    c.values.len(),
                    layer.rows.len()
                ),
            ));
        }
    }
    let side = (input.len() as f64).sqrt() as i32;
    let panel_side = panel.map_or(0, |p| (p.values.len() as f64).sqrt() as i32);
    let group_w = |l: &Layer| LABEL_W + l.columns.len() as i32 * COLUMN_W + GROUP_GAP;
    let width =
        10 + INPUT_W + layers.iter().map(group_w).sum::<i32>() + panel.map_or(0, |_| PANEL_W);
    let tallest = layers.iter().map(|l| l.rows.len()).max().unwrap_or(0) as i32;
    let panel_y = panel.map_or(ROWS_Y, |p| {
        ROWS_Y.max(NOTE_Y + p.notes.len() as i32 * NOTE_PITCH + 10)
    });
    let height = [
        ROWS_Y + tallest * PITCH + 10 + LEGEND_H,
        ROWS_Y + side * 4 + 12 + LEGEND_H,
        panel.map_or(0, |_| panel_y + panel_side * PANEL_CELL + 12 + LEGEND_H),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
        + 10;
    let root = svg_area(path, (width as u32, height as u32));
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        // (plotters' SVG writes a font of size s as s / 1.24 pixels.)
        let head = ("sans-serif", 17, FontStyle::Bold).into_font();
        let note = ("sans-serif", 14).into_font().color(&GREY);
        let font = ("sans-serif", 15).into_font();
        let bold = ("sans-serif", 15, FontStyle::Bold).into_font();
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            ("sans-serif", 21).into_font(),
        ))?;
        // The input, in the activations' own grey: it is layer 0.
        root.draw(&Text::new("input", (10, HEAD_Y), head.clone()))?;
        root.draw(&Text::new(
            input_note.to_string(),
            (10, NOTE_Y),
            note.clone(),
        ))?;
        draw_digit(&root, input, 10, ROWS_Y, 4, ink)?;
        legend(
            &root,
            Shade::Activation,
            1.0,
            (10, ROWS_Y + side * 4 + 12),
            side * 4,
        )?;
        let mut x0 = 10 + INPUT_W;
        let right = TextStyle::from(font.clone()).pos(Pos::new(HPos::Right, VPos::Top));
        let right_bold = TextStyle::from(bold.clone()).pos(Pos::new(HPos::Right, VPos::Top));
        for layer in layers {
            root.draw(&Text::new(layer.name.clone(), (x0, HEAD_Y), head.clone()))?;
            root.draw(&Text::new(layer.note.clone(), (x0, NOTE_Y), note.clone()))?;
            // A row ringed in every column that rings one has its label in bold too.
            let mut marks = layer.columns.iter().filter_map(|c| c.marked);
            let first = marks.next();
            let shared = first.filter(|&m| marks.all(|other| other == m));
            for (i, label) in layer.rows.iter().enumerate() {
                let y = ROWS_Y + i as i32 * PITCH + 3;
                let style = if shared == Some(i) {
                    &right_bold
                } else {
                    &right
                };
                root.draw(&Text::new(
                    label.clone(),
                    (x0 + LABEL_W - 10, y),
                    style.clone(),
                ))?;
            }
            for (k, column) in layer.columns.iter().enumerate() {
                let x = x0 + LABEL_W + k as i32 * COLUMN_W;
                root.draw(&Text::new(
                    column.title.clone(),
                    (x, COLUMN_HEAD_Y),
                    bold.clone(),
                ))?;
                let limit = column.shade.limit(&column.values);
                for (i, &v) in column.values.iter().enumerate() {
                    let y = ROWS_Y + i as i32 * PITCH;
                    let [r, g, b] = column.shade.color(v, limit);
                    root.draw(&Rectangle::new(
                        [(x, y), (x + CELL, y + CELL)],
                        RGBColor(r, g, b).filled(),
                    ))?;
                    root.draw(&Rectangle::new(
                        [(x, y), (x + CELL, y + CELL)],
                        RGBColor(150, 150, 150),
                    ))?;
                    let ringed = column.marked == Some(i);
                    if ringed {
                        root.draw(&Rectangle::new(
                            [(x - 3, y - 3), (x + CELL + 3, y + CELL + 3)],
                            BLACK.stroke_width(2),
                        ))?;
                    }
                    root.draw(&Text::new(
                        column.shade.text(v),
                        (x + CELL + 7, y + 3),
                        if ringed { bold.clone() } else { font.clone() },
                    ))?;
                }
                legend(
                    &root,
                    column.shade,
                    limit,
                    (x, ROWS_Y + layer.rows.len() as i32 * PITCH + 10),
                    COLUMN_W - 14,
                )?;
            }
            x0 += group_w(layer);
        }
        if let Some(panel) = panel {
            root.draw(&Text::new(panel.title.clone(), (x0, HEAD_Y), head.clone()))?;
            for (k, line) in panel.notes.iter().enumerate() {
                root.draw(&Text::new(
                    line.clone(),
                    (x0, NOTE_Y + k as i32 * NOTE_PITCH),
                    note.clone(),
                ))?;
            }
            let limit = max_abs(panel.values);
            draw_digit(&root, panel.values, x0, panel_y, PANEL_CELL, |v| {
                diverging(v, limit)
            })?;
            legend(
                &root,
                Shade::Nudge,
                limit,
                (x0, panel_y + panel_side * PANEL_CELL + 12),
                panel_side * PANEL_CELL,
            )?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// One curve of [`line_plot`]: its points, its legend entry and how it is drawn.
pub struct Curve {
    /// The legend entry.
    pub label: String,
    /// (x, y) points, left to right.
    pub points: Vec<(f64, f64)>,
    /// Line colour as RGB.
    pub color: [u8; 3],
    /// A dashed line that does not set the vertical range: a model drawn over measured
    /// curves (a quadratic approximation, say) is cut where it leaves their range.
    pub dashed: bool,
}

/// Tick labels with as many decimals as a range of `span` needs to tell ticks apart.
fn tick_label(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() {
        (2.0 - span.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        3
    };
    format!("{v:.decimals$}")
}

/// Curves on one pair of axes with axis labels and a legend: the cost along lines
/// through a network's parameters, for one. The vertical range is that of the solid
/// curves; dashed ones are drawn inside it.
pub fn line_plot(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    curves: &[Curve],
) -> Result<(), PictureError> {
    let finite = |c: &Curve| {
        c.points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect::<Vec<_>>()
    };
    let solid: Vec<(f64, f64)> = curves
        .iter()
        .filter(|c| !c.dashed)
        .flat_map(finite)
        .collect();
    let every: Vec<(f64, f64)> = curves.iter().flat_map(finite).collect();
    let range = |values: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        values
            .iter()
            .map(pick)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (x_lo, x_hi) = range(&every, |p| p.0);
    let (y_lo, y_hi) = range(if solid.is_empty() { &every } else { &solid }, |p| p.1);
    if !(x_lo < x_hi && y_lo.is_finite() && y_hi.is_finite()) {
        return Err(fail(
            path,
            "nothing to plot: no finite points spanning an interval",
        ));
    }
    let pad = ((y_hi - y_lo) * 0.05).max(y_hi.abs() * 1e-9).max(1e-12);
    // Room above the curves for the legend.
    let (y_lo, y_hi) = (y_lo - pad, y_hi + 5.0 * pad);
    let root = svg_area(path, (820, 500));
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(78)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        let (x_span, y_span) = (x_hi - x_lo, y_hi - y_lo);
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| tick_label(*v, x_span))
            .y_label_formatter(&|v| tick_label(*v, y_span))
            .label_style(("sans-serif", 14))
            .light_line_style(RGBColor(238, 238, 238))
            .axis_desc_style(("sans-serif", 15))
            .draw()?;
        for curve in curves {
            let color = RGBColor(curve.color[0], curve.color[1], curve.color[2]);
            let style = color.stroke_width(if curve.dashed { 1 } else { 2 });
            // Runs of points inside the vertical range, so that nothing is drawn over
            // the axes.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for p in finite(curve) {
                match runs.last_mut() {
                    Some(run) if (y_lo..=y_hi).contains(&p.1) => run.push(p),
                    Some(run) if !run.is_empty() => runs.push(Vec::new()),
                    _ => {}
                }
            }
            runs.retain(|r| !r.is_empty());
            for (k, run) in runs.into_iter().enumerate() {
                let series = if curve.dashed {
                    chart.draw_series(DashedLineSeries::new(run, 6, 4, style))?
                } else {
                    chart.draw_series(LineSeries::new(run, style))?
                };
                if k == 0 {
                    series
                        .label(curve.label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .label_font(("sans-serif", 14))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// A language model's training and validation loss at each evaluation, `(iteration,
/// train, validation)`, against iterations: where the two part, the model has begun
/// to learn its training text by heart.
pub fn loss_curve(path: &Path, evaluations: &[(usize, f64, f64)]) -> Result<(), PictureError> {
    let finite: Vec<(usize, f64, f64)> = evaluations
        .iter()
        .copied()
        .filter(|(_, t, v)| t.is_finite() && v.is_finite())
        .collect();
    let Some(&(first, ..)) = finite.first() else {
        return Err(fail(path, "nothing to plot: no finite losses"));
    };
    let last = finite.iter().map(|e| e.0).max().unwrap_or(first);
    let (x_lo, x_hi) = (first as f64, (last as f64).max(first as f64 + 1.0));
    let (y_lo, y_hi) = finite
        .iter()
        .flat_map(|&(_, t, v)| [t, v])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    let pad = ((y_hi - y_lo) * 0.08).max(1e-3);
    let (y_lo, y_hi) = ((y_lo - pad).max(0.0), y_hi + pad);
    let root = svg_area(path, (720, 420));
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "loss at each evaluation: training and validation",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        let y_span = y_hi - y_lo;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("mean cross-entropy (nats)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| tick_label(*v, y_span))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        let series = [
            (
                "train",
                RED,
                finite.iter().map(|e| (e.0 as f64, e.1)).collect::<Vec<_>>(),
            ),
            (
                "validation",
                BLUE,
                finite.iter().map(|e| (e.0 as f64, e.2)).collect(),
            ),
        ];
        for (label, color, points) in series {
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}
