//! Convolutions of few channels computed directly, without the im2col matrix, in f32 on
//! AVX-512: one input channel (a first layer on grey images: LeNet's 1 -> 6, PyTorch's
//! MNIST example's 1 -> 32), or at most sixteen output channels (LeNet's 6 -> 16).
//!
//! Through im2col such a layer is a product only as tall as its output channels over a
//! column matrix `c * kh * kw` times the image, written and read again
//! (docs/performance.md, "direct_conv"). Here the accumulators stay in registers across
//! the kernel's taps:
//! - one input channel: each block of [`LANES`] output columns is two registers per
//!   output channel; each tap, one load of an input row and one multiply-add per
//!   channel. The weight gradient turns the loops around: per output channel, a block
//!   of taps' registers, each tap one load of input per block of output columns.
//! - several input channels ([`channels`]): the output channels are one register's
//!   lanes; a block of adjacent output cells keeps one register each, each tap one load
//!   of the weights' row and one multiply-add per cell with its input broadcast. The
//!   weight gradient keeps a register per tap, each lane one output channel's sum.
//!
//! Every output is one chain of multiply-adds over the taps in order (channel, row,
//! column), from zero, then the bias added; a weight gradient sums its cells in image,
//! row and column order (one input channel: per lane, then the lanes in order). The
//! blocks only group independent sums, so results do not depend on how they are cut,
//! nor on the thread count (images are independent, and the weight gradient's parts are
//! fixed by [`conv_part_len`](super::schedule::conv_part_len)).

use super::conv::{bordered, Geometry};
use crate::float::Float;
use std::any::TypeId;

/// Output columns computed together (a block of accumulators per channel or tap).
const LANES: usize = 32;

/// Whether [`forward`] and [`grad_weight_part`] compute this convolution: f32, stride 1,
/// no dilation, one group, on a CPU with AVX-512F; and one input channel, or at most
/// sixteen output channels (one register's lanes).
pub(crate) fn applies<T: 'static>(g: &Geometry) -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
        && (g.c == 1 || g.o <= CHANNEL_LANES)
        && g.opts.groups == 1
        && g.opts.stride == [1, 1]
        && g.opts.dilation == [1, 1]
        && avx512()
}

/// Output channels in one register, for convolutions of several input channels.
const CHANNEL_LANES: usize = 16;

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
    /// An empty plane for `g`'s images, to [`fill`](Padded::fill) with each in turn.
    fn new(g: &Geometry) -> Self {
        Padded {
            data: Vec::new(),
            width: g.ow.next_multiple_of(LANES) + g.kw - 1,
        }
    }

    /// Takes one image's plane. Stride 1: the bordered plane is `oh + kh - 1` rows.
    fn fill(&mut self, g: &Geometry, plane: &[f32]) {
        bordered(g, plane, self.width, &mut self.data);
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
    if g.c > 1 {
        return channels::forward(g, x, w, bias.map(f32s), first, out);
    }
    let (plane, p) = (g.h * g.w, g.oh * g.ow);
    let taps = g.kh * g.kw;
    assert_eq!(w.len(), g.o * taps);
    let mut padded = Padded::new(g);
    for (local, out) in out.chunks_exact_mut(g.o * p).enumerate() {
        let n = first + local;
        padded.fill(g, &x[n * plane..(n + 1) * plane]);
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
    if g.c > 1 {
        return channels::grad_weight(g, x, dy, first, count, dw);
    }
    let (plane, p, taps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
    assert_eq!(dw.len(), g.o * taps);
    let padded: Vec<Padded> = (first..first + count)
        .map(|n| {
            let mut one = Padded::new(g);
            one.fill(g, &x[n * plane..(n + 1) * plane]);
            one
        })
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

/// Several input channels and at most [`CHANNEL_LANES`] output channels (LeNet's
/// 6 -> 16): the output channels are the lanes of one register. A block of output
/// cells keeps one register of accumulators per cell across every tap of every input
/// channel, each tap one load of the weights' row and one multiply-add per cell with
/// the cell's input broadcast; the weight gradient keeps one register per tap, each
/// lane one output channel's sum over the images' cells in order.
mod channels {
    use super::{bordered, Geometry, CHANNEL_LANES};

    /// Where, in an image's channels with their zero border ([`bordered`] to the width
    /// `w + 2 pw`), each output cell and each tap read: cell `q` at `cells[q] + taps[t]`
    /// for tap `t` (channel, row, column). The same for every image of a geometry.
    struct Offsets {
        cells: Vec<usize>,
        taps: Vec<usize>,
    }

    impl Offsets {
        fn new(g: &Geometry) -> Self {
            let (hp, wp) = (g.h + 2 * g.opts.padding[0], width(g));
            let cells = (0..g.oh * g.ow)
                .map(|q| (q / g.ow) * wp + q % g.ow)
                .collect();
            let taps = (0..g.c * g.kh * g.kw)
                .map(|t| {
                    let (c, tap) = (t / (g.kh * g.kw), t % (g.kh * g.kw));
                    c * hp * wp + (tap / g.kw) * wp + tap % g.kw
                })
                .collect();
            Offsets { cells, taps }
        }
    }

    /// The bordered planes' width.
    fn width(g: &Geometry) -> usize {
        g.w + 2 * g.opts.padding[1]
    }

    /// The weights `[o, c, kh, kw]` as one row of [`CHANNEL_LANES`] per tap (channel,
    /// row, column), zero past the `o` output channels.
    fn weight_rows(g: &Geometry, w: &[f32]) -> Vec<[f32; CHANNEL_LANES]> {
        let taps = g.c * g.kh * g.kw;
        (0..taps)
            .map(|t| std::array::from_fn(|o| if o < g.o { w[o * taps + t] } else { 0.0 }))
            .collect()
    }

    /// [`super::forward`] for several input channels. Each output is the sum over the
    /// taps (channel, row, column) in order, from zero, then the bias added.
    pub(super) fn forward(
        g: &Geometry,
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        first: usize,
        out: &mut [f32],
    ) {
        let (chw, p) = (g.c * g.h * g.w, g.oh * g.ow);
        assert!(g.o <= CHANNEL_LANES && w.len() == g.o * g.c * g.kh * g.kw);
        let rows = weight_rows(g, w);
        let offsets = Offsets::new(g);
        let mut data = Vec::new();
        for (local, out) in out.chunks_exact_mut(g.o * p).enumerate() {
            let n = first + local;
            bordered(g, &x[n * chw..(n + 1) * chw], width(g), &mut data);
            // Each output row in blocks of up to 16 cells: a block's cells are adjacent,
            // so one pointer and constant offsets address all their inputs, and a whole
            // row of a small image (LeNet's 10) is one block of independent sums.
            for y in 0..g.oh {
                let mut x0 = 0;
                while x0 < g.ow {
                    let cells = (g.ow - x0).min(16);
                    let q = y * g.ow + x0;
                    let mut sums = [[0.0f32; CHANNEL_LANES]; 16];
                    let (data, at, taps) = (&data[..], offsets.cells[q], &offsets.taps[..]);
                    macro_rules! block {
                        ($($c:literal)*) => {
                            match cells {
                                $(
                                    #[cfg(target_arch = "x86_64")]
                                    // SAFETY: the CPU has AVX-512F (`applies`); the block's
                                    // cells are `at..at + cells` of `Offsets`, and the data
                                    // holds every cell's every tap (checked in the kernel).
                                    $c => unsafe { super::x86::cells_forward::<$c>(data, at, taps, &rows, &mut sums) },
                                )*
                                _ => unreachable!("a block of {cells} cells"),
                            }
                        };
                    }
                    block!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
                    for (o, plane) in out.chunks_exact_mut(p).enumerate() {
                        let b = bias.map_or(0.0, |b| b[o]);
                        for (v, sum) in plane[q..q + cells].iter_mut().zip(&sums) {
                            *v = sum[o] + b;
                        }
                    }
                    x0 += cells;
                }
            }
        }
    }

    /// [`super::grad_weight_part`] for several input channels: `dw[o, tap]` is lane `o`
    /// of tap `tap`'s register, which sums the images' cells in order.
    pub(super) fn grad_weight(
        g: &Geometry,
        x: &[f32],
        dy: &[f32],
        first: usize,
        count: usize,
        dw: &mut [f32],
    ) {
        let (chw, p, taps) = (g.c * g.h * g.w, g.oh * g.ow, g.c * g.kh * g.kw);
        // Each image's bordered channels and its output gradient a row of lanes per cell.
        let images: Vec<(Vec<f32>, Vec<[f32; CHANNEL_LANES]>)> = (first..first + count)
            .map(|n| {
                let mut data = Vec::new();
                bordered(g, &x[n * chw..(n + 1) * chw], width(g), &mut data);
                let dy = &dy[n * g.o * p..(n + 1) * g.o * p];
                let rows = (0..p)
                    .map(|q| std::array::from_fn(|o| if o < g.o { dy[o * p + q] } else { 0.0 }))
                    .collect();
                (data, rows)
            })
            .collect();
        let offsets = Offsets::new(g);
        let mut sums = vec![[0.0f32; CHANNEL_LANES]; taps];
        // Taps in blocks of two kernel rows of one input channel (or the last one): the
        // block's taps are two runs of adjacent inputs, one pointer and constant offsets.
        let row_step = width(g);
        let kw = g.kw;
        for c in 0..g.c {
            let mut ky = 0;
            while ky < g.kh {
                let rows = (g.kh - ky).min(2);
                let t = (c * g.kh + ky) * kw;
                let sums = &mut sums[t..t + rows * kw];
                for (data, dy_rows) in &images {
                    let (data, cells, first) = (&data[..], &offsets.cells[..], offsets.taps[t]);
                    macro_rules! block {
                        ($($kw:literal)*) => {
                            match (rows, kw) {
                                $(
                                    #[cfg(target_arch = "x86_64")]
                                    // SAFETY: the CPU has AVX-512F (`applies`); the taps are
                                    // `first + r * row_step + i` of `Offsets`, and the data
                                    // holds every cell's every tap (checked in the kernel).
                                    (2, $kw) => unsafe { super::x86::taps_grad::<2, $kw>(data, cells, first, row_step, dy_rows, sums) },
                                    #[cfg(target_arch = "x86_64")]
                                    // SAFETY: as above.
                                    (1, $kw) => unsafe { super::x86::taps_grad::<1, $kw>(data, cells, first, row_step, dy_rows, sums) },
                                )*
                                _ => unreachable!("{rows} kernel rows of {kw} taps"),
                            }
                        };
                    }
                    block!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
                }
                ky += rows;
            }
        }
        for o in 0..g.o {
            for (t, sum) in sums.iter().enumerate() {
                dw[o * taps + t] = sum[o];
            }
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
    /// `oh * ow` planes, and `padded` holds an image [`Padded::fill`] took for `g`.
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
    /// `oh * ow` cells; each padded plane holds an image [`Padded::fill`] took for `g`.
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

    /// `C` adjacent output cells of one image, the first reading `data[at..]`, over all
    /// taps: one register of accumulators per cell (its output channels), each tap one
    /// load of the weights' row and `C` multiply-adds with the cells' inputs broadcast.
    /// Writes `sums[..C]`.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cells_forward<const C: usize>(
        data: &[f32],
        at: usize,
        taps: &[usize],
        rows: &[[f32; 16]],
        sums: &mut [[f32; 16]],
    ) {
        assert!(sums.len() >= C && rows.len() == taps.len());
        let last = at + C - 1 + taps.iter().max().copied().unwrap_or(0);
        assert!(last < data.len());
        let mut acc = [_mm512_setzero_ps(); C];
        let base = data.as_ptr().wrapping_add(at);
        for (&tap, row) in taps.iter().zip(rows) {
            // SAFETY: `row` is 16 f32s.
            let wv = unsafe { _mm512_loadu_ps(row.as_ptr()) };
            let from = base.wrapping_add(tap);
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: at + i + tap <= last < data.len() (asserted).
                let v = unsafe { *from.add(i) };
                *acc = _mm512_fmadd_ps(_mm512_set1_ps(v), wv, *acc);
            }
        }
        for (sum, acc) in sums.iter_mut().zip(&acc) {
            // SAFETY: `sum` is 16 f32s.
            unsafe { _mm512_storeu_ps(sum.as_mut_ptr(), *acc) };
        }
    }

    /// Adds to `sums` one image's weight gradients for `R` kernel rows of `K` taps, tap
    /// `(r, i)` reading `data[cell + first + r * row_step + i]` for each output cell: per
    /// cell, one load of its output gradient's row (the output channels) and `R * K`
    /// multiply-adds with the inputs under the taps broadcast.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn taps_grad<const R: usize, const K: usize>(
        data: &[f32],
        cells: &[usize],
        first: usize,
        row_step: usize,
        dy_rows: &[[f32; 16]],
        sums: &mut [[f32; 16]],
    ) {
        assert!(sums.len() == R * K && dy_rows.len() == cells.len());
        let last = cells.iter().max().copied().unwrap_or(0) + first + (R - 1) * row_step + K - 1;
        assert!(cells.is_empty() || last < data.len());
        // SAFETY: each `sum` is 16 f32s.
        let mut acc: [[__m512; K]; R] = std::array::from_fn(|r| {
            std::array::from_fn(|i| unsafe { _mm512_loadu_ps(sums[r * K + i].as_ptr()) })
        });
        for (&cell, dy) in cells.iter().zip(dy_rows) {
            // SAFETY: `dy` is 16 f32s.
            let d = unsafe { _mm512_loadu_ps(dy.as_ptr()) };
            let at = data.as_ptr().wrapping_add(cell + first);
            for (r, acc) in acc.iter_mut().enumerate() {
                let row = at.wrapping_add(r * row_step);
                for (i, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: cell + first + r * row_step + i <= last < data.len() (asserted).
                    let v = unsafe { *row.add(i) };
                    *acc = _mm512_fmadd_ps(_mm512_set1_ps(v), d, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY: `sums[r * K + i]` is 16 f32s.
                unsafe { _mm512_storeu_ps(sums[r * K + i].as_mut_ptr(), *acc) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Conv2dOptions;

    /// The definition in f64: y[n, o, y, x] = sum over channels and taps of w * (padded) x.
    fn reference(g: &Geometry, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let (taps, p) = (g.c * g.kh * g.kw, g.oh * g.ow);
        let mut y = vec![0.0; g.n * g.o * p];
        let mut dw = vec![0.0; g.o * taps];
        for n in 0..g.n {
            for o in 0..g.o {
                for (cell, (yy, xx)) in (0..g.oh)
                    .flat_map(|yy| (0..g.ow).map(move |xx| (yy, xx)))
                    .enumerate()
                {
                    for tap in 0..taps {
                        let (c, t) = (tap / (g.kh * g.kw), tap % (g.kh * g.kw));
                        let iy = (yy + t / g.kw) as isize - g.opts.padding[0] as isize;
                        let ix = (xx + t % g.kw) as isize - g.opts.padding[1] as isize;
                        if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                            continue;
                        }
                        let v = x[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize] as f64;
                        let at = (n * g.o + o) * p + cell;
                        y[at] += w[o * taps + tap] as f64 * v;
                        dw[o * taps + tap] += dy[at] as f64 * v;
                    }
                }
            }
        }
        (y, dw)
    }

    /// The direct kernels agree with the definition to f32 rounding: one input channel
    /// (padded and not, rows of one block, of two and with a partial block, channel and
    /// tap counts that leave tails, LeNet's and PyTorch's MNIST example's first layers)
    /// and several (LeNet's second layer, padded, cell and tap counts with tails, one
    /// output channel and sixteen).
    #[test]
    fn direct_convolution_matches_the_definition() {
        if !avx512() {
            return;
        }
        for (n, c, h, w, o, kh, kw, pad) in [
            (5, 1, 28, 28, 6, 5, 5, 2),
            (3, 1, 28, 28, 32, 3, 3, 0),
            (2, 1, 9, 40, 7, 3, 4, 1),
            (3, 1, 5, 5, 1, 5, 5, 0),
            (1, 1, 12, 33, 13, 2, 1, 0),
            (5, 6, 14, 14, 16, 5, 5, 0),
            (3, 3, 7, 9, 5, 3, 2, 1),
            (2, 2, 5, 5, 1, 5, 5, 0),
            (4, 17, 6, 5, 16, 1, 1, 0),
        ] {
            let g = Geometry::of(n, c, [h, w], o, [kh, kw], Conv2dOptions::new(1, pad));
            let (oh, ow) = (g.oh, g.ow);
            assert!(applies::<f32>(&g));
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let wt: Vec<f32> = (0..o * c * kh * kw)
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
            let mut dw = vec![f32::NAN; o * c * kh * kw];
            let mut rest = vec![f32::NAN; o * c * kh * kw];
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
