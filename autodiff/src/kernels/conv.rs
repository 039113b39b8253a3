//! 2-D convolution as im2col + GEMM, and pooling windows, on NCHW data. Images are
//! processed in parallel (rayon) in a fixed partition, so results do not depend on
//! the number of threads.

use crate::float::Float;
use crate::kernels::gemm::{matmul_into, MatRef};
use rayon::prelude::*;

/// Stride, zero padding, dilation (each per (height, width)) and channel groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between windows.
    pub stride: [usize; 2],
    /// Zeros added on each side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels split into this many independent convolutions.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// Same stride and padding in both directions.
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dOptions {
            stride: [stride, stride],
            padding: [padding, padding],
            ..Self::default()
        }
    }
}

/// Output length along one axis, or `None` when the (dilated) kernel does not fit.
pub(crate) fn out_len(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation * (kernel.max(1) - 1) + 1;
    let padded = input + 2 * padding;
    (padded >= span && stride > 0).then(|| (padded - span) / stride + 1)
}

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub opts: Conv2dOptions,
}

impl Geometry {
    fn group_channels(&self) -> usize {
        self.c / self.opts.groups
    }
    fn group_outputs(&self) -> usize {
        self.o / self.opts.groups
    }
    /// Rows of the im2col matrix of one group: channels x kernel taps.
    fn k(&self) -> usize {
        self.group_channels() * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
}

/// For kernel column `j`: the output columns `lo..hi` whose input column lies inside
/// the image, and the input column of `lo`. Outside that range the window reads padding.
fn in_bounds_columns(g: &Geometry, j: usize) -> (usize, usize, usize) {
    let sw = g.opts.stride[1];
    let offset = (j * g.opts.dilation[1]) as isize - g.opts.padding[1] as isize;
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) as usize).div_ceil(sw)
    };
    let hi = if g.w as isize > offset {
        ((g.w as isize - offset) as usize).div_ceil(sw).min(g.ow)
    } else {
        0
    };
    let start = (lo as isize * sw as isize + offset).max(0) as usize;
    (lo, hi, start)
}

/// Writes the input windows of channels `c0..c0+cg` of one image as `k` rows of
/// `oh*ow` values, row `r` starting at `cols[r * row_stride]` (so the images of a batch
/// can sit side by side in one wide matrix).
fn im2col<T: Float>(g: &Geometry, image: &[T], c0: usize, cols: &mut [T], row_stride: usize) {
    let [sh, sw] = g.opts.stride;
    let ph = g.opts.padding[0];
    let dh = g.opts.dilation[0];
    let p = g.p();
    let mut row = 0;
    for c in c0..c0 + g.group_channels() {
        let plane = &image[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let dst = &mut cols[row * row_stride..row * row_stride + p];
                let (lo, hi, start) = in_bounds_columns(g, j);
                for y in 0..g.oh {
                    let iy = (y * sh + i * dh) as isize - ph as isize;
                    let out = &mut dst[y * g.ow..(y + 1) * g.ow];
                    if iy < 0 || iy >= g.h as isize || lo >= hi {
                        out.fill(T::zero());
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    out[..lo].fill(T::zero());
                    out[hi..].fill(T::zero());
                    if sw == 1 {
                        out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                    } else {
                        for (k, o) in out[lo..hi].iter_mut().enumerate() {
                            *o = src[start + k * sw];
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back to the pixel it came from.
fn col2im_add<T: Float>(g: &Geometry, cols: &[T], c0: usize, image: &mut [T], row_stride: usize) {
    let [sh, sw] = g.opts.stride;
    let ph = g.opts.padding[0];
    let dh = g.opts.dilation[0];
    let p = g.p();
    let mut row = 0;
    for c in c0..c0 + g.group_channels() {
        let plane = &mut image[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let src = &cols[row * row_stride..row * row_stride + p];
                let (lo, hi, start) = in_bounds_columns(g, j);
                if lo >= hi {
                    row += 1;
                    continue;
                }
                for y in 0..g.oh {
                    let iy = (y * sh + i * dh) as isize - ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let from = &src[y * g.ow + lo..y * g.ow + hi];
                    if sw == 1 {
                        for (d, &v) in dst[start..start + (hi - lo)].iter_mut().zip(from) {
                            *d += v;
                        }
                    } else {
                        for (k, &v) in from.iter().enumerate() {
                            dst[start + k * sw] += v;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Images per parallel task: a fixed partition, independent of the thread count.
const PARTS: usize = 8;

fn chunk(n: usize) -> usize {
    n.div_ceil(PARTS).max(1)
}

/// The images `first..first + count` of a part, one group at a time: im2col of every
/// image side by side in one `[k, count * p]` matrix, so each group is one GEMM.
struct Part {
    first: usize,
    count: usize,
}

fn parts(n: usize) -> impl ParallelIterator<Item = Part> {
    let per = chunk(n);
    (0..n.div_ceil(per)).into_par_iter().map(move |i| Part {
        first: i * per,
        count: per.min(n - i * per),
    })
}

fn gather_cols<T: Float>(g: &Geometry, x: &[T], part: &Part, grp: usize, cols: &mut [T]) {
    let (p, chw) = (g.p(), g.c * g.h * g.w);
    let wide = part.count * p;
    for local in 0..part.count {
        let n = part.first + local;
        im2col(
            g,
            &x[n * chw..(n + 1) * chw],
            grp * g.group_channels(),
            &mut cols[local * p..],
            wide,
        );
    }
}

/// `[og, count * p]` rows of group `grp`'s output gradient, images side by side.
fn gather_dy<T: Float>(g: &Geometry, dy: &[T], part: &Part, grp: usize, out: &mut [T]) {
    let (p, og) = (g.p(), g.group_outputs());
    let wide = part.count * p;
    for local in 0..part.count {
        let n = part.first + local;
        for o in 0..og {
            let src = &dy[(n * g.o + grp * og + o) * p..][..p];
            out[o * wide + local * p..][..p].copy_from_slice(src);
        }
    }
}

/// The inverse of [`gather_dy`]: writes `[og, count * p]` rows back into group `grp`'s
/// channels of the part's `[count, o, p]` output.
fn scatter_group<T: Float>(g: &Geometry, rows: &[T], part: &Part, grp: usize, out: &mut [T]) {
    let (p, og) = (g.p(), g.group_outputs());
    let wide = part.count * p;
    for local in 0..part.count {
        for o in 0..og {
            out[(local * g.o + grp * og + o) * p..][..p]
                .copy_from_slice(&rows[o * wide + local * p..][..p]);
        }
    }
}

/// Group `grp`'s weights as an `[og, k]` matrix.
fn group_weight<'w, T: Float>(g: &Geometry, w: &'w [T], grp: usize) -> MatRef<'w, T> {
    let (og, k) = (g.group_outputs(), g.k());
    MatRef::row_major(&w[grp * og * k..(grp + 1) * og * k], og, k)
}

/// y[n, o] = sum over the group's channels and taps of w[o] * window.
pub(crate) fn conv2d_forward<T: Float>(g: &Geometry, x: &[T], w: &[T]) -> Vec<T> {
    let (k, p, og) = (g.k(), g.p(), g.group_outputs());
    let per_image = g.o * p;
    let pieces: Vec<Vec<T>> = parts(g.n)
        .map(|part| {
            let wide = part.count * p;
            let mut cols = vec![T::zero(); k * wide];
            let mut tmp = vec![T::zero(); og * wide];
            let mut out = vec![T::zero(); part.count * per_image];
            for grp in 0..g.opts.groups {
                gather_cols(g, x, &part, grp, &mut cols);
                let wg = group_weight(g, w, grp);
                matmul_into(wg, MatRef::row_major(&cols, k, wide), &mut tmp, false);
                scatter_group(g, &tmp, &part, grp, &mut out);
            }
            out
        })
        .collect();
    pieces.concat()
}

/// dx: Wᵀ dy for all images of a part at once, scattered back through col2im.
pub(crate) fn conv2d_grad_input<T: Float>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let (k, p, og, chw) = (g.k(), g.p(), g.group_outputs(), g.c * g.h * g.w);
    let pieces: Vec<Vec<T>> = parts(g.n)
        .map(|part| {
            let wide = part.count * p;
            let mut dyg = vec![T::zero(); og * wide];
            let mut cols = vec![T::zero(); k * wide];
            let mut dx = vec![T::zero(); part.count * chw];
            for grp in 0..g.opts.groups {
                gather_dy(g, dy, &part, grp, &mut dyg);
                let wg = group_weight(g, w, grp);
                matmul_into(wg.t(), MatRef::row_major(&dyg, og, wide), &mut cols, false);
                for local in 0..part.count {
                    col2im_add(
                        g,
                        &cols[local * p..],
                        grp * g.group_channels(),
                        &mut dx[local * chw..(local + 1) * chw],
                        wide,
                    );
                }
            }
            dx
        })
        .collect();
    pieces.concat()
}

/// dw = dy cols(x)ᵀ per part, then the parts summed in order (deterministic).
pub(crate) fn conv2d_grad_weight<T: Float>(g: &Geometry, dy: &[T], x: &[T]) -> Vec<T> {
    let (k, p, og) = (g.k(), g.p(), g.group_outputs());
    let pieces: Vec<Vec<T>> = parts(g.n)
        .map(|part| {
            let wide = part.count * p;
            let mut dyg = vec![T::zero(); og * wide];
            let mut cols = vec![T::zero(); k * wide];
            let mut dw = vec![T::zero(); g.o * k];
            for grp in 0..g.opts.groups {
                gather_cols(g, x, &part, grp, &mut cols);
                gather_dy(g, dy, &part, grp, &mut dyg);
                let dy_m = MatRef::row_major(&dyg, og, wide);
                matmul_into(
                    dy_m,
                    MatRef::row_major(&cols, k, wide).t(),
                    &mut dw[grp * og * k..(grp + 1) * og * k],
                    false,
                );
            }
            dw
        })
        .collect();
    let mut total = vec![T::zero(); g.o * k];
    for piece in pieces {
        for (t, v) in total.iter_mut().zip(piece) {
            *t += v;
        }
    }
    total
}

/// Pooling geometry over the last two axes of an `[n, c, h, w]` tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pool {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

impl Pool {
    /// The input rows and columns of output cell (`y`, `x`)'s window, clipped to the image.
    #[inline]
    fn window(&self, y: usize, x: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let clip = |start: usize, pad: usize, k: usize, len: usize| {
            let lo = start.saturating_sub(pad);
            let hi = (start + k).saturating_sub(pad).min(len);
            lo..hi.max(lo)
        };
        (
            clip(y * self.stride[0], self.padding[0], self.kernel[0], self.h),
            clip(x * self.stride[1], self.padding[1], self.kernel[1], self.w),
        )
    }
}

/// Max over each window, with the flat index of its first maximum (ties go to the
/// first, so gradients are deterministic). Padding never wins. Planes in parallel.
pub(crate) fn max_pool<T: Float>(p: &Pool, x: &[T]) -> (Vec<T>, Vec<usize>) {
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut out = vec![T::neg_infinity(); p.planes * plane_out];
    let mut arg = vec![usize::MAX; out.len()];
    let per = chunk(p.planes);
    out.par_chunks_mut(per * plane_out)
        .zip(arg.par_chunks_mut(per * plane_out))
        .enumerate()
        .for_each(|(part, (out, arg))| {
            for (local, (out, arg)) in out
                .chunks_mut(plane_out)
                .zip(arg.chunks_mut(plane_out))
                .enumerate()
            {
                let base = (part * per + local) * plane_in;
                let plane = &x[base..base + plane_in];
                for y in 0..p.oh {
                    for xo in 0..p.ow {
                        let (rows, cols) = p.window(y, xo);
                        let (mut best, mut at) = (T::neg_infinity(), usize::MAX);
                        for iy in rows {
                            for ix in cols.clone() {
                                let v = plane[iy * p.w + ix];
                                if at == usize::MAX || v > best || (v.is_nan() && !best.is_nan()) {
                                    best = v;
                                    at = iy * p.w + ix;
                                }
                            }
                        }
                        out[y * p.ow + xo] = best;
                        arg[y * p.ow + xo] = if at == usize::MAX { at } else { base + at };
                    }
                }
            }
        });
    (out, arg)
}

/// Mean over each window, counting padded cells as zeros (PyTorch's default).
pub(crate) fn avg_pool<T: Float>(p: &Pool, x: &[T]) -> Vec<T> {
    let scale = T::one() / T::from_usize(p.kernel[0] * p.kernel[1]);
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut out = vec![T::zero(); p.planes * plane_out];
    for (k, out) in out.chunks_mut(plane_out.max(1)).enumerate() {
        let plane = &x[k * plane_in..(k + 1) * plane_in];
        for y in 0..p.oh {
            for xo in 0..p.ow {
                let (rows, cols) = p.window(y, xo);
                let mut sum = T::zero();
                for iy in rows {
                    sum += plane[iy * p.w + cols.start..iy * p.w + cols.end]
                        .iter()
                        .copied()
                        .sum::<T>();
                }
                out[y * p.ow + xo] = sum * scale;
            }
        }
    }
    out
}

/// The adjoint of [`avg_pool`].
pub(crate) fn avg_pool_grad<T: Float>(p: &Pool, dy: &[T]) -> Vec<T> {
    let scale = T::one() / T::from_usize(p.kernel[0] * p.kernel[1]);
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut dx = vec![T::zero(); p.planes * plane_in];
    for (k, dx) in dx.chunks_mut(plane_in.max(1)).enumerate() {
        let dy = &dy[k * plane_out..(k + 1) * plane_out];
        for y in 0..p.oh {
            for xo in 0..p.ow {
                let (rows, cols) = p.window(y, xo);
                let g = dy[y * p.ow + xo] * scale;
                for iy in rows {
                    dx[iy * p.w + cols.start..iy * p.w + cols.end]
                        .iter_mut()
                        .for_each(|d| *d += g);
                }
            }
        }
    }
    dx
}
