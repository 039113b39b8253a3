//! The element types a tensor can hold: `f32` for training, `f64` for gradient checks.
//! The trait is sealed so the kernels can rely on exactly these two types.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

mod private {
    use std::cell::RefCell;
    use std::thread::LocalKey;

    pub trait Sealed: Sized + 'static {
        /// This thread's spare kernel buffers of this type.
        fn scratch() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;

        /// `exp(x)` for `x <= 0` (and NaN), inline and without calls, so that loops
        /// over it vectorise.
        fn exp_nonpositive(self) -> Self;

        /// `exp(x)` for any x, inline for f32 as `exp_nonpositive` (and the same bits
        /// where x <= 0): the `exp` op's and the derivative rules'.
        fn exp_any(self) -> Self;

        /// `erfc(x)`; for f32 inline and without calls, as `exp_nonpositive`.
        fn erfc_(self) -> Self;

        /// `erf(x)`; for f32 inline and without calls, as `exp_nonpositive`.
        fn erf_(self) -> Self;
    }

    thread_local! {
        static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
        static F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
    }

    impl Sealed for f32 {
        fn scratch() -> &'static LocalKey<RefCell<Vec<Vec<f32>>>> {
            &F32
        }

        /// Cephes' `expf`: `x = n ln 2 + r` with |r| <= ln(2)/2 (ln 2 split in two so
        /// `r` is exact), a degree-7 polynomial for `e^r`, then two scalings by `2^(n/2)`
        /// so results down to the subnormals come out right. Within 2 ulp of the
        /// correctly rounded value (tested; 1 seen). libm's `expf` is a call per element,
        /// which keeps loops from vectorising (docs/performance.md, "float:
        /// exp_nonpositive").
        #[inline(always)]
        fn exp_nonpositive(self) -> f32 {
            // Below this, e^x rounds to zero; the select keeps NaN (the compare is false).
            const UNDERFLOW: f32 = -103.972_08;
            let x = if self < UNDERFLOW { UNDERFLOW } else { self };
            // Round to nearest by adding and removing 1.5 * 2^23 (|x log2 e| < 2^22).
            const ROUND: f32 = 12_582_912.0;
            let rounded = x * std::f32::consts::LOG2_E + ROUND;
            let n = rounded - ROUND;
            let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
            let p = 1.987_569_1e-4;
            let p = p * r + 1.398_199_9e-3;
            let p = p * r + 8.333_452e-3;
            let p = p * r + 4.166_579_6e-2;
            let p = p * r + 1.666_666_5e-1;
            let p = p * r + 0.5;
            let y = p * r * r + r + 1.0;
            // n is an integer in [-150, 0]; 2^n as two factors that stay normal. The
            // integer is read off the low bits of `rounded` (whose last place is 1)
            // rather than converted with `as`, whose saturation and NaN checks kept the
            // loop from vectorising. For a NaN input the integer is garbage, but the
            // result is NaN all the same, as `y` is.
            let n = (rounded.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
            let half = n >> 1;
            let scale = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
            let e = y * scale(half) * scale(n - half);
            if self < UNDERFLOW {
                0.0
            } else {
                e
            }
        }

        /// [`Sealed::exp_nonpositive`]'s reduction works up to where `e^x` overflows
        /// (`2^n` is applied as two factors, each normal up to n = 128); past that, inf.
        #[inline(always)]
        fn exp_any(self) -> f32 {
            // ln(f32::MAX): above it e^x is infinite (a NaN fails the compare and stays).
            const OVERFLOW: f32 = 88.722_84;
            let x = if self > OVERFLOW { OVERFLOW } else { self };
            let e = x.exp_nonpositive();
            if self > OVERFLOW {
                f32::INFINITY
            } else {
                e
            }
        }

        /// Numerical Recipes' `erfcc`, a Chebyshev fit with fractional error below
        /// 1.2e-7 for every x: `erfc(a) = t e^(-a² + P(t))`, `t = 1 / (1 + a/2)`, `a = |x|`,
        /// and `erfc(x) = 2 - erfc(-x)` for x < 0. The exponent is taken in two parts,
        /// `e^(-a²)` with `a²` exact (split in halves whose products are exact, not a
        /// fused multiply-add, so that every vector width gives the same bits) and
        /// `e^(P(t) - rounding of a²)`, so that its size does not cost precision. Below
        /// 1/2, `1 - erf(x)` by [`erf_series`] instead (exact to the last place there).
        /// Within 10 ulp of the correctly rounded value where that is normal (tested: the
        /// fit's 1.2e-7 is up to 4 ulp at the bottom of a binade, and past x = 7 the two
        /// exponentials' 2 ulp each add up).
        #[inline(always)]
        fn erfc_(self) -> f32 {
            let a = self.abs();
            let t = 1.0 / (1.0 + 0.5 * a);
            let p = 0.170_872_77;
            let p = p * t - 0.822_152_23;
            let p = p * t + 1.488_515_9;
            let p = p * t - 1.135_204;
            let p = p * t + 0.278_868_07;
            let p = p * t - 0.186_288_06;
            let p = p * t + 0.096_784_18;
            let p = p * t + 0.374_091_96;
            let p = p * t + 1.000_023_7;
            let p = p * t - 1.265_512_2;
            // a² = hi + lo exactly (Veltkamp's split of a into 12-bit halves).
            let c = 4097.0 * a;
            let a_hi = c - (c - a);
            let a_lo = a - a_hi;
            let hi = a * a;
            let lo = ((a_hi * a_hi - hi) + 2.0 * a_hi * a_lo) + a_lo * a_lo;
            // P(0) is 3e-8 above 0: e^that rounds to 1 all the same.
            let rest = p - lo;
            let rest = if rest > 0.0 { 0.0 } else { rest };
            let positive = t * (-hi).exp_nonpositive() * rest.exp_nonpositive();
            // Past 10.06, erfc underflows (and the split of an infinity is NaN).
            let positive = if a > 10.1 { 0.0 } else { positive };
            let positive = if a.is_nan() { self } else { positive };
            let far = if self < 0.0 { 2.0 - positive } else { positive };
            // Near 0, 1 - erf is exact to the last place, the fit is not.
            if a < 0.5 {
                1.0 - erf_series(self)
            } else {
                far
            }
        }

        /// [`erf_series`] below 1/2, where `1 - erfc(x)` would cancel, and
        /// `±(1 - erfc(|x|))` above: within 10 ulp, as `erfc_` (tested).
        #[inline(always)]
        fn erf_(self) -> f32 {
            let large = 1.0 - self.abs().erfc_();
            let large = if self < 0.0 { -large } else { large };
            if self.abs() < 0.5 {
                erf_series(self)
            } else {
                large
            }
        }
    }

    /// erf(x) for |x| < 1/2: its Taylor series through x^13 (the next term is below
    /// 1e-9 relative), keeping relative precision where `1 - erfc(x)` would cancel.
    #[inline(always)]
    fn erf_series(x: f32) -> f32 {
        let x2 = x * x;
        // 2/√π (x - x³/3 + x⁵/10 - x⁷/42 + x⁹/216 - x¹¹/1320 + x¹³/9360)
        let s = 1.0 / 9360.0;
        let s = -1.0 / 1320.0 + x2 * s;
        let s = 1.0 / 216.0 + x2 * s;
        let s = -1.0 / 42.0 + x2 * s;
        let s = 1.0 / 10.0 + x2 * s;
        let s = -1.0 / 3.0 + x2 * s;
        let s = 1.0 + x2 * s;
        std::f32::consts::FRAC_2_SQRT_PI * x * s
    }
    impl Sealed for f64 {
        fn scratch() -> &'static LocalKey<RefCell<Vec<Vec<f64>>>> {
            &F64
        }

        /// libm's: f64 is for gradient checks, where accuracy is all that matters.
        #[inline(always)]
        fn exp_nonpositive(self) -> f64 {
            self.exp()
        }

        /// libm's.
        #[inline(always)]
        fn exp_any(self) -> f64 {
            self.exp()
        }

        /// libm's (see [`super::erf`]).
        #[inline(always)]
        fn erfc_(self) -> f64 {
            libm::erfc(self)
        }

        /// libm's (see [`super::erf`]).
        #[inline(always)]
        fn erf_(self) -> f64 {
            libm::erf(self)
        }
    }
}

/// Spare buffers kept per thread; more than this are dropped.
const SCRATCH_BUFFERS: usize = 4;

/// A buffer of `len` elements from this thread's spares (or a new one). The contents
/// are unspecified: whoever takes it must write every element before reading it.
pub(crate) fn take_scratch<T: Float>(len: usize) -> Vec<T> {
    // The smallest spare that holds `len` elements, else the largest (grown below).
    let mut buf = <T as private::Sealed>::scratch()
        .with(|p| {
            let mut p = p.borrow_mut();
            let fits = (0..p.len())
                .filter(|&i| p[i].capacity() >= len)
                .min_by_key(|&i| p[i].capacity());
            let pick = fits.or_else(|| (0..p.len()).max_by_key(|&i| p[i].capacity()));
            pick.map(|i| p.swap_remove(i))
        })
        .unwrap_or_default();
    // Whatever the buffer held stays; only growth is filled.
    buf.resize(len, T::zero());
    buf
}

/// Hands a buffer back to this thread's spares (dropped if there are enough already).
pub(crate) fn give_scratch<T: Float>(buf: Vec<T>) {
    <T as private::Sealed>::scratch().with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < SCRATCH_BUFFERS {
            p.push(buf);
        }
    });
}

/// Runs `work` on a buffer of `len` elements borrowed from this thread's spares, so
/// kernels that need a large temporary (im2col columns, gathered gradients) neither
/// allocate nor zero it on every call. The contents are unspecified: `work` must write
/// every element before reading it.
pub(crate) fn with_scratch<T: Float, R>(len: usize, work: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = take_scratch(len);
    let out = work(&mut buf);
    give_scratch(buf);
    out
}

/// A scratch buffer that outlives one kernel (im2col columns kept from the forward pass
/// for the backward one) and goes back to the spares of the thread that drops it.
pub(crate) struct Recycled<T: Float>(pub Vec<T>);

impl<T: Float> Drop for Recycled<T> {
    fn drop(&mut self) {
        give_scratch(std::mem::take(&mut self.0));
    }
}

impl<T: Float> std::fmt::Debug for Recycled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recycled({} elements)", self.0.len())
    }
}

/// A floating-point element type: implemented for `f32` and `f64` only.
pub trait Float:
    private::Sealed
    + num_traits::Float
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// The type's name as it appears in messages and checkpoints ("f32" or "f64").
    const NAME: &'static str;

    /// Converts from `f64`, rounding to the nearest representable value.
    fn from_f64(x: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// Converts from a count or an index.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    fn from_f64(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
}

/// `exp(x)` for `x <= 0` (or NaN), inline: for f32 our own polynomial (within 2 ulp),
/// which vectorises and costs a fraction of a libm call; for f64 libm's.
#[inline(always)]
pub(crate) fn exp_nonpositive<T: Float>(x: T) -> T {
    private::Sealed::exp_nonpositive(x)
}

/// `e^x`: for f32 inline (vectorising, within 2 ulp, [`exp_nonpositive`]'s bits where
/// x <= 0); for f64 libm's. What the `exp` op computes and the derivative rules use, so
/// that a rule computed on elements and the same rule recorded as ops agree bit for bit.
#[inline(always)]
pub(crate) fn exp<T: Float>(x: T) -> T {
    private::Sealed::exp_any(x)
}

/// Numerically stable logistic function: never evaluates `exp` of a large positive number.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    // e = exp(-|x|) <= 1 never overflows; 1/(1+e) for x >= 0 and e/(1+e) below keep full
    // relative precision on both sides. The two are blended arithmetically (exactly: one
    // weight is 1, the other 0) rather than chosen by a branch, which on a layer's mix
    // of signs mispredicted about half the time.
    let e = private::Sealed::exp_nonpositive(-x.abs());
    let t = T::one() / (T::one() + e);
    let pos = if x >= T::zero() { T::one() } else { T::zero() };
    t * pos + e * t * (T::one() - pos)
}

/// Numerically stable softplus `ln(1 + e^x)`: `max(x, 0) + ln(1 + e^-|x|)`.
#[inline]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// The error function `erf(x) = 2/√π ∫₀ˣ e^(-t²) dt`: in f64 within 1 ulp (`libm`'s,
/// musl's port of FreeBSD's `s_erf.c`: std's `f64::erf` is not stable yet); in f32
/// within 10 ulp (about 1e-6 relative), computed inline so that a loop over it (GELU's)
/// runs in vectors.
#[inline(always)]
pub fn erf<T: Float>(x: T) -> T {
    private::Sealed::erf_(x)
}

/// `erfc(x) = 1 - erf(x)`, without the cancellation for large `x` (`erfc(10)` is
/// 2.1e-45, where `1 - erf(10)` is 0); accurate as [`erf`].
#[inline(always)]
pub fn erfc<T: Float>(x: T) -> T {
    private::Sealed::erfc_(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 erf and erfc against libm's f64 rounded to f32: within 10 ulp wherever the
    /// result is normal (9 seen, past x = 7, where the two exponentials' errors add up;
    /// 2 ulp below 1/2), 0 and 2 at the ends, NaN kept.
    #[test]
    fn f32_erf_and_erfc_are_within_ten_ulp() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let (mut worst_erfc, mut worst_erf) = (0, 0);
        for i in -2_000_000..=2_000_000 {
            let x = i as f32 * 5.5e-6; // -11 to 11
            let want = libm::erfc(x as f64) as f32;
            let got = erfc(x);
            if want >= f32::MIN_POSITIVE {
                worst_erfc = worst_erfc.max(ulps(got, want));
            } else {
                assert!((got - want).abs() <= 1e-38, "erfc({x}): {got} vs {want}");
            }
            let want = libm::erf(x as f64) as f32;
            if want.abs() >= f32::MIN_POSITIVE {
                worst_erf = worst_erf.max(ulps(erf(x), want));
            }
        }
        assert!(worst_erfc <= 10, "erfc: {worst_erfc} ulp");
        assert!(worst_erf <= 10, "erf: {worst_erf} ulp");
        // Tiny arguments, where erf is 2x/√π: the series keeps relative precision.
        for x in [1e-30f32, -3e-12, 1e-6, 2.5e-3] {
            assert!(ulps(erf(x), libm::erf(x as f64) as f32) <= 2, "erf({x})");
        }
        assert_eq!((erfc(f32::INFINITY), erfc(f32::NEG_INFINITY)), (0.0, 2.0));
        assert_eq!((erf(f32::INFINITY), erf(f32::NEG_INFINITY)), (1.0, -1.0));
        assert!(erfc(f32::NAN).is_nan() && erf(f32::NAN).is_nan());
    }

    /// The f32 exponential against f64's, rounded: at most 2 ulp off for normal
    /// results, exact zero below the underflow, and NaN, -0 and -inf handled.
    #[test]
    fn f32_exp_is_within_two_ulp() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        let mut worst = 0;
        for i in 0..=2_000_000 {
            let x = -(i as f32) * 5.3e-5; // 0 down to -106
            let got = private::Sealed::exp_nonpositive(x);
            let want = (x as f64).exp() as f32;
            if want >= f32::MIN_POSITIVE {
                worst = worst.max(ulps(got, want));
            } else {
                // Subnormal results: absolute error within a few subnormal steps.
                assert!(
                    (got - want).abs() <= 4.0 * f32::from_bits(1),
                    "{x}: {got} vs {want}"
                );
            }
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        // Above 0, up to the overflow, the same reduction.
        let mut worst = 0;
        for i in 0..=2_000_000 {
            let x = i as f32 * 4.436e-5; // 0 up to 88.72
            worst = worst.max(ulps(exp(x), (x as f64).exp() as f32));
        }
        assert!(worst <= 2, "worst error above 0: {worst} ulp");
        for x in [-3.5f32, -1e-3, -0.0, -87.0] {
            assert_eq!(
                exp(x).to_bits(),
                private::Sealed::exp_nonpositive(x).to_bits()
            );
        }
        assert_eq!(
            (exp(88.8f32), exp(f32::INFINITY)),
            (f32::INFINITY, f32::INFINITY)
        );
        assert!(exp(88.72f32).is_finite() && exp(f32::NAN).is_nan());
        assert_eq!(private::Sealed::exp_nonpositive(0.0f32), 1.0);
        assert_eq!(private::Sealed::exp_nonpositive(-0.0f32), 1.0);
        assert_eq!(private::Sealed::exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(private::Sealed::exp_nonpositive(-200.0f32), 0.0);
        assert!(private::Sealed::exp_nonpositive(f32::NAN).is_nan());
        assert!(sigmoid(f32::NAN).is_nan());
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn sigmoid_keeps_relative_precision_on_both_sides() {
        // Against 1/(1+exp(-x)) in f64, which is exact enough for f32 everywhere and
        // for f64 where exp(-x) does not overflow.
        for i in -2000..=2000 {
            let x = i as f64 * 0.05;
            let want = 1.0 / (1.0 + (-x).exp());
            let got = sigmoid(x);
            assert!(
                (got - want).abs() <= 4.0 * f64::EPSILON * want,
                "f64 at {x}: {got} vs {want}"
            );
            // f32 keeps relative precision down to where exp(x) turns subnormal (x < -87).
            let got32 = sigmoid(x as f32) as f64;
            let want32 = 1.0 / (1.0 + (-(x as f32 as f64)).exp());
            let tol = 4.0 * f32::EPSILON as f64 * want32 + if x < -87.0 { 1e-44 } else { 0.0 };
            assert!(
                (got32 - want32).abs() <= tol,
                "f32 at {x}: {got32} vs {want32}"
            );
        }
        // Far tails: tiny but not flushed to zero, and exactly 1 on the other side.
        assert!((sigmoid(-700.0f64) / (-700.0f64).exp() - 1.0).abs() < 1e-12);
        assert_eq!(sigmoid(1e4f32), 1.0);
        assert_eq!(sigmoid(-1e4f32), 0.0);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    /// Against values to 20 digits (mpmath at 30 digits, at the f64 nearest each
    /// argument): erf to 2 ulp, erfc's relative error likewise far out in its tail.
    #[allow(clippy::excessive_precision)] // the digits as tabulated
    #[test]
    fn erf_and_erfc_match_tabulated_values() {
        let table: [(f64, f64, f64); 7] = [
            (
                0.1,
                0.112_462_916_018_284_898_4,
                0.887_537_083_981_715_101_6,
            ),
            (
                0.5,
                0.520_499_877_813_046_537_7,
                0.479_500_122_186_953_462_3,
            ),
            (
                1.0,
                0.842_700_792_949_714_869_3,
                0.157_299_207_050_285_130_7,
            ),
            (
                1.5,
                0.966_105_146_475_310_727_1,
                0.033_894_853_524_689_272_93,
            ),
            (
                2.0,
                0.995_322_265_018_952_734_2,
                0.004_677_734_981_047_265_838,
            ),
            (
                3.0,
                0.999_977_909_503_001_414_6,
                2.209_049_699_858_544_137e-5,
            ),
            (
                5.0,
                0.999_999_999_998_462_540_2,
                1.537_459_794_428_034_850e-12,
            ),
        ];
        for (x, e, c) in table {
            assert!((erf(x) - e).abs() <= 2.0 * f64::EPSILON * e, "erf({x})");
            assert!((erf(-x) + e).abs() <= 2.0 * f64::EPSILON * e, "erf(-{x})");
            assert!((erfc(x) - c).abs() <= 4.0 * f64::EPSILON * c, "erfc({x})");
            assert!(
                (erfc(-x) - (2.0 - c)).abs() <= 4.0 * f64::EPSILON,
                "erfc(-{x})"
            );
            assert!((erf(x as f32) as f64 - e).abs() <= f32::EPSILON as f64 * e);
        }
        // erfc(10) = 2.088487583762544757e-45: far below erf's last place.
        assert!((erfc(10.0f64) / 2.088_487_583_762_544_757e-45 - 1.0).abs() < 1e-14);
        assert_eq!((erf(0.0f64), erf(40.0f64), erf(-40.0f64)), (0.0, 1.0, -1.0));
        assert!(erf(f64::NAN).is_nan());
    }
}
