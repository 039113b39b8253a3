//! Pictures of what training and backpropagation do, drawn from the engine's own values
//! and gradients: images as PNG (`png`), plots and figures as SVG (`plotters`, which
//! writes text as SVG text, so no font files are needed).

use nn::ConfusionMatrix;
use plotters::coord::Shift;
use plotters::prelude::*;
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

/// One column of the nudges figure: a layer's values as labelled cells.
pub struct Column {
    /// Heading above the column.
    pub title: String,
    /// Values, top to bottom.
    pub values: Vec<f32>,
    /// Colour of a value.
    pub color: fn(f32, f32) -> [u8; 3],
    /// Scale handed to `color` (the largest |value| for diverging colours).
    pub limit: f32,
}

/// The backpropagation figure: the input digit, columns of activations and desired
/// nudges, and one neuron's weight nudges as an image beside the input.
pub fn nudges_figure(
    path: &Path,
    title: &str,
    input: &[f32],
    columns: &[Column],
    weight_nudges: Option<(&str, &[f32])>,
) -> Result<(), PictureError> {
    let tallest = columns.iter().map(|c| c.values.len()).max().unwrap_or(0) as i32;
    let (cell, col_w) = (22i32, 150i32);
    let width = 140 + columns.len() as i32 * col_w + if weight_nudges.is_some() { 150 } else { 0 };
    let height = (80 + tallest * (cell + 4)).max(320);
    let root = svg_area(path, (width as u32, height as u32));
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        let font = ("sans-serif", 13).into_font();
        root.draw(&Text::new(
            title.to_string(),
            (10, 10),
            ("sans-serif", 16).into_font(),
        ))?;
        root.draw(&Text::new("input", (10, 40), font.clone()))?;
        draw_digit(&root, input, 10, 60, 4, ink)?;
        let mut x = 140;
        for column in columns {
            root.draw(&Text::new(column.title.clone(), (x, 40), font.clone()))?;
            for (i, &v) in column.values.iter().enumerate() {
                let y = 60 + i as i32 * (cell + 4);
                let [r, g, b] = (column.color)(v, column.limit);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(r, g, b).filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(150, 150, 150),
                ))?;
                root.draw(&Text::new(signed(v), (x + cell + 6, y + 4), font.clone()))?;
            }
            x += col_w;
        }
        if let Some((label, nudges)) = weight_nudges {
            root.draw(&Text::new(label.to_string(), (x, 40), font.clone()))?;
            let limit = max_abs(nudges);
            draw_digit(&root, nudges, x, 60, 4, |v| diverging(v, limit))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| fail(path, e))
}

/// A signed value short enough for a label: three decimals, or scientific when small.
fn signed(v: f32) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("{v:+.1e}")
    } else {
        format!("{v:+.3}")
    }
}

/// Colour for an activation in [0, 1] (dark = firing), ignoring `limit`.
pub fn activation_color(v: f32, _limit: f32) -> [u8; 3] {
    let g = (255.0 * (1.0 - 0.85 * v.clamp(0.0, 1.0))) as u8;
    [g, g, 255]
}

/// Colour for a signed nudge, scaled by `limit`.
pub fn nudge_color(v: f32, limit: f32) -> [u8; 3] {
    diverging(v, limit)
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
