//! Elementwise ops. Unary ops are (f, df) pairs, so one vjp serves them all; binary
//! ops broadcast like NumPy and undo the broadcast in their vjp via `sum_to_shape`.

use super::{want, InputGrads, Op, VjpContext};
use crate::float::{sigmoid, softplus, Float};
use crate::kernels::broadcast::{binary, sum_to_shape};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// An elementwise function of one tensor, possibly with a scalar constant.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UnaryOp<T> {
    Neg,
    Exp,
    Ln,
    Sqrt,
    Square,
    Sigmoid,
    Tanh,
    Relu,
    Abs,
    Softplus,
    Powf(T),
    AddScalar(T),
    MulScalar(T),
    /// `s - x`
    SubFrom(T),
    /// `s / x`
    DivInto(T),
}

impl<T: Float> UnaryOp<T> {
    pub(crate) fn name(&self) -> String {
        match self {
            UnaryOp::Neg => "neg".into(),
            UnaryOp::Exp => "exp".into(),
            UnaryOp::Ln => "ln".into(),
            UnaryOp::Sqrt => "sqrt".into(),
            UnaryOp::Square => "square".into(),
            UnaryOp::Sigmoid => "sigmoid".into(),
            UnaryOp::Tanh => "tanh".into(),
            UnaryOp::Relu => "relu".into(),
            UnaryOp::Abs => "abs".into(),
            UnaryOp::Softplus => "softplus".into(),
            UnaryOp::Powf(p) => format!("powf({p})"),
            UnaryOp::AddScalar(s) => format!("add({s})"),
            UnaryOp::MulScalar(s) => format!("mul({s})"),
            UnaryOp::SubFrom(s) => format!("{s} - x"),
            UnaryOp::DivInto(s) => format!("{s} / x"),
        }
    }

    #[inline(always)]
    fn f(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Ln => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Relu => x.max(T::zero()),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Powf(p) => x.powf(p),
            UnaryOp::AddScalar(s) => x + s,
            UnaryOp::MulScalar(s) => x * s,
            UnaryOp::SubFrom(s) => s - x,
            UnaryOp::DivInto(s) => s / x,
        }
    }

    /// dy/dx at input `x` with output `y = f(x)`.
    #[inline(always)]
    fn df(self, x: T, y: T) -> T {
        let one = T::one();
        let two = one + one;
        match self {
            UnaryOp::Neg => -one,
            UnaryOp::Exp => y,
            UnaryOp::Ln => one / x,
            UnaryOp::Sqrt => one / (two * y),
            UnaryOp::Square => two * x,
            UnaryOp::Sigmoid => y * (one - y), // s (1 - s)
            UnaryOp::Tanh => one - y * y,
            UnaryOp::Relu => {
                if x > T::zero() {
                    one
                } else {
                    T::zero()
                }
            }
            UnaryOp::Abs => {
                if x > T::zero() {
                    one
                } else if x < T::zero() {
                    -one
                } else {
                    T::zero()
                }
            }
            UnaryOp::Softplus => sigmoid(x),
            UnaryOp::Powf(p) => p * x.powf(p - one),
            UnaryOp::AddScalar(_) => one,
            UnaryOp::MulScalar(s) => s,
            UnaryOp::SubFrom(_) => -one,
            UnaryOp::DivInto(_) => -y / x, // d(s/x)/dx = -s/x² = -y/x
        }
    }
}

/// Runs `$body` with `$o` bound to a copy of `$op` in an arm of its own variant, so
/// that after inlining `$o.f` / `$o.df` are straight-line code inside the loop instead
/// of a `match` per element.
macro_rules! per_op {
    ($op:expr, |$o:ident| $body:expr) => {
        match $op {
            UnaryOp::Neg => {
                let $o = UnaryOp::Neg;
                $body
            }
            UnaryOp::Exp => {
                let $o = UnaryOp::Exp;
                $body
            }
            UnaryOp::Ln => {
                let $o = UnaryOp::Ln;
                $body
            }
            UnaryOp::Sqrt => {
                let $o = UnaryOp::Sqrt;
                $body
            }
            UnaryOp::Square => {
                let $o = UnaryOp::Square;
                $body
            }
            UnaryOp::Sigmoid => {
                let $o = UnaryOp::Sigmoid;
                $body
            }
            UnaryOp::Tanh => {
                let $o = UnaryOp::Tanh;
                $body
            }
            UnaryOp::Relu => {
                let $o = UnaryOp::Relu;
                $body
            }
            UnaryOp::Abs => {
                let $o = UnaryOp::Abs;
                $body
            }
            UnaryOp::Softplus => {
                let $o = UnaryOp::Softplus;
                $body
            }
            UnaryOp::Powf(p) => {
                let $o = UnaryOp::Powf(p);
                $body
            }
            UnaryOp::AddScalar(c) => {
                let $o = UnaryOp::AddScalar(c);
                $body
            }
            UnaryOp::MulScalar(c) => {
                let $o = UnaryOp::MulScalar(c);
                $body
            }
            UnaryOp::SubFrom(c) => {
                let $o = UnaryOp::SubFrom(c);
                $body
            }
            UnaryOp::DivInto(c) => {
                let $o = UnaryOp::DivInto(c);
                $body
            }
        }
    };
}

fn unary_forward<T: Float>(op: UnaryOp<T>, x: &Tensor<T>) -> Tensor<T> {
    let data: Vec<T> = per_op!(op, |o| x.data().iter().map(|&v| o.f(v)).collect());
    Tensor::from_vec(data, x.shape())
}

pub(crate) fn unary_vjp<T: Float>(op: UnaryOp<T>, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    let (x, y, g) = (ctx.inputs[0].data(), ctx.output.data(), ctx.grad.data());
    let data: Vec<T> = per_op!(op, |o| x
        .iter()
        .zip(y)
        .zip(g)
        .map(|((&x, &y), &g)| g * o.df(x, y))
        .collect());
    smallvec![Some(Tensor::from_vec(data, ctx.inputs[0].shape()))]
}

/// A broadcasting elementwise function of two tensors.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }

    fn apply<T: Float>(self, a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
        match self {
            BinaryOp::Add => binary("add", a, b, |p, q| p + q),
            BinaryOp::Sub => binary("sub", a, b, |p, q| p - q),
            BinaryOp::Mul => binary("mul", a, b, |p, q| p * q),
            BinaryOp::Div => binary("div", a, b, |p, q| p / q),
        }
    }
}

pub(crate) fn binary_vjp<T: Float>(op: BinaryOp, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    let (a, b, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
    let (ga, gb) = match op {
        BinaryOp::Add => (want(ctx, 0, || g.clone()), want(ctx, 1, || g.clone())),
        BinaryOp::Sub => (want(ctx, 0, || g.clone()), want(ctx, 1, || g.map(|v| -v))),
        BinaryOp::Mul => (
            want(ctx, 0, || binary("mul", g, b, |p, q| p * q)),
            want(ctx, 1, || binary("mul", g, a, |p, q| p * q)),
        ),
        BinaryOp::Div => (
            want(ctx, 0, || binary("div", g, b, |p, q| p / q)),
            // d(a/b)/db = -a/b² = -y/b
            want(ctx, 1, || {
                let gy = binary("mul", g, ctx.output, |p, q| p * q);
                binary("div", &gy, b, |p, q| -p / q)
            }),
        ),
    };
    smallvec![
        ga.map(|t| sum_to_shape(t, a.shape())),
        gb.map(|t| sum_to_shape(t, b.shape()))
    ]
}

impl<'t, T: Float> Var<'t, T> {
    fn unary(self, op: UnaryOp<T>) -> Var<'t, T> {
        self.tape
            .record(&[self], |x, _| (unary_forward(op, x[0]), Op::Unary(op)))
    }

    fn binary(self, other: Var<'t, T>, op: BinaryOp) -> Var<'t, T> {
        self.tape.record(&[self, other], |x, _| {
            (op.apply(x[0], x[1]), Op::Binary(op))
        })
    }

    /// `e^x`
    pub fn exp(self) -> Self {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn ln(self) -> Self {
        self.unary(UnaryOp::Ln)
    }
    /// Square root.
    pub fn sqrt(self) -> Self {
        self.unary(UnaryOp::Sqrt)
    }
    /// `x²`
    pub fn square(self) -> Self {
        self.unary(UnaryOp::Square)
    }
    /// `x^p` for a constant exponent.
    pub fn powf(self, p: T) -> Self {
        self.unary(UnaryOp::Powf(p))
    }
    /// The logistic function `1 / (1 + e^-x)`, stable for large |x|.
    pub fn sigmoid(self) -> Self {
        self.unary(UnaryOp::Sigmoid)
    }
    /// Hyperbolic tangent.
    pub fn tanh(self) -> Self {
        self.unary(UnaryOp::Tanh)
    }
    /// `max(x, 0)`; the derivative at 0 is taken as 0.
    pub fn relu(self) -> Self {
        self.unary(UnaryOp::Relu)
    }
    /// `|x|`; the derivative at 0 is taken as 0.
    pub fn abs(self) -> Self {
        self.unary(UnaryOp::Abs)
    }
    /// `ln(1 + e^x)`, stable for large |x|.
    pub fn softplus(self) -> Self {
        self.unary(UnaryOp::Softplus)
    }
}

impl<'t, T: Float> Add for Var<'t, T> {
    type Output = Var<'t, T>;
    fn add(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Add)
    }
}
impl<'t, T: Float> Sub for Var<'t, T> {
    type Output = Var<'t, T>;
    fn sub(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Sub)
    }
}
impl<'t, T: Float> Mul for Var<'t, T> {
    type Output = Var<'t, T>;
    fn mul(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Mul)
    }
}
impl<'t, T: Float> Div for Var<'t, T> {
    type Output = Var<'t, T>;
    fn div(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Div)
    }
}
impl<'t, T: Float> Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    fn neg(self) -> Self {
        self.unary(UnaryOp::Neg)
    }
}
impl<'t, T: Float> Add<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn add(self, s: T) -> Self {
        self.unary(UnaryOp::AddScalar(s))
    }
}
impl<'t, T: Float> Sub<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn sub(self, s: T) -> Self {
        self.unary(UnaryOp::AddScalar(-s))
    }
}
impl<'t, T: Float> Mul<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn mul(self, s: T) -> Self {
        self.unary(UnaryOp::MulScalar(s))
    }
}
impl<'t, T: Float> Div<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    fn div(self, s: T) -> Self {
        self.unary(UnaryOp::MulScalar(T::one() / s))
    }
}

/// `scalar op Var` for both element types.
macro_rules! scalar_lhs_ops {
    ($($t:ty),*) => {$(
        impl<'t> Add<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn add(self, v: Var<'t, $t>) -> Var<'t, $t> { v.unary(UnaryOp::AddScalar(self)) }
        }
        impl<'t> Sub<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn sub(self, v: Var<'t, $t>) -> Var<'t, $t> { v.unary(UnaryOp::SubFrom(self)) }
        }
        impl<'t> Mul<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn mul(self, v: Var<'t, $t>) -> Var<'t, $t> { v.unary(UnaryOp::MulScalar(self)) }
        }
        impl<'t> Div<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            fn div(self, v: Var<'t, $t>) -> Var<'t, $t> { v.unary(UnaryOp::DivInto(self)) }
        }
    )*};
}
scalar_lhs_ops!(f32, f64);
