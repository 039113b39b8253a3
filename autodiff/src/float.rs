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
    }

    thread_local! {
        static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
        static F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
    }

    impl Sealed for f32 {
        fn scratch() -> &'static LocalKey<RefCell<Vec<Vec<f32>>>> {
            &F32
        }
    }
    impl Sealed for f64 {
        fn scratch() -> &'static LocalKey<RefCell<Vec<Vec<f64>>>> {
            &F64
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

/// Numerically stable logistic function: never evaluates `exp` of a large positive number.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    // e = exp(-|x|) <= 1 never overflows; 1/(1+e) for x >= 0 and e/(1+e) below keep full
    // relative precision on both sides. The two are blended arithmetically (exactly: one
    // weight is 1, the other 0) rather than chosen by a branch, which on a layer's mix
    // of signs mispredicted about half the time.
    let e = (-x.abs()).exp();
    let t = T::one() / (T::one() + e);
    let pos = if x >= T::zero() { T::one() } else { T::zero() };
    t * pos + e * t * (T::one() - pos)
}

/// Numerically stable softplus `ln(1 + e^x)`: `max(x, 0) + ln(1 + e^-|x|)`.
#[inline]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
