//! The language the elementwise derivative rules are written in.
//!
//! A rule such as "the gradient of `sqrt` is `g / (2 y)`" is written once, generic over
//! [`Real`], and then means four things:
//!
//! - on `f32`/`f64` elements it is the fast first-order loop of [`crate::Var::backward`]
//!   (the kernels call it per element, inlined);
//! - on the tensor tape's [`crate::Var`] it records the same arithmetic as ops, so the
//!   gradient is itself differentiable ([`crate::Var::grad`]);
//! - on the scalar tape's [`crate::scalar::Var`] it does the same for scalars;
//! - on `f64` with `g = 1` it is the scalar tape's numeric partial derivative.
//!
//! Forward mode reuses the same rules: for an elementwise op the tangent `t f'(x)` is
//! the rule applied to `t` in place of `g`.

use crate::float::{erf, exp, sigmoid, Float};
use crate::tape::Var;
use crate::tensor::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// What a derivative rule may use: arithmetic, the elementary functions, constants of
/// the element type `T`, and the two piecewise-constant factors (a sign, a gate) whose
/// own derivative is zero wherever it exists.
pub trait Real<T: Float>:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// `self * c`
    fn mul_c(self, c: T) -> Self;
    /// `self + c`
    fn add_c(self, c: T) -> Self;
    /// `c - self`
    fn c_sub(self, c: T) -> Self;
    /// `c / self`
    fn c_div(self, c: T) -> Self;
    /// sine
    fn sin_(self) -> Self;
    /// cosine
    fn cos_(self) -> Self;
    /// `self^p`
    fn powf_(self, p: T) -> Self;
    /// `self^n`
    fn powi_(self, n: i32) -> Self;
    /// the logistic function
    fn sigmoid_(self) -> Self;
    /// `e^self`
    fn exp_(self) -> Self;
    /// the error function
    fn erf_(self) -> Self;
    /// `self * sign(x)` (sign 0 at 0): the sign is a constant, not differentiated.
    fn times_sign_of(self, x: Self) -> Self;
    /// `self` where `y > 0`, else 0: on elements and tensors a choice, so that a NaN in
    /// `self` does not leak through a closed gate (NaN * 0 would be NaN); the scalar
    /// tape multiplies by 1 or 0, as its `backward` always has.
    fn where_positive(self, y: Self) -> Self;
}

impl<T: Float> Real<T> for T {
    #[inline(always)]
    fn mul_c(self, c: T) -> T {
        self * c
    }
    #[inline(always)]
    fn add_c(self, c: T) -> T {
        self + c
    }
    #[inline(always)]
    fn c_sub(self, c: T) -> T {
        c - self
    }
    #[inline(always)]
    fn c_div(self, c: T) -> T {
        c / self
    }
    #[inline(always)]
    fn sin_(self) -> T {
        self.sin()
    }
    #[inline(always)]
    fn cos_(self) -> T {
        self.cos()
    }
    #[inline(always)]
    fn powf_(self, p: T) -> T {
        self.powf(p)
    }
    #[inline(always)]
    fn powi_(self, n: i32) -> T {
        self.powi(n)
    }
    #[inline(always)]
    fn sigmoid_(self) -> T {
        sigmoid(self)
    }
    #[inline(always)]
    fn exp_(self) -> T {
        exp(self)
    }
    #[inline(always)]
    fn erf_(self) -> T {
        erf(self)
    }
    #[inline(always)]
    fn times_sign_of(self, x: T) -> T {
        self * sign(x)
    }
    #[inline(always)]
    fn where_positive(self, y: T) -> T {
        if y > T::zero() {
            self
        } else {
            T::zero()
        }
    }
}

/// 1, -1 or 0.
#[inline(always)]
fn sign<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

impl<'t, T: Float> Real<T> for Var<'t, T> {
    fn mul_c(self, c: T) -> Self {
        self * c
    }
    fn add_c(self, c: T) -> Self {
        self + c
    }
    fn c_sub(self, c: T) -> Self {
        self.unary(super::UnaryOp::SubFrom(c))
    }
    fn c_div(self, c: T) -> Self {
        self.unary(super::UnaryOp::DivInto(c))
    }
    fn sin_(self) -> Self {
        self.sin()
    }
    fn cos_(self) -> Self {
        self.cos()
    }
    fn powf_(self, p: T) -> Self {
        self.powf(p)
    }
    fn powi_(self, n: i32) -> Self {
        self.powi(n)
    }
    fn sigmoid_(self) -> Self {
        self.sigmoid()
    }
    fn exp_(self) -> Self {
        self.exp()
    }
    fn erf_(self) -> Self {
        self.erf()
    }
    fn times_sign_of(self, x: Self) -> Self {
        let signs: Tensor<T> = x.with_value(|v| v.map(sign));
        self * self.tape.constant(signs)
    }
    fn where_positive(self, y: Self) -> Self {
        let gate: Vec<bool> = y.with_value(|v| v.data().iter().map(|&e| e > T::zero()).collect());
        self.gated(gate.into())
    }
}
