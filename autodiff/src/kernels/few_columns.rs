//! Products with at most sixteen output columns, in f32 on AVX-512: one output row is
//! one vector register, so a block of rows is a block of accumulators, each updated by
//! one fused multiply-add per inner index (a broadcast element of the left operand
//! times a row of the right one). A narrow layer's `X W1` and `Xᵀ G` are such products:
//! the `gemm` crate's 16x6 tiles cover sixteen columns with three tiles and it packs the
//! left operand first; this kernel does neither (docs/performance.md).

/// Whether [`Product::run`] handles an f32 product with this right operand: at most
/// sixteen columns, each row contiguous, on a CPU with AVX-512F.
pub(crate) fn applies(n: usize, b_col_stride: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        n <= LANES && (b_col_stride == 1 || n == 1) && std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, b_col_stride);
        false
    }
}

const LANES: usize = 16;

/// An operand: element (i, j) at `ptr + i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub ptr: *const f32,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// The output: row i starts at `ptr + i * row_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub ptr: *mut f32,
    pub row_stride: usize,
}

/// What the output holds before the product is added, in GEMM's terms `c = a b + β c`:
/// β = 0, β = 1 (`c += a b`), or β = 0 plus the same `n`-element row on every row
/// (`c = a b + bias`).
#[derive(Clone, Copy)]
pub(crate) enum Beta {
    Zero,
    One,
    Bias(*const f32),
}

/// One product `c = a b + β c`: an `m x k` left operand `a`, a `k x n` right operand
/// `b` with contiguous rows, and `c` holding `m` rows of `n` elements.
#[derive(Clone, Copy)]
pub(crate) struct Product {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: Strided,
    pub b: Strided,
    pub c: Out,
    pub beta: Beta,
}

impl Product {
    /// Computes the product.
    ///
    /// # Safety
    /// [`applies`] returned true for `n` and `b.col_stride`; every element of `a`, `b`
    /// and `c` that the dimensions and strides describe lies inside one allocation, and
    /// `c` may be written (with [`Beta::One`], read too: then it must be initialised),
    /// and a [`Beta::Bias`] points at `n` readable elements.
    pub(crate) unsafe fn run(self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded from the caller; `applies` checked AVX-512F.
        unsafe {
            x86::product(self)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("few_columns::Product::run called where `applies` is false")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Beta, Product, LANES};
    use std::arch::x86_64::*;

    /// [`Product::run`] compiled for AVX-512F.
    ///
    /// # Safety
    /// As [`Product::run`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(job: Product) {
        let mask: __mmask16 = if job.n >= LANES { !0 } else { (1 << job.n) - 1 };
        let mut i = 0;
        // SAFETY (all blocks): rows i..i + R of `a` and `c` exist, by the caller's
        // contract and the loop bounds.
        unsafe {
            // Rows of `a` a multiple of 4 KiB apart (1024 inputs) share one set of the
            // 8-way L1 cache: sixteen of them evict each other at every step, four at a
            // time they fit (docs/performance.md).
            if job.a.col_stride == 1 && crowded(16, job.a.row_stride) {
                while job.m - i >= 4 {
                    rows::<4>(i, &job, mask);
                    i += 4;
                }
            }
            while job.m - i >= 16 {
                rows::<16>(i, &job, mask);
                i += 16;
            }
            if job.m - i >= 8 {
                rows::<8>(i, &job, mask);
                i += 8;
            }
            if job.m - i >= 4 {
                rows::<4>(i, &job, mask);
                i += 4;
            }
            if job.m - i >= 2 {
                rows::<2>(i, &job, mask);
                i += 2;
            }
            if job.m - i == 1 {
                rows::<1>(i, &job, mask);
            }
        }
    }

    /// Whether `rows` rows `row_stride` floats apart put more than eight of their
    /// cache lines in one set of a 64-set, 8-way L1 cache.
    fn crowded(rows: usize, row_stride: usize) -> bool {
        let mut per_set = [0u8; 64];
        (0..rows).any(|r| {
            let set = (r * row_stride * 4 / 64) % 64;
            per_set[set] += 1;
            per_set[set] > 8
        })
    }

    /// Rows `first..first + R` of the output: `R` accumulators, and per inner index one
    /// (masked) load of a row of `b` and `R` multiply-adds with broadcast elements of
    /// `a` (the broadcast folds into the multiply-add's memory operand).
    ///
    /// # Safety
    /// As [`Product::run`], and rows `first..first + R` exist in `a` and `c`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn rows<const R: usize>(first: usize, job: &Product, mask: __mmask16) {
        let Product {
            k, a, b, c, beta, ..
        } = *job;
        // SAFETY: the caller guarantees rows `first..first + R` of `a` and `c`, all `k`
        // rows of `b` and a bias row lie inside their allocations.
        unsafe {
            let mut acc = [match beta {
                Beta::Bias(row) => _mm512_maskz_loadu_ps(mask, row),
                Beta::Zero | Beta::One => _mm512_setzero_ps(),
            }; R];
            let a_rows: [*const f32; R] =
                std::array::from_fn(|r| a.ptr.add((first + r) * a.row_stride));
            for p in 0..k {
                let w = _mm512_maskz_loadu_ps(mask, b.ptr.add(p * b.row_stride));
                let offset = p * a.col_stride;
                for r in 0..R {
                    let x = _mm512_set1_ps(*a_rows[r].add(offset));
                    acc[r] = _mm512_fmadd_ps(x, w, acc[r]);
                }
            }
            for (r, acc) in acc.into_iter().enumerate() {
                let out = c.ptr.add((first + r) * c.row_stride);
                let v = if let Beta::One = beta {
                    _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, out))
                } else {
                    acc
                };
                _mm512_mask_storeu_ps(out, mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block size and its tails (m from 1 to 37), every width up to sixteen,
    /// row-major and transposed left operands, a right operand with a row stride wider
    /// than its width, overwriting and accumulating: the kernel matches a plain f64
    /// loop (to f32 rounding).
    #[test]
    fn matches_the_plain_loop() {
        if !applies(16, 1) {
            eprintln!("no AVX-512F here: the few-columns kernel is not used, nothing to test");
            return;
        }
        for m in (1..=37).chain([64, 100]) {
            for n in 1..=LANES {
                check(m, 23, n);
            }
        }
    }

    /// Rows of the left operand 4 KiB apart (k = 1024), which the kernel takes four at
    /// a time so that they do not crowd one cache set: the same values as the loop.
    #[test]
    fn crowded_rows_match_the_plain_loop() {
        if !applies(16, 1) {
            return;
        }
        for (m, n) in [(3, 16), (37, 10), (16, 16)] {
            check(m, 1024, n);
        }
    }

    /// One `m x k x n` product, row-major and transposed left operands, three betas.
    fn check(m: usize, k: usize, n: usize) {
        let value = |i: usize| ((i * 37 + 11) % 101) as f32 / 50.0 - 1.0;
        let b_row_stride = n + 3;
        let a_data: Vec<f32> = (0..m * k).map(value).collect();
        let b_data: Vec<f32> = (0..k * b_row_stride).map(|i| value(i + 5)).collect();
        for transposed in [false, true] {
            let (row_stride, col_stride) = if transposed { (1, m) } else { (k, 1) };
            let a = Strided {
                ptr: a_data.as_ptr(),
                row_stride,
                col_stride,
            };
            let b = Strided {
                ptr: b_data.as_ptr(),
                row_stride: b_row_stride,
                col_stride: 1,
            };
            let want: Vec<f64> = (0..m * n)
                .map(|e| {
                    let (i, j) = (e / n, e % n);
                    (0..k)
                        .map(|p| {
                            a_data[i * row_stride + p * col_stride] as f64
                                * b_data[p * b_row_stride + j] as f64
                        })
                        .sum()
                })
                .collect();
            // Output rows n + 1 apart: the element after each row is untouched.
            let c_row_stride = n + 1;
            let mut c = vec![7.0f32; m * c_row_stride];
            let bias: Vec<f32> = (0..n).map(|j| value(j + 9)).collect();
            let betas = [
                (Beta::Zero, 1.0, false),
                (Beta::One, 2.0, false),
                (Beta::Bias(bias.as_ptr()), 1.0, true),
            ];
            for (beta, times, biased) in betas {
                let c_out = Out {
                    ptr: c.as_mut_ptr(),
                    row_stride: c_row_stride,
                };
                let job = Product {
                    m,
                    k,
                    n,
                    a,
                    b,
                    c: c_out,
                    beta,
                };
                // SAFETY: AVX-512F is present; the operands hold every element
                // the dimensions and strides describe.
                unsafe { job.run() };
                for i in 0..m {
                    for j in 0..n {
                        let got = c[i * c_row_stride + j] as f64;
                        let bias = if biased { bias[j] as f64 } else { 0.0 };
                        let want = times * want[i * n + j] + bias;
                        assert!(
                                    (got - want).abs() < 1e-4 * (k as f64 / 23.0).max(1.0),
                                    "m {m} n {n} transposed {transposed} biased {biased}: ({i}, {j}) {got} vs {want}"
                                );
                    }
                    assert_eq!(c[i * c_row_stride + n], 7.0, "wrote past row {i}");
                }
            }
        }
    }
}
