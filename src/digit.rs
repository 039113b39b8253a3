//! How a drawing reaches the network: the way MNIST's digits were made. The strokes'
//! bounding box is scaled to fit a 20x20 box with its aspect ratio kept, each source
//! pixel spreading its ink over the output pixels it covers (area averaging, so edges
//! come out as anti-aliased grey levels), and the result is placed so that its centre
//! of mass sits at the centre of the 28x28 frame (pixel 14, 14).
//!
//! This is the one implementation: the draw page's server calls it on the canvas it
//! receives, and the tests call it on MNIST digits drawn onto a canvas.

/// The draw page's canvas is `CANVAS` x `CANVAS` pixels.
pub const CANVAS: usize = 280;
/// The network's input is `SIDE` x `SIDE`.
pub const SIDE: usize = 28;
/// The digit's bounding box is scaled to fit `BOX` x `BOX` (MNIST's 20x20).
pub const BOX: f32 = 20.0;

/// Turns `ink` (`width * height` values in [0, 1], 1 = full ink, row-major) into the
/// network's 28x28 input (784 values in [0, 1]). A blank drawing gives all zeros.
/// Panics if `ink.len() != width * height`.
pub fn preprocess(ink: &[f32], width: usize, height: usize) -> Vec<f32> {
    assert_eq!(
        ink.len(),
        width * height,
        "preprocess: {} values for a {width}x{height} drawing",
        ink.len()
    );
    let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in ink.iter().enumerate() {
        if v > 0.0 {
            let (x, y) = (i % width, i / width);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
            let v = f64::from(v.min(1.0));
            mass += v;
            mx += v * (x as f64 + 0.5);
            my += v * (y as f64 + 0.5);
        }
    }
    let mut out = vec![0.0f32; SIDE * SIDE];
    if mass == 0.0 {
        return out;
    }
    let longest = (x1 + 1 - x0).max(y1 + 1 - y0) as f64;
    let s = f64::from(BOX) / longest;
    // Source pixel [x, x+1) maps to [(x - x0) s + dx, ...): the box's corner on a pixel
    // corner, as MNIST scaled into its 20x20 box first. The centre of mass of the
    // area-averaged picture is the image of the source's; the whole-pixel shift (dx, dy)
    // puts it nearest the centre of pixel (14, 14), at (14.5, 14.5) when pixel i spans
    // [i, i+1): where MNIST's digits have theirs (a mean of 14.50 over its test set).
    let centre = SIDE as f64 / 2.0 + 0.5;
    let dx = (centre - (mx / mass - x0 as f64) * s).round();
    let dy = (centre - (my / mass - y0 as f64) * s).round();
    let side = SIDE as f64;
    for y in y0..=y1 {
        let ty0 = (y - y0) as f64 * s + dy;
        let ty1 = ty0 + s;
        if ty1 <= 0.0 || ty0 >= side {
            continue;
        }
        for x in x0..=x1 {
            let v = ink[y * width + x];
            if v <= 0.0 {
                continue;
            }
            let v = f64::from(v.min(1.0));
            let tx0 = (x - x0) as f64 * s + dx;
            let tx1 = tx0 + s;
            if tx1 <= 0.0 || tx0 >= side {
                continue;
            }
            for ty in (ty0.floor().max(0.0) as usize)..(ty1.ceil().min(side) as usize) {
                let oy = ty1.min(ty as f64 + 1.0) - ty0.max(ty as f64);
                if oy <= 0.0 {
                    continue;
                }
                for tx in (tx0.floor().max(0.0) as usize)..(tx1.ceil().min(side) as usize) {
                    let ox = tx1.min(tx as f64 + 1.0) - tx0.max(tx as f64);
                    if ox > 0.0 {
                        out[ty * SIDE + tx] += (v * ox * oy) as f32;
                    }
                }
            }
        }
    }
    for p in &mut out {
        *p = p.clamp(0.0, 1.0);
    }
    out
}

/// The page's canvas as sent: one byte of ink per pixel (0 = white, 255 = black),
/// `CANVAS * CANVAS` of them, row-major. Returns the ink in [0, 1].
pub fn parse_canvas(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() != CANVAS * CANVAS {
        return Err(format!(
            "expected {} canvas bytes ({CANVAS}x{CANVAS}), got {}",
            CANVAS * CANVAS,
            bytes.len()
        ));
    }
    Ok(bytes.iter().map(|&b| f32::from(b) / 255.0).collect())
}

/// Draws a 28x28 digit (values in [0, 1]) onto a blank `CANVAS` x `CANVAS` canvas the
/// way a pen would leave it: its inked bounding box scaled `scale` times (any positive
/// factor, not only whole ones) with the box's top-left corner at `(left, top)` (sub-pixel
/// positions allowed), resampled bilinearly, so that the strokes' edges come out as
/// grey ramps rather than copies of the digit's own pixels. What falls off the canvas is
/// lost. The tests use it to hand MNIST digits to the page's preprocessing at other
/// sizes and positions.
pub fn draw_on_canvas(digit: &[f32], scale: f32, left: f32, top: f32) -> Vec<f32> {
    assert_eq!(
        digit.len(),
        SIDE * SIDE,
        "draw_on_canvas: not a 28x28 digit"
    );
    assert!(scale > 0.0, "draw_on_canvas: scale {scale}");
    let mut canvas = vec![0.0f32; CANVAS * CANVAS];
    let inked = || (0..SIDE * SIDE).filter(|&i| digit[i] > 0.0);
    let (Some(bx), Some(by)) = (
        inked().map(|i| i % SIDE).min(),
        inked().map(|i| i / SIDE).min(),
    ) else {
        return canvas;
    };
    // Source pixel i spans [i, i+1) with its value at its centre i + 0.5; outside the
    // digit is blank. Canvas pixel c samples the source where its centre c + 0.5 falls.
    let at = |x: isize, y: isize| -> f32 {
        if (0..SIDE as isize).contains(&x) && (0..SIDE as isize).contains(&y) {
            digit[y as usize * SIDE + x as usize]
        } else {
            0.0
        }
    };
    let to_source = |c: usize, origin: f32, b: usize| (c as f32 + 0.5 - origin) / scale + b as f32;
    // The digit (plus the half pixel bilinear spreads beyond it) covers this much canvas.
    let reach = |origin: f32, b: usize| {
        let lo = origin + (-1.0 - b as f32) * scale;
        let hi = origin + (SIDE as f32 + 1.0 - b as f32) * scale;
        (
            lo.floor().max(0.0) as usize,
            (hi.ceil().max(0.0) as usize).min(CANVAS),
        )
    };
    let (cx0, cx1) = reach(left, bx);
    let (cy0, cy1) = reach(top, by);
    for cy in cy0..cy1 {
        let v = to_source(cy, top, by) - 0.5;
        let (y, fy) = (v.floor() as isize, v - v.floor());
        for cx in cx0..cx1 {
            let u = to_source(cx, left, bx) - 0.5;
            let (x, fx) = (u.floor() as isize, u - u.floor());
            let ink = (1.0 - fy) * ((1.0 - fx) * at(x, y) + fx * at(x + 1, y))
                + fy * ((1.0 - fx) * at(x, y + 1) + fx * at(x + 1, y + 1));
            canvas[cy * CANVAS + cx] = ink.clamp(0.0, 1.0);
        }
    }
    canvas
}

/// The inked bounding box of a 28x28 digit: `(width, height)` in pixels (0 if blank).
pub fn inked_size(digit: &[f32]) -> (usize, usize) {
    let inked: Vec<usize> = (0..SIDE * SIDE).filter(|&i| digit[i] > 0.0).collect();
    let span = |coord: fn(usize) -> usize| {
        let min = inked.iter().map(|&i| coord(i)).min();
        let max = inked.iter().map(|&i| coord(i)).max();
        min.zip(max).map_or(0, |(a, b)| b + 1 - a)
    };
    (span(|i| i % SIDE), span(|i| i / SIDE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_drawing_is_all_zeros() {
        assert!(preprocess(&vec![0.0; CANVAS * CANVAS], CANVAS, CANVAS)
            .iter()
            .all(|&v| v == 0.0));
    }

    #[test]
    fn a_square_fills_20x20_centred_whatever_its_size_and_place() {
        for (side, left, top) in [(10, 0, 0), (100, 150, 20), (280, 0, 0)] {
            let mut ink = vec![0.0; CANVAS * CANVAS];
            for y in top..top + side {
                for x in left..left + side {
                    ink[y * CANVAS + x] = 1.0;
                }
            }
            let out = preprocess(&ink, CANVAS, CANVAS);
            // Its centre of mass, (10, 10) in the box, goes to pixel (14, 14): the box
            // covers pixels 5..25 (a whole-pixel shift of 4.5 rounds up).
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let inside = (5..25).contains(&x) && (5..25).contains(&y);
                    let want = if inside { 1.0 } else { 0.0 };
                    assert!(
                        (out[y * SIDE + x] - want).abs() < 1e-4,
                        "square {side} at ({left},{top}): pixel ({x},{y}) = {}",
                        out[y * SIDE + x]
                    );
                }
            }
        }
    }

    #[test]
    fn a_digit_drawn_at_a_fractional_scale_has_grey_edges_and_keeps_its_ink() {
        // A 4x4 block of full ink at 5.5x, off the pixel grid: bilinear ramps at its
        // edges (grey values), the same ink as a 22x22 square, and full ink inside.
        let mut digit = vec![0.0; SIDE * SIDE];
        for y in 10..14 {
            for x in 12..16 {
                digit[y * SIDE + x] = 1.0;
            }
        }
        let canvas = draw_on_canvas(&digit, 5.5, 10.25, 20.75);
        let total: f32 = canvas.iter().sum();
        assert!(
            (total - 22.0 * 22.0).abs() < 0.02 * 22.0 * 22.0,
            "ink {total}"
        );
        assert_eq!(canvas[(20 + 11) * CANVAS + (10 + 11)], 1.0);
        let grey = canvas.iter().filter(|&&v| v > 0.05 && v < 0.95).count();
        assert!(grey > 4 * 22, "{grey} grey pixels");
        assert_eq!(canvas[5 * CANVAS + 5], 0.0);
    }

    #[test]
    fn a_tall_bar_keeps_its_aspect_ratio() {
        // 40 wide, 200 tall: becomes 4 wide, 20 tall.
        let mut ink = vec![0.0; CANVAS * CANVAS];
        for y in 30..230 {
            for x in 200..240 {
                ink[y * CANVAS + x] = 1.0;
            }
        }
        let out = preprocess(&ink, CANVAS, CANVAS);
        let total: f32 = out.iter().sum();
        assert!((total - 80.0).abs() < 1e-3, "ink {total}");
        let visible: Vec<f32> = out
            .iter()
            .map(|&v| if v > 1e-4 { v } else { 0.0 })
            .collect();
        let (w, h) = inked_size(&visible);
        assert_eq!((w, h), (4, 20));
    }
}
