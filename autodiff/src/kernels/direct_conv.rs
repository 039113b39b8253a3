//! Convolutions of one input channel (a first layer on grey images: LeNet's 1 -> 6,
//! PyTorch's MNIST example's 1 -> 32) computed directly, without the im2col matrix, in
//! f32 on AVX-512.
//!
//! Through im2col such a layer is a product only as tall as the output channels (6 or
//! 32 rows) over a column matrix `kh * kw` times the image, written and read again
//! (docs/performance.md, "Direct convolution"). Here every block of [`LANES`] output
//! columns is two vector registers of accumulators per output channel, kept across the
//! kernel's taps: each tap is one load of an input row and one multiply-add per output
//! channel. The weight gradient turns the loops around: per output channel, a block of
//! taps' accumulators, each tap one load of input per block of output columns.
//!
//! Output column `x` is lane `x % LANES` of its block on every path, and the blocks of
//! channels and taps only group independent sums, so results do not depend on how the
//! blocks are cut, nor on the thread count (images are independent, and the weight
//! gradient's parts are fixed by [`conv_part_len`](super::schedule::conv_part_len)).

use super::conv::Geometry;
use crate::float::Float;
use std::any::TypeId;

/// Output columns computed together (a block of accumulators per channel or tap).
const LANES: usize = 32;

/// Whether [`forward`] and [`grad_weight_part`] compute this convolution: f32, one input
/// channel, stride 1, no dilation, on a CPU with AVX-512F.
pub(crate) fn applies<T: 'static>(g: &Geometry) -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
        && g.c == 1
        && g.opts.stride == [1, 1]
        && g.opts.dilation == [1, 1]
        && avx512()
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `xs` as the `f32` slice it is.
///
/// # Panics
/// When `T` is not `f32` (callers check [`applies`] first).
fn f32s<T: 'static>(xs: &[T]) -> &[f32] {
    assert_eq!(TypeId::of::<T>(), TypeId::of::<f32>());
    // SAFETY: `T` is `f32` (asserted), so the memory is `xs.len()` initialised f32s.
    unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<f32>(), xs.len()) }
}

/// `xs` as the `f32` slice it is, for writing.
///
/// # Panics
/// When `T` is not `f32`.
fn f32s_mut<T: 'static>(xs: &mut [T]) -> &mut [f32] {
    assert_eq!(TypeId::of::<T>(), TypeId::of::<f32>());
    // SAFETY: `T` is `f32` (asserted), and the unique borrow of `xs` moves into the result.
    unsafe { std::slice::from_raw_parts_mut(xs.as_mut_ptr().cast::<f32>(), xs.len()) }
}

/// The single plane of one image with its zero border, and zero columns on the right so
/// that every block of [`LANES`] output columns, at every tap, reads inside it.
struct Padded {
    data: Vec<f32>,
    width: usize,
}

impl Padded {
    fn new(g: &Geometry, plane: &[f32]) -> Self {
        let [ph, pw] = g.opts.padding;
        let width = g.ow.next_multiple_of(LANES) + g.kw - 1;
        // Stride 1: the padded image is `oh + kh - 1` rows of `ow + kw - 1` columns.
        let mut data = vec![0.0; (g.oh + g.kh - 1) * width];
        for (y, line) in plane.chunks_exact(g.w.max(1)).enumerate() {
            data[(y + ph) * width + pw..][..g.w].copy_from_slice(line);
        }
        Padded { data, width }
    }
}

/// y = conv(x, w) (+ bias) for the images `first..` that `out` holds (their
/// `[count, o, oh, ow]` slice). Each output is the sum over the taps in row order, from
/// zero, then the bias added.
pub(crate) fn forward<T: Float>(
    g: &Geometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    first: usize,
    out: &mut [T],
) {
    assert!(applies::<T>(g), "direct convolution of {g:?}");
    let (x, w, out) = (f32s(x), f32s(w), f32s_mut(out));
    let (plane, p) = (g.h * g.w, g.oh * g.ow);
    let taps = g.kh * g.kw;
    assert_eq!(w.len(), g.o * taps);
    for (local, out) in out.chunks_exact_mut(g.o * p).enumerate() {
        let n = first + local;
        let padded = Padded::new(g, &x[n * plane..(n + 1) * plane]);
        #[cfg(target_arch = "x86_64")]
        {
            let mut o = 0;
            while o < g.o {
                let block = if g.o - o >= 6 { 6 } else { 1 };
                let (w, out) = (
                    &w[o * taps..(o + block) * taps],
                    &mut out[o * p..(o + block) * p],
                );
                // SAFETY: the CPU has AVX-512F (`applies`); `w` holds `block` channels'
                // taps and `out` their planes; the padded plane covers every block at
                // every tap (`Padded`).
                unsafe {
                    match block {
                        6 => x86::forward_channels::<6>(g, &padded, w, out),
                        _ => x86::forward_channels::<1>(g, &padded, w, out),
                    }
                }
                o += block;
            }
        }
        if let Some(b) = bias {
            for (plane, &b) in out.chunks_exact_mut(p.max(1)).zip(f32s(b)) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
    }
}

/// The weight gradient of the images `first..first + count`: `dw[o, tap]`, the sum over
/// those images' output cells of `dy` times the input under the tap, written (not
/// added) into `dw`. Each lane sums its columns in image, row and block order; the
/// lanes are then added in order.
pub(crate) fn grad_weight_part<T: Float>(
    g: &Geometry,
    x: &[T],
    dy: &[T],
    first: usize,
    count: usize,
    dw: &mut [T],
) {
    assert!(applies::<T>(g), "direct convolution of {g:?}");
    let (x, dy, dw) = (f32s(x), f32s(dy), f32s_mut(dw));
    let (plane, p, taps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    assert_eq!(dw.len(), g.o * taps);
    let padded: Vec<Padded> = (first..first + count)
        .map(|n| Padded::new(g, &x[n * plane..(n + 1) * plane]))
        .collect();
    let dy = &dy[first * g.o * p..(first + count) * g.o * p];
    #[cfg(target_arch = "x86_64")]
    for o in 0..g.o {
        let mut t = 0;
        while t < taps {
            let block = if taps - t >= 8 { 8 } else { 1 };
            let dw = &mut dw[o * taps + t..o * taps + t + block];
            // SAFETY: the CPU has AVX-512F (`applies`); `dy` holds `count` images' `o`
            // planes of `p` cells; the padded planes cover every block at every tap.
            unsafe {
                match block {
                    8 => x86::grad_weight_taps::<8>(g, &padded, dy, o, t, dw),
                    _ => x86::grad_weight_taps::<1>(g, &padded, dy, o, t, dw),
                }
            }
            t += block;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Geometry, Padded, LANES};
    use std::arch::x86_64::*;

    /// The lanes of a block of `len` output columns, as masks of its two registers.
    #[inline(always)]
    fn masks(len: usize) -> [__mmask16; 2] {
        let lanes = |n: usize| if n >= 16 { !0 } else { (1u16 << n) - 1 };
        [lanes(len), lanes(len.saturating_sub(16))]
    }

    /// `C` output channels of one image: two registers of accumulators per channel for
    /// each block of [`LANES`] output columns, each tap two loads of the input row and
    /// `2 C` multiply-adds with the channels' broadcast weights.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `w` holds `C` channels' `kh * kw` taps, `out` their
    /// `oh * ow` planes, and `padded` is [`Padded::new`]'s plane for `g`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_channels<const C: usize>(
        g: &Geometry,
        padded: &Padded,
        w: &[f32],
        out: &mut [f32],
    ) {
        let (taps, width, p) = (g.kh * g.kw, padded.width, g.oh * g.ow);
        assert!(w.len() == C * taps && out.len() == C * p);
        assert!(
            padded.data.len() >= (g.oh + g.kh - 1) * width
                && width >= g.ow.next_multiple_of(LANES) + g.kw - 1
        );
        let src = padded.data.as_ptr();
        for y in 0..g.oh {
            for x0 in (0..g.ow).step_by(LANES) {
                let mut acc = [[_mm512_setzero_ps(); 2]; C];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let tap = ky * g.kw + kx;
                        // SAFETY: row y + ky < oh + kh - 1 and columns x0 + kx ..
                        // x0 + kx + 32 <= width lie inside the padded plane (asserted).
                        let (s0, s1) = unsafe {
                            let at = src.add((y + ky) * width + x0 + kx);
                            (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)))
                        };
                        for (c, acc) in acc.iter_mut().enumerate() {
                            let wc = _mm512_set1_ps(w[c * taps + tap]);
                            acc[0] = _mm512_fmadd_ps(wc, s0, acc[0]);
                            acc[1] = _mm512_fmadd_ps(wc, s1, acc[1]);
                        }
                    }
                }
                let [m0, m1] = masks(g.ow - x0);
                for (c, acc) in acc.iter().enumerate() {
                    let row = &mut out[c * p + y * g.ow + x0..][..(g.ow - x0).min(LANES)];
                    // SAFETY: the masks cover exactly `row`'s elements.
                    unsafe {
                        _mm512_mask_storeu_ps(row.as_mut_ptr(), m0, acc[0]);
                        _mm512_mask_storeu_ps(row.as_mut_ptr().wrapping_add(16), m1, acc[1]);
                    }
                }
            }
        }
    }

    /// Taps `t0..t0 + C` of output channel `o`, summed over the images of `padded`: two
    /// registers of accumulators per tap, each block of output columns one (masked)
    /// load of `dy` and, per tap, two loads of input and two multiply-adds.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; `dy` holds `padded.len()` images' `o` planes of
    /// `oh * ow` cells; each padded plane is [`Padded::new`]'s for `g`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn grad_weight_taps<const C: usize>(
        g: &Geometry,
        padded: &[Padded],
        dy: &[f32],
        o: usize,
        t0: usize,
        dw: &mut [f32],
    ) {
        let p = g.oh * g.ow;
        assert!(dw.len() == C && t0 + C <= g.kh * g.kw && dy.len() == padded.len() * g.o * p);
        let mut acc = [[_mm512_setzero_ps(); 2]; C];
        for (image, one) in padded.iter().enumerate() {
            let width = one.width;
            assert!(
                one.data.len() >= (g.oh + g.kh - 1) * width
                    && width >= g.ow.next_multiple_of(LANES) + g.kw - 1
            );
            let offsets: [usize; C] =
                std::array::from_fn(|i| ((t0 + i) / g.kw) * width + (t0 + i) % g.kw);
            let dy = &dy[(image * g.o + o) * p..][..p];
            for y in 0..g.oh {
                let row = one.data.as_ptr().wrapping_add(y * width);
                for x0 in (0..g.ow).step_by(LANES) {
                    let [m0, m1] = masks(g.ow - x0);
                    let at = dy[y * g.ow + x0..].as_ptr();
                    // SAFETY: the masks cover the row's `min(32, ow - x0)` remaining
                    // cells, which lie in `dy`; masked-off lanes are not read.
                    let (d0, d1) = unsafe {
                        (
                            _mm512_maskz_loadu_ps(m0, at),
                            _mm512_maskz_loadu_ps(m1, at.wrapping_add(16)),
                        )
                    };
                    for (acc, &off) in acc.iter_mut().zip(&offsets) {
                        // SAFETY: tap (ky, kx) = (off / width, off % width) reads row
                        // y + ky < oh + kh - 1 and columns x0 + kx .. x0 + kx + 32 <= width
                        // of the padded plane (asserted).
                        let (s0, s1) = unsafe {
                            let at = row.add(x0 + off);
                            (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)))
                        };
                        acc[0] = _mm512_fmadd_ps(d0, s0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(d1, s1, acc[1]);
                    }
                }
            }
        }
        for (v, acc) in dw.iter_mut().zip(&acc) {
            let mut lanes = [0.0f32; LANES];
            // SAFETY: `lanes` holds 32 f32s, two registers' worth.
            unsafe {
                _mm512_storeu_ps(lanes.as_mut_ptr(), acc[0]);
                _mm512_storeu_ps(lanes.as_mut_ptr().add(16), acc[1]);
            }
            *v = lanes.iter().fold(0.0, |s, &a| s + a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{out_len, Conv2dOptions};

    /// The definition in f64: y[n, o, y, x] = sum over taps of w * (padded) x.
    fn reference(g: &Geometry, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (taps, p) = (g.kh * g.kw, g.oh * g.ow);
        let mut y = vec![0.0; g.n * g.o * p];
        let mut dw = vec![0.0; g.o * taps];
        for n in 0..g.n {
            for o in 0..g.o {
                for (cell, (yy, xx)) in (0..g.oh)
                    .flat_map(|yy| (0..g.ow).map(move |xx| (yy, xx)))
                    .enumerate()
                {
                    for tap in 0..taps {
                        let iy = (yy + tap / g.kw) as isize - g.opts.padding[0] as isize;
                        let ix = (xx + tap % g.kw) as isize - g.opts.padding[1] as isize;
                        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            continue;
                        }
                        let v = x[n * g.h * g.w + iy as usize * g.w + ix as usize] as f64;
                        let at = (n * g.o + o) * p + cell;
                        y[at] += w[o * taps + tap] as f64 * v;
                        dw[o * taps + tap] += dy[at] as f64 * v;
                    }
                }
            }
        }
        (y, dw)
    }

    /// The direct kernels agree with the definition to f32 rounding: padded and not,
    /// rows of one block, of two and with a partial block, channel and tap counts that
    /// leave tails, and the geometry of LeNet's and PyTorch's MNIST example's first layers.
    #[test]
    fn direct_convolution_matches_the_definition() {
        if !avx512() {
            return;
        }
        for (n, h, w, o, kh, kw, pad) in [
            (5, 28, 28, 6, 5, 5, 2),
            (3, 28, 28, 32, 3, 3, 0),
            (2, 9, 40, 7, 3, 4, 1),
            (3, 5, 5, 1, 5, 5, 0),
            (1, 12, 33, 13, 2, 1, 0),
        ] {
            let opts = Conv2dOptions::new(1, pad);
            let (oh, ow) = (
                out_len(h, kh, 1, pad, 1).unwrap(),
                out_len(w, kw, 1, pad, 1).unwrap(),
            );
            let g = Geometry {
                n,
                c: 1,
                h,
                w,
                o,
                kh,
                kw,
                oh,
                ow,
                opts,
            };
            assert!(applies::<f32>(&g));
            let x: Vec<f32> = (0..n * h * w)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let wt: Vec<f32> = (0..o * kh * kw)
                .map(|i| ((i * 13) % 29) as f32 / 14.0 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..o).map(|i| i as f32 * 0.25 - 1.0).collect();
            let dy: Vec<f32> = (0..n * o * oh * ow)
                .map(|i| ((i * 7) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let (y_ref, dw_ref) = reference(&g, &x, &wt, &dy);
            let mut y = vec![f32::NAN; n * o * oh * ow];
            forward(&g, &x, &wt, Some(&bias), 0, &mut y);
            for (i, (&got, &want)) in y.iter().zip(&y_ref).enumerate() {
                let want = want + bias[(i / (oh * ow)) % o] as f64;
                assert!(
                    (got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{g:?} y[{i}]: {got} vs {want}"
                );
            }
            // Two parts, as the caller cuts them, summed.
            let split = n / 2;
            let mut dw = vec![f32::NAN; o * kh * kw];
            let mut rest = vec![f32::NAN; o * kh * kw];
            grad_weight_part(&g, &x, &dy, 0, split, &mut dw);
            grad_weight_part(&g, &x, &dy, split, n - split, &mut rest);
            for (i, ((&a, &b), &want)) in dw.iter().zip(&rest).zip(&dw_ref).enumerate() {
                let got = (a + b) as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{g:?} dw[{i}]: {got} vs {want}"
                );
            }
        }
    }
}
