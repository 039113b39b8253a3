//! The element types a tensor can hold: `f32` for training, `f64` for gradient checks.
//! The trait is sealed so the kernels can rely on exactly these two types.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
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
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// Numerically stable softplus `ln(1 + e^x)`: `max(x, 0) + ln(1 + e^-|x|)`.
#[inline]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}
