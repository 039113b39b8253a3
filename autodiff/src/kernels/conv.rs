//! 2-D convolution as im2col + GEMM, and pooling windows, on NCHW data. Images are
//! processed in parallel (the helpers of [`pool`]) in a fixed partition, so results do
//! not depend on the number of threads.

use crate::float::{take_scratch, with_scratch, Float, Recycled};
use crate::kernels::direct_conv;
use crate::kernels::gemm::{matmul_into, MatRef};
use crate::kernels::pool;
use crate::kernels::schedule::{conv_part_len, KEEP_COLS_MAX};
use smallvec::SmallVec;

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
    /// `n` images of `c` planes `h` x `w` under `o` kernels `kh` x `kw` (the kernels'
    /// tests build their cases with it).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of(
        n: usize,
        c: usize,
        [h, w]: [usize; 2],
        o: usize,
        [kh, kw]: [usize; 2],
        opts: Conv2dOptions,
    ) -> Geometry {
        let along = |i: usize| {
            let (input, kernel) = ([h, w][i], [kh, kw][i]);
            out_len(
                input,
                kernel,
                opts.stride[i],
                opts.padding[i],
                opts.dilation[i],
            )
            .expect("the kernel fits")
        };
        let (oh, ow) = (along(0), along(1));
        Geometry {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            oh,
            ow,
            opts,
        }
    }

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

/// Copies a short run (an image row, tens of elements) as an inline vector loop. A plain
/// copy loop becomes a call to `memcpy`, whose per-call cost on runs this short was most
/// of im2col's time; adding +0.0 (it only turns -0.0 into +0.0, which no product or sum
/// downstream can tell apart) is an operation LLVM must keep, so the loop stays inline.
#[inline(always)]
fn copy_run<T: Float>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s + T::zero();
    }
}

/// Copies the `[c, h, w]` planes of `image` (one or more) into `out` with the zero
/// border of `g`'s padding, each plane `h + 2 ph` rows of `width` (at least
/// `w + 2 pw`) columns, zeros past the image's columns. `out` is refilled, not
/// reallocated, so one buffer serves every image.
pub(crate) fn bordered<T: Float>(g: &Geometry, image: &[T], width: usize, out: &mut Vec<T>) {
    let [ph, pw] = g.opts.padding;
    let (plane, bordered_plane) = ((g.h * g.w).max(1), ((g.h + 2 * ph) * width).max(1));
    out.clear();
    out.resize(image.len() / plane * bordered_plane, T::zero());
    for (src, dst) in image
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(bordered_plane))
    {
        for (y, line) in src.chunks_exact(g.w.max(1)).enumerate() {
            copy_run(&mut dst[(y + ph) * width + pw..][..g.w], line);
        }
    }
}

/// Writes the input windows of channels `c0..c0+cg` of one image as `k` rows of
/// `oh*ow` values, row `r` starting at `cols[r * row_stride]` (so the images of a batch
/// can sit side by side in one wide matrix). A padded convolution first copies each
/// channel into a zero-bordered plane (`padded`, reused), so every window row is one
/// plain copy with no bounds checks or zero fills (the fills were a third of im2col).
fn im2col<T: Float>(
    g: &Geometry,
    image: &[T],
    c0: usize,
    cols: &mut [T],
    row_stride: usize,
    padded: &mut Vec<T>,
) {
    let [sh, sw] = g.opts.stride;
    let [ph, pw] = g.opts.padding;
    let [dh, dw] = g.opts.dilation;
    let wp = g.w + 2 * pw;
    let p = g.p();
    let mut row = 0;
    for c in c0..c0 + g.group_channels() {
        let plane = &image[c * g.h * g.w..(c + 1) * g.h * g.w];
        let src: &[T] = if ph == 0 && pw == 0 {
            plane
        } else {
            bordered(g, plane, wp, padded);
            padded
        };
        for i in 0..g.kh {
            for j in 0..g.kw {
                let dst = &mut cols[row * row_stride..row * row_stride + p];
                for (y, out) in dst.chunks_exact_mut(g.ow.max(1)).enumerate() {
                    let base = (y * sh + i * dh) * wp + j * dw;
                    if sw == 1 {
                        copy_run(out, &src[base..base + g.ow]);
                    } else {
                        for (x, o) in out.iter_mut().enumerate() {
                            *o = src[base + x * sw];
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

/// The images `first..first + count` of a part, one group at a time: im2col of every
/// image side by side in one `[k, count * p]` matrix, so each group is one GEMM.
struct Part {
    first: usize,
    count: usize,
}

impl Part {
    /// Part `i` of `n` images cut into parts of `per`.
    fn nth(i: usize, per: usize, n: usize) -> Part {
        Part {
            first: i * per,
            count: per.min(n - i * per),
        }
    }
}

/// Runs `work` on each part of `n` images, in parallel, with the part's piece of each
/// of `outputs` (slices cut into pieces of `chunk(n)` images' worth, given per slice).
fn for_each_part<T: Send, const N: usize>(
    n: usize,
    outputs: [(&mut [T], usize); N],
    work: impl Fn(Part, [&mut [T]; N]) + Sync,
) {
    let per = conv_part_len(n);
    // Part i owns piece i of every slice (an empty one where a slice has no piece i).
    let mut pieces = outputs.map(|(data, per_image)| data.chunks_mut((per * per_image).max(1)));
    let parts: SmallVec<[[&mut [T]; N]; 8]> = (0..n.div_ceil(per))
        .map(|_| pieces.each_mut().map(|p| p.next().unwrap_or_default()))
        .collect();
    pool::for_each_owned(parts, |i, pieces| work(Part::nth(i, per, n), pieces));
}

fn gather_cols<T: Float>(g: &Geometry, x: &[T], part: &Part, grp: usize, cols: &mut [T]) {
    let (p, chw) = (g.p(), g.c * g.h * g.w);
    let wide = part.count * p;
    let mut padded = Vec::new();
    for local in 0..part.count {
        let n = part.first + local;
        im2col(
            g,
            &x[n * chw..(n + 1) * chw],
            grp * g.group_channels(),
            &mut cols[local * p..],
            wide,
            &mut padded,
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
/// channels of the part's `[count, o, p]` output, adding each channel's bias if given.
fn scatter_group<T: Float>(
    g: &Geometry,
    rows: &[T],
    part: &Part,
    grp: usize,
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let (p, og) = (g.p(), g.group_outputs());
    let wide = part.count * p;
    for local in 0..part.count {
        for o in 0..og {
            let dst = &mut out[(local * g.o + grp * og + o) * p..][..p];
            let src = &rows[o * wide + local * p..][..p];
            match bias {
                Some(b) => {
                    let b = b[grp * og + o];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + b);
                }
                None => dst.copy_from_slice(src),
            }
        }
    }
}

/// Group `grp`'s weights as an `[og, k]` matrix.
fn group_weight<'w, T: Float>(g: &Geometry, w: &'w [T], grp: usize) -> MatRef<'w, T> {
    let (og, k) = (g.group_outputs(), g.k());
    MatRef::row_major(&w[grp * og * k..(grp + 1) * og * k], og, k)
}

/// y[n, o] = bias[o] + sum over the group's channels and taps of w[o] * window.
///
/// With `keep_cols` (and a matrix under [`KEEP_COLS_MAX`]) the im2col columns are
/// returned too, part by part and group by group as [`conv2d_grad_weight`] reads them.
pub(crate) fn conv2d_forward<T: Float>(
    g: &Geometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    keep_cols: bool,
) -> (Vec<T>, Option<Recycled<T>>) {
    let (k, p, og) = (g.k(), g.p(), g.group_outputs());
    let per_image = g.o * p;
    let cols_per_image = g.opts.groups * k * p;
    let mut y = vec![T::zero(); g.n * per_image];
    if y.is_empty() {
        return (y, None);
    }
    if direct_conv::applies::<T>(g) {
        for_each_part(g.n, [(&mut y, per_image)], |part, [out]| {
            direct_conv::forward(g, x, w, bias, part.first, out)
        });
        return (y, None);
    }
    let conv_part = |part: &Part, out: &mut [T], cols: &mut [T]| {
        let wide = part.count * p;
        with_scratch(og * wide, |tmp| {
            for grp in 0..g.opts.groups {
                let cols = &mut cols[grp * k * wide..(grp + 1) * k * wide];
                gather_cols(g, x, part, grp, cols);
                let wg = group_weight(g, w, grp);
                matmul_into(wg, MatRef::row_major(cols, k, wide), tmp, false);
                scatter_group(g, tmp, part, grp, bias, out);
            }
        })
    };
    if !keep_cols || g.n * cols_per_image > KEEP_COLS_MAX {
        for_each_part(g.n, [(&mut y, per_image)], |part, [out]| {
            with_scratch(part.count * cols_per_image, |cols| {
                conv_part(&part, out, cols)
            })
        });
        return (y, None);
    }
    let mut cols = Recycled(take_scratch(g.n * cols_per_image));
    let outputs = [(&mut y[..], per_image), (&mut cols.0[..], cols_per_image)];
    for_each_part(g.n, outputs, |part, [out, cols]| {
        conv_part(&part, out, cols)
    });
    (y, Some(cols))
}

/// [`conv2d_forward`] of the same input with other weights, from the im2col columns an
/// earlier call kept (`keep_cols`, same geometry and thread count, so the same parts),
/// without gathering the input again: forward mode's `conv(x, dw)`.
pub(crate) fn conv2d_forward_from_cols<T: Float>(
    g: &Geometry,
    cols: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let (k, p, og) = (g.k(), g.p(), g.group_outputs());
    let per_image = g.o * p;
    let cols_per_image = g.opts.groups * k * p;
    let mut y = vec![T::zero(); g.n * per_image];
    if y.is_empty() {
        return y;
    }
    for_each_part(g.n, [(&mut y, per_image)], |part, [out]| {
        let wide = part.count * p;
        let cols = &cols[part.first * cols_per_image..(part.first + part.count) * cols_per_image];
        with_scratch(og * wide, |tmp| {
            for grp in 0..g.opts.groups {
                let cols = &cols[grp * k * wide..(grp + 1) * k * wide];
                let wg = group_weight(g, w, grp);
                matmul_into(wg, MatRef::row_major(cols, k, wide), tmp, false);
                scatter_group(g, tmp, &part, grp, bias, out);
            }
        })
    });
    y
}

/// dx: Wᵀ dy for all images of a part at once, scattered back through col2im.
pub(crate) fn conv2d_grad_input<T: Float>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let (k, p, og, chw) = (g.k(), g.p(), g.group_outputs(), g.c * g.h * g.w);
    let mut dx = vec![T::zero(); g.n * chw];
    if dx.is_empty() {
        return dx;
    }
    for_each_part(g.n, [(&mut dx, chw)], |part, [dx]| {
        let wide = part.count * p;
        with_scratch(og * wide, |dyg| {
            with_scratch(k * wide, |cols| {
                for grp in 0..g.opts.groups {
                    gather_dy(g, dy, &part, grp, dyg);
                    let wg = group_weight(g, w, grp);
                    matmul_into(wg.t(), MatRef::row_major(dyg, og, wide), cols, false);
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
            })
        })
    });
    dx
}

/// dw = dy cols(x)ᵀ per part, then the parts summed in order (deterministic). `kept`
/// holds the forward pass's columns when it kept them; otherwise they are built again.
pub(crate) fn conv2d_grad_weight<T: Float>(
    g: &Geometry,
    dy: &[T],
    x: &[T],
    kept: Option<&[T]>,
) -> Vec<T> {
    let (k, p, og) = (g.k(), g.p(), g.group_outputs());
    let cols_per_image = g.opts.groups * k * p;
    let per = conv_part_len(g.n);
    // One dw per part, side by side, each written whole by its part's groups.
    let mut pieces = vec![T::zero(); g.n.div_ceil(per) * g.o * k];
    pool::for_chunks(&mut pieces, g.o * k, |i, dw: &mut [T]| {
        let part = Part::nth(i, per, g.n);
        if direct_conv::applies::<T>(g) {
            return direct_conv::grad_weight_part(g, x, dy, part.first, part.count, dw);
        }
        let wide = part.count * p;
        let mut dwt = vec![T::zero(); k * og];
        // dWᵀ = cols · dyᵀ rather than dW = dy · colsᵀ: the gemm crate runs the
        // product with the long operand on the left at twice the rate.
        let mut product = |grp: usize, cols: &[T], dyg: &mut [T]| {
            gather_dy(g, dy, &part, grp, dyg);
            matmul_into(
                MatRef::row_major(cols, k, wide),
                MatRef::row_major(dyg, og, wide).t(),
                &mut dwt,
                false,
            );
            let dwg = &mut dw[grp * og * k..(grp + 1) * og * k];
            for (o, row) in dwg.chunks_exact_mut(k).enumerate() {
                for (kk, v) in row.iter_mut().enumerate() {
                    *v = dwt[kk * og + o];
                }
            }
        };
        with_scratch(og * wide, |dyg| match kept {
            Some(kept) => {
                let mine = &kept[part.first * cols_per_image..][..part.count * cols_per_image];
                for grp in 0..g.opts.groups {
                    product(grp, &mine[grp * k * wide..(grp + 1) * k * wide], dyg);
                }
            }
            None => with_scratch(k * wide, |cols| {
                for grp in 0..g.opts.groups {
                    gather_cols(g, x, &part, grp, cols);
                    product(grp, cols, dyg);
                }
            }),
        });
    });
    let mut total = vec![T::zero(); g.o * k];
    for piece in pieces.chunks_exact(total.len().max(1)) {
        for (t, &v) in total.iter_mut().zip(piece) {
            *t += v;
        }
    }
    total
}

/// The bias gradient: each output channel's planes summed over the batch.
pub(crate) fn conv2d_grad_bias<T: Float>(g: &Geometry, dy: &[T]) -> Vec<T> {
    let mut db = vec![T::zero(); g.o];
    for (k, plane) in dy.chunks_exact(g.p().max(1)).enumerate() {
        db[k % g.o.max(1)] += lane_sum(plane);
    }
    db
}

/// A sum in eight independent lanes, so the loop vectorises (the order is fixed, so
/// the result is still deterministic).
fn lane_sum<T: Float>(xs: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let tail: T = chunks.remainder().iter().copied().sum();
    lanes.iter().copied().sum::<T>() + tail
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

/// Index within its plane of a window's maximum; `EMPTY` for a window that holds no
/// input cell (all padding). Half the memory of `usize`, which the backward pass reads.
pub(crate) type PlaneIndex = u32;
pub(crate) const EMPTY: PlaneIndex = PlaneIndex::MAX;

/// Max over each window, with the index in its plane of its first maximum (ties go to
/// the first, so gradients are deterministic; the first NaN wins over numbers). Padding
/// never wins. Planes in parallel.
pub(crate) fn max_pool<T: Float>(p: &Pool, x: &[T]) -> (Vec<T>, Vec<PlaneIndex>) {
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    assert!(
        plane_in < EMPTY as usize,
        "max_pool2d: planes of {} x {} are too large (at most 2^32 - 1 cells)",
        p.h,
        p.w
    );
    // Every cell of both is written below; zeros come cheapest from the allocator.
    let mut out = vec![T::zero(); p.planes * plane_out];
    let mut arg: Vec<PlaneIndex> = vec![0; out.len()];
    if plane_out == 0 {
        return (out, arg);
    }
    // The clipped window of every output row and column, computed once.
    let rows: Vec<_> = (0..p.oh).map(|y| p.window(y, 0).0).collect();
    let cols: Vec<_> = (0..p.ow).map(|xo| p.window(0, xo).1).collect();
    // The common 2x2, stride 2, unpadded window has its own unrolled loop.
    let pairs = p.kernel == [2, 2] && p.stride == [2, 2] && p.padding == [0, 0];
    let per = conv_part_len(p.planes);
    let pieces: SmallVec<[_; 8]> = out
        .chunks_mut(per * plane_out)
        .zip(arg.chunks_mut(per * plane_out))
        .collect();
    pool::for_each_owned(pieces, |part, (out, arg)| {
        for (local, (out, arg)) in out
            .chunks_mut(plane_out)
            .zip(arg.chunks_mut(plane_out))
            .enumerate()
        {
            let base = (part * per + local) * plane_in;
            let plane = &x[base..base + plane_in];
            if pairs {
                max_pool_2x2(p, plane, out, arg);
                continue;
            }
            for (y, r) in rows.iter().enumerate() {
                for (xo, c) in cols.iter().enumerate() {
                    let cell = y * p.ow + xo;
                    if r.is_empty() || c.is_empty() {
                        (out[cell], arg[cell]) = (T::neg_infinity(), EMPTY);
                        continue;
                    }
                    let mut at = r.start * p.w + c.start;
                    let mut best = plane[at];
                    for iy in r.clone() {
                        let row = &plane[iy * p.w..(iy + 1) * p.w];
                        for (ix, &v) in row[c.clone()].iter().enumerate() {
                            // Selects, not branches: which cell wins is data-dependent
                            // and would mispredict half the time.
                            let take = beats(v, best);
                            best = if take { v } else { best };
                            at = if take { iy * p.w + c.start + ix } else { at };
                        }
                    }
                    (out[cell], arg[cell]) = (best, at as PlaneIndex);
                }
            }
        }
    });
    (out, arg)
}

/// Whether `v` replaces `best` as a window's maximum: a larger number, or the first NaN.
#[inline(always)]
fn beats<T: Float>(v: T, best: T) -> bool {
    // `|` and `&`, not `||`: no branch, so the 2x2 kernel's loop stays vectorisable.
    ((v > best) | v.is_nan()) & !best.is_nan()
}

/// [`max_pool`] of one plane for 2x2 windows with stride 2 and no padding, with the
/// same result (the first maximum in row order; the first NaN if there is one). Every
/// step is a compare and a select, with no data-dependent branch (where the maximum
/// sits is random, and a branch on it mispredicts half the time), so the compiler
/// vectorises the loop over a row's windows; on AVX-512 it runs sixteen at a time.
fn max_pool_2x2<T: Float>(p: &Pool, plane: &[T], out: &mut [T], arg: &mut [PlaneIndex]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { max_pool_2x2_avx512(p, plane, out, arg) };
    }
    max_pool_2x2_plain(p, plane, out, arg)
}

/// [`max_pool_2x2_plain`] compiled for AVX-512.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_pool_2x2_avx512<T: Float>(
    p: &Pool,
    plane: &[T],
    out: &mut [T],
    arg: &mut [PlaneIndex],
) {
    max_pool_2x2_plain(p, plane, out, arg)
}

#[inline(always)]
fn max_pool_2x2_plain<T: Float>(p: &Pool, plane: &[T], out: &mut [T], arg: &mut [PlaneIndex]) {
    let w = p.w;
    for y in 0..p.oh {
        let top = 2 * y * w;
        let (r0, r1) = (
            &plane[top..top + 2 * p.ow],
            &plane[top + w..top + w + 2 * p.ow],
        );
        let out = &mut out[y * p.ow..(y + 1) * p.ow];
        let arg = &mut arg[y * p.ow..(y + 1) * p.ow];
        let (top, w) = (top as PlaneIndex, w as PlaneIndex);
        for (xo, (((o, a), up), down)) in out
            .iter_mut()
            .zip(arg.iter_mut())
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
            .enumerate()
        {
            let mut best = up[0];
            let mut at: PlaneIndex = 0;
            for (v, k) in [(up[1], 1), (down[0], w), (down[1], w + 1)] {
                let take = beats(v, best);
                best = if take { v } else { best };
                at = if take { k } else { at };
            }
            *o = best;
            *a = top + 2 * xo as PlaneIndex + at;
        }
    }
}

/// The adjoint of [`max_pool`]: each output gradient goes to its window's maximum.
/// Planes in parallel.
pub(crate) fn max_pool_grad<T: Float>(p: &Pool, argmax: &[PlaneIndex], dy: &[T]) -> Vec<T> {
    let (plane_in, plane_out) = (p.h * p.w, p.oh * p.ow);
    let mut dx = vec![T::zero(); p.planes * plane_in];
    if plane_in == 0 || plane_out == 0 {
        return dx;
    }
    let per = conv_part_len(p.planes);
    pool::for_chunks(&mut dx, per * plane_in, |i, dx: &mut [T]| {
        let argmax = argmax.chunks(per * plane_out).nth(i).unwrap_or_default();
        let dy = dy.chunks(per * plane_out).nth(i).unwrap_or_default();
        let planes = dx.chunks_mut(plane_in);
        for (dx, (argmax, dy)) in planes.zip(argmax.chunks(plane_out).zip(dy.chunks(plane_out))) {
            for (&i, &g) in argmax.iter().zip(dy) {
                if i != EMPTY {
                    dx[i as usize] += g;
                }
            }
        }
    });
    dx
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_columns_give_the_same_weight_gradient_as_rebuilt_ones() {
        // Grouped, strided, padded and dilated, over more images than parts.
        let opts = Conv2dOptions {
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 2],
            groups: 2,
        };
        let (n, c, h, w, o, kh, kw) = (11, 4, 7, 9, 6, 3, 2);
        let g = Geometry::of(n, c, [h, w], o, [kh, kw], opts);
        let x: Vec<f64> = (0..n * c * h * w)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let wt: Vec<f64> = (0..o * (c / 2) * kh * kw)
            .map(|i| ((i * 13) % 29) as f64 / 14.0 - 1.0)
            .collect();
        let (y_kept, cols) = conv2d_forward(&g, &x, &wt, None, true);
        let (y_plain, none) = conv2d_forward(&g, &x, &wt, None, false);
        assert!(none.is_none());
        assert_eq!(y_kept, y_plain);
        let dy: Vec<f64> = (0..y_kept.len())
            .map(|i| ((i * 7) % 17) as f64 / 8.0 - 1.0)
            .collect();
        let kept = conv2d_grad_weight(&g, &dy, &x, cols.as_ref().map(|c| &c.0[..]));
        let rebuilt = conv2d_grad_weight(&g, &dy, &x, None);
        assert_eq!(kept, rebuilt);
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    /// The 2x2 kernel gives the general windows' answer, value and index, on the plain
    /// path and on the one this CPU dispatches to: rows shorter and longer than a
    /// vector, an odd column and row left over, ties, NaNs and infinities.
    #[test]
    fn the_unrolled_2x2_pool_matches_the_general_windows() {
        for (h, w) in [(28, 28), (10, 10), (6, 34), (7, 67), (2, 2)] {
            let (oh, ow) = (h / 2, w / 2);
            let p = Pool {
                planes: 1,
                h,
                w,
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                oh,
                ow,
            };
            let palette = [
                0.0,
                1.0,
                1.0,
                -2.0,
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                3.0,
            ];
            let plane: Vec<f32> = (0..h * w)
                .map(|i| palette[(i * 7 + i / 5) % palette.len()])
                .collect();
            let mut want = (vec![0.0; oh * ow], vec![0; oh * ow]);
            for y in 0..oh {
                for x in 0..ow {
                    let cells = [
                        (2 * y, 2 * x),
                        (2 * y, 2 * x + 1),
                        (2 * y + 1, 2 * x),
                        (2 * y + 1, 2 * x + 1),
                    ];
                    let mut at = cells[0].0 * w + cells[0].1;
                    for &(r, c) in &cells[1..] {
                        if beats(plane[r * w + c], plane[at]) {
                            at = r * w + c;
                        }
                    }
                    (want.0[y * ow + x], want.1[y * ow + x]) = (plane[at], at as PlaneIndex);
                }
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            type Kernel = fn(&Pool, &[f32], &mut [f32], &mut [PlaneIndex]);
            let kernels: [(&str, Kernel); 2] =
                [("plain", max_pool_2x2_plain), ("dispatched", max_pool_2x2)];
            for (name, kernel) in kernels {
                let mut got = (vec![0.0; oh * ow], vec![0; oh * ow]);
                kernel(&p, &plane, &mut got.0, &mut got.1);
                assert_eq!(
                    (bits(&got.0), &got.1),
                    (bits(&want.0), &want.1),
                    "{name} {h}x{w}"
                );
            }
        }
    }
}
