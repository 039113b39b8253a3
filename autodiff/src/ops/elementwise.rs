//! Elementwise ops. Unary ops are (f, df) pairs, so one vjp serves them all; binary
//! ops broadcast like NumPy and undo the broadcast in their vjp via `sum_to_shape`.
//! The loops themselves are in `kernels/elementwise.rs`.

use super::activation::{per_activation, Activation};
use super::rules::Real;
use super::{want, BatchView, InputGrads, Rule};
use super::{VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::{erf, erfc, softplus, Float};
use crate::kernels::elementwise::{self, ElementFn};
use crate::shape::broadcast_shapes;
use crate::tape::Var;
use crate::tensor::{binary, sum_to_shape, Tensor};
use smallvec::smallvec;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// An elementwise function of one tensor, possibly with a scalar constant.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UnaryOp<T> {
    Neg,
    Exp,
    Ln,
    Sqrt,
    Square,
    /// An activation: its derivative comes from its output (`ops/activation.rs`).
    Activation(Activation),
    Abs,
    Softplus,
    /// `ln σ(x) = -softplus(-x)`
    LogSigmoid,
    /// The error function.
    Erf,
    /// GELU, `x Φ(x)`: PyTorch's `approximate='none'`.
    Gelu,
    /// GELU's tanh form: PyTorch's `approximate='tanh'`.
    GeluTanh,
    Powf(T),
    Sin,
    Cos,
    Powi(i32),
    AddScalar(T),
    MulScalar(T),
    /// `s - x`
    SubFrom(T),
    /// `s / x`
    DivInto(T),
}

impl<C> UnaryOp<C> {
    /// The same op with its constant, if it has one, mapped by `f` (the scalar tape keeps
    /// the constant apart from the op).
    #[inline(always)]
    pub(crate) fn map_const<D>(self, f: impl FnOnce(C) -> D) -> UnaryOp<D> {
        use UnaryOp as U;
        match self {
            U::Neg => U::Neg,
            U::Exp => U::Exp,
            U::Ln => U::Ln,
            U::Sqrt => U::Sqrt,
            U::Square => U::Square,
            U::Activation(a) => U::Activation(a),
            U::Abs => U::Abs,
            U::Softplus => U::Softplus,
            U::LogSigmoid => U::LogSigmoid,
            U::Erf => U::Erf,
            U::Gelu => U::Gelu,
            U::GeluTanh => U::GeluTanh,
            U::Powf(p) => U::Powf(f(p)),
            U::Sin => U::Sin,
            U::Cos => U::Cos,
            U::Powi(n) => U::Powi(n),
            U::AddScalar(c) => U::AddScalar(f(c)),
            U::MulScalar(c) => U::MulScalar(f(c)),
            U::SubFrom(c) => U::SubFrom(f(c)),
            U::DivInto(c) => U::DivInto(f(c)),
        }
    }
}

impl<T: Float> UnaryOp<T> {
    #[inline(always)]
    pub(crate) fn f(self, x: T) -> T {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => crate::float::exp(x),
            UnaryOp::Ln => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Activation(a) => a.f(x),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::LogSigmoid => -softplus(-x),
            UnaryOp::Erf => erf(x),
            // Φ(x) = erfc(-x/√2)/2: no 1 + erf(x/√2) cancellation for x << 0.
            UnaryOp::Gelu => x * erfc(-x * T::from_f64(FRAC_1_SQRT_2)) * T::from_f64(0.5),
            UnaryOp::GeluTanh => x * gelu_tanh_gate::<T, T>(x),
            UnaryOp::Powf(p) => x.powf(p),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Powi(n) => x.powi(n),
            UnaryOp::AddScalar(s) => x + s,
            UnaryOp::MulScalar(s) => x * s,
            UnaryOp::SubFrom(s) => s - x,
            UnaryOp::DivInto(s) => s / x,
        }
    }

    /// dy/dx at input `x` with output `y = f(x)`: the rule with `g = 1`.
    #[inline(always)]
    pub(crate) fn df(self, x: T, y: T) -> T {
        self.vjp_rule(x, y, T::one())
    }

    /// The one definition of each op's derivative: the input's gradient `g f'(x)`, with
    /// the output `y = f(x)` where that is cheaper, in the rule language of
    /// `ops/rules.rs`. Per element it is `backward`'s loop; on tape values it records
    /// the same arithmetic as ops, so the gradient can be differentiated again; with
    /// the tangent in place of `g` it is forward mode's tangent rule.
    ///
    /// `abs` has the second derivative zero wherever it exists (its sign is a constant),
    /// like the ReLU's gate.
    #[inline(always)]
    pub(crate) fn vjp_rule<N: Real<T>>(self, x: N, y: N, g: N) -> N {
        let one = T::one();
        let two = one + one;
        match self {
            UnaryOp::Neg => -g,
            UnaryOp::Exp => g * y,
            UnaryOp::Ln => g * x.c_div(one),
            UnaryOp::Sqrt => g * y.mul_c(two).c_div(one), // 1 / (2 sqrt x)
            UnaryOp::Square => g * x.mul_c(two),
            UnaryOp::Activation(a) => a.vjp_rule(y, g),
            UnaryOp::Abs => g.times_sign_of(x),
            UnaryOp::Softplus => g * x.sigmoid_(),
            UnaryOp::LogSigmoid => g * (-x).sigmoid_(), // σ(-x): no 1 - σ(x) cancellation
            UnaryOp::Erf => g * (-(x * x)).exp_().mul_c(T::from_f64(FRAC_2_SQRT_PI)),
            // d/dx x Φ(x) = Φ(x) + x φ(x), φ(x) = e^(-x²/2) / √(2π)
            UnaryOp::Gelu => {
                let half = T::from_f64(0.5);
                let cdf = x
                    .mul_c(T::from_f64(FRAC_1_SQRT_2))
                    .erf_()
                    .mul_c(half)
                    .add_c(half);
                let pdf = (x * x)
                    .mul_c(-half)
                    .exp_()
                    .mul_c(T::from_f64(FRAC_1_SQRT_2PI));
                g * (cdf + x * pdf)
            }
            // x s with s = σ(2u), u = √(2/π) (x + c x³): s + x s (1 - s) 2u'
            UnaryOp::GeluTanh => {
                let s = gelu_tanh_gate::<T, N>(x);
                let du = (x * x).mul_c(T::from_f64(3.0 * GELU_CUBIC * SQRT_8_OVER_PI));
                let du = du.add_c(T::from_f64(SQRT_8_OVER_PI));
                g * (s + x * (s * s.c_sub(one)) * du)
            }
            UnaryOp::Powf(p) => g * x.powf_(p - one).mul_c(p),
            UnaryOp::Sin => g * x.cos_(),
            UnaryOp::Cos => g * -x.sin_(),
            // n x^(n-1); x^0 is constant, so its derivative is 0 even at x = 0.
            UnaryOp::Powi(0) => g.mul_c(T::zero()),
            UnaryOp::Powi(n) => g * x.powi_(n - 1).mul_c(T::from_f64(f64::from(n))),
            UnaryOp::AddScalar(_) => g,
            UnaryOp::MulScalar(s) => g.mul_c(s),
            UnaryOp::SubFrom(_) => -g,
            UnaryOp::DivInto(_) => g * (-y / x), // d(s/x)/dx = -s/x² = -y/x
        }
    }
}

impl<T: Float> ElementFn<T> for UnaryOp<T> {
    #[inline(always)]
    fn f(self, x: T) -> T {
        UnaryOp::f(self, x)
    }

    #[inline(always)]
    fn vjp(self, x: T, y: T, g: T) -> T {
        self.vjp_rule(x, y, g)
    }

    #[inline(always)]
    fn per_variant<R>(self, body: impl FnOnce(Self) -> R) -> R {
        match self {
            UnaryOp::Neg => body(UnaryOp::Neg),
            UnaryOp::Exp => body(UnaryOp::Exp),
            UnaryOp::Ln => body(UnaryOp::Ln),
            UnaryOp::Sqrt => body(UnaryOp::Sqrt),
            UnaryOp::Square => body(UnaryOp::Square),
            UnaryOp::Activation(act) => per_activation!(act, |a| body(UnaryOp::Activation(a))),
            UnaryOp::Abs => body(UnaryOp::Abs),
            UnaryOp::Softplus => body(UnaryOp::Softplus),
            UnaryOp::LogSigmoid => body(UnaryOp::LogSigmoid),
            UnaryOp::Erf => body(UnaryOp::Erf),
            UnaryOp::Gelu => body(UnaryOp::Gelu),
            UnaryOp::GeluTanh => body(UnaryOp::GeluTanh),
            UnaryOp::Powf(p) => body(UnaryOp::Powf(p)),
            UnaryOp::Sin => body(UnaryOp::Sin),
            UnaryOp::Cos => body(UnaryOp::Cos),
            UnaryOp::Powi(n) => body(UnaryOp::Powi(n)),
            UnaryOp::AddScalar(c) => body(UnaryOp::AddScalar(c)),
            UnaryOp::MulScalar(c) => body(UnaryOp::MulScalar(c)),
            UnaryOp::SubFrom(c) => body(UnaryOp::SubFrom(c)),
            UnaryOp::DivInto(c) => body(UnaryOp::DivInto(c)),
        }
    }
}

/// `1/√(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
/// `2 √(2/π)`: GELU's tanh form is `x σ(2u)`, `2u = √(8/π) (x + c x³)`.
const SQRT_8_OVER_PI: f64 = 2.0 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2;
/// The cubic term's coefficient `c` in GELU's tanh form (Hendrycks & Gimpel).
const GELU_CUBIC: f64 = 0.044715;

/// `(1 + tanh u) / 2 = σ(2u)`, `u = √(2/π) (x + 0.044715 x³)`: GELU's tanh form is `x`
/// times this, in the rule language so that its value and its derivative share it.
#[inline(always)]
fn gelu_tanh_gate<T: Float, N: Real<T>>(x: N) -> N {
    let cubic = x * x * x.mul_c(T::from_f64(GELU_CUBIC));
    (x + cubic).mul_c(T::from_f64(SQRT_8_OVER_PI)).sigmoid_()
}

pub(crate) fn unary_forward<T: Float>(op: UnaryOp<T>, x: &Tensor<T>) -> Tensor<T> {
    Tensor::from_vec(elementwise::unary(op, x.data(), x.shape()), x.shape())
}

impl<T: Float> Rule<T> for UnaryOp<T> {
    fn name(&self) -> String {
        match self {
            UnaryOp::Neg => "neg".into(),
            UnaryOp::Exp => "exp".into(),
            UnaryOp::Ln => "ln".into(),
            UnaryOp::Sqrt => "sqrt".into(),
            UnaryOp::Square => "square".into(),
            UnaryOp::Activation(a) => a.name().into(),
            UnaryOp::Abs => "abs".into(),
            UnaryOp::Softplus => "softplus".into(),
            UnaryOp::LogSigmoid => "log_sigmoid".into(),
            UnaryOp::Erf => "erf".into(),
            UnaryOp::Gelu => "gelu".into(),
            UnaryOp::GeluTanh => "gelu_tanh".into(),
            UnaryOp::Powf(p) => format!("powf({p})"),
            UnaryOp::Sin => "sin".into(),
            UnaryOp::Cos => "cos".into(),
            UnaryOp::Powi(n) => format!("powi({n})"),
            UnaryOp::AddScalar(s) => format!("add({s})"),
            UnaryOp::MulScalar(s) => format!("mul({s})"),
            UnaryOp::SubFrom(s) => format!("{s} - x"),
            UnaryOp::DivInto(s) => format!("{s} / x"),
        }
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (x, y, g) = (ctx.inputs[0].data(), ctx.output.data(), ctx.grad.data());
        let shape = ctx.inputs[0].shape();
        let data = elementwise::unary_vjp(*self, x, y, g, shape);
        smallvec![Some(Tensor::from_vec(data, shape))]
    }
    /// The recorded vjp: the op's rule on tape values.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(self.vjp_rule(ctx.inputs[0], ctx.output, ctx.grad))]
    }
    /// The tangent `t f'(x)`: the same rule with the tangent in place of the adjoint.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(self.vjp_rule(ctx.inputs[0], ctx.output, t))
    }
    /// Row `i` of the output is `f` of row `i` alone.
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        true
    }
}

/// `values[i] = act(values[i])` in place: a linear layer's fused activation, applied by
/// the thread that computed each piece (the same arithmetic as the unfused op).
pub(crate) fn activate_in_place<T: Float>(act: Activation, values: &mut [T]) {
    #[inline(always)]
    fn each<T: Copy>(values: &mut [T], f: impl Fn(T) -> T) {
        for v in values {
            *v = f(*v);
        }
    }
    crate::kernels::simd::wide(
        #[inline(always)]
        || per_activation!(act, |a| each(values, |v| a.f(v))),
    )
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

    /// The one definition of each binary op's derivative: the gradient of input `side`
    /// (0 or 1) as `g ∂y/∂input` at `a op b = y`, before any broadcast is undone, in the
    /// rule language of `ops/rules.rs`. `backward`'s kernels compute exactly this
    /// arithmetic (tested bit for bit against the recorded rule); with a tangent in place
    /// of `g` it is that side's part of the tangent.
    #[inline(always)]
    pub(crate) fn vjp_rule<T: Float, N: Real<T>>(self, side: usize, a: N, b: N, y: N, g: N) -> N {
        match (self, side) {
            (BinaryOp::Add, _) | (BinaryOp::Sub, 0) => g,
            (BinaryOp::Sub, _) => -g,
            (BinaryOp::Mul, 0) => g * b,
            (BinaryOp::Mul, _) => g * a,
            (BinaryOp::Div, 0) => g / b,
            (BinaryOp::Div, _) => -(g * y) / b, // d(a/b)/db = -a/b² = -y/b
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

impl<T: Float> Rule<T> for BinaryOp {
    fn name(&self) -> String {
        BinaryOp::name(self).into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (a, b, g) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let (ga, gb) = match self {
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
    /// The recorded vjp: each side's rule, with the broadcast undone by a sum.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let (a, b) = (ctx.inputs[0], ctx.inputs[1]);
        let side = |k: usize| {
            ctx.wants[k].then(|| {
                let g = self.vjp_rule(k, a, b, ctx.output, ctx.grad);
                g.sum_to(&ctx.inputs[k].shape())
            })
        };
        smallvec![side(0), side(1)]
    }
    /// The tangent: the sum of each side's rule applied to that side's tangent.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (a, b, y) = (ctx.inputs[0], ctx.inputs[1], ctx.output);
        let ta = ctx.tangents[0].map(|t| self.vjp_rule(0, a, b, y, t));
        let tb = ctx.tangents[1].map(|t| self.vjp_rule(1, a, b, y, t));
        let t = super::add_tangents(ta, tb)?;
        let shape = y.shape();
        Some(if t.shape() == shape {
            t
        } else {
            t.broadcast_to(&shape)
        })
    }
    /// A shared operand must be broadcast over the examples, unless it is data with a
    /// row per example (a target built inside `f` from the batch's labels, say): without
    /// a gradient, its row `i` can only be read by example `i` here.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        let out = batch.output;
        batch.inputs.iter().all(|p| {
            let (s, data) = (p.shape, !p.depends);
            p.rows || s.len() < out.len() || s[0] == 1 || (data && s.len() == out.len())
        })
    }
    fn has_per_example(&self, _: usize, _: &BatchView<'_>) -> bool {
        true
    }
    /// Input `k`, shared by the examples: its element-wise rule at every output element,
    /// summed per example over the axes it is broadcast along.
    fn per_example(&self, k: usize, ctx: &VjpContext<'_, T>, n: usize) -> Vec<T> {
        let (inputs, out, g) = (ctx.inputs, ctx.output, ctx.grad);
        let dims = out.shape();
        let rank = dims.len();
        // Each input's stride along each output axis (0 where it is broadcast).
        let strides = |s: &[usize]| -> Vec<usize> {
            let mut st = vec![0; rank];
            let mut acc = 1;
            for (a, &d) in s.iter().enumerate().rev() {
                let axis = rank - s.len() + a;
                st[axis] = if d == 1 { 0 } else { acc };
                acc *= d;
            }
            st
        };
        let (sa, sb) = (strides(inputs[0].shape()), strides(inputs[1].shape()));
        let shared_len = inputs[k].numel();
        let mut result = vec![T::zero(); n * shared_len];
        let per_example = out.numel() / n;
        let mut index = vec![0usize; rank];
        let (ad, bd, yd, gd) = (inputs[0].data(), inputs[1].data(), out.data(), g.data());
        for j in 0..out.numel() {
            let ia: usize = index.iter().zip(&sa).map(|(i, s)| i * s).sum();
            let ib: usize = index.iter().zip(&sb).map(|(i, s)| i * s).sum();
            let d = self.vjp_rule(k, ad[ia], bd[ib], yd[j], gd[j]);
            let own = if k == 0 { ia } else { ib };
            result[(j / per_example) * shared_len + own] += d;
            for axis in (0..rank).rev() {
                index[axis] += 1;
                if index[axis] < dims[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        result
    }
}

impl<'t, T: Float> Var<'t, T> {
    pub(crate) fn unary(self, op: UnaryOp<T>) -> Var<'t, T> {
        self.tape
            .record(&[self], |x, _| (unary_forward(op, x[0]), op))
    }

    /// Records `self op other`, first checking (at the caller's line) that the
    /// operands share a tape and that their shapes broadcast.
    #[track_caller]
    fn binary(self, other: Var<'t, T>, op: BinaryOp) -> Var<'t, T> {
        self.tape.check_owns(other);
        let (a, b) = (self.shape(), other.shape());
        if a != b {
            if let Err(e) = broadcast_shapes(op.name(), &a, &b) {
                panic!("{e}");
            }
        }
        self.tape
            .record(&[self, other], |x, _| (op.apply(x[0], x[1]), op))
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
    /// Sine.
    pub fn sin(self) -> Self {
        self.unary(UnaryOp::Sin)
    }
    /// Cosine.
    pub fn cos(self) -> Self {
        self.unary(UnaryOp::Cos)
    }
    /// `x^n` for an integer power, as the scalar tape's `powi`.
    pub fn powi(self, n: i32) -> Self {
        self.unary(UnaryOp::Powi(n))
    }
    /// `|x|`; the derivative at 0 is taken as 0.
    pub fn abs(self) -> Self {
        self.unary(UnaryOp::Abs)
    }
    /// `ln(1 + e^x)`, stable for large |x|.
    pub fn softplus(self) -> Self {
        self.unary(UnaryOp::Softplus)
    }
    /// `ln σ(x) = -softplus(-x)` (PyTorch's `logsigmoid`), stable for large |x|; its
    /// derivative is `σ(-x)`.
    pub fn log_sigmoid(self) -> Self {
        self.unary(UnaryOp::LogSigmoid)
    }
    /// The error function `erf(x) = 2/√π ∫₀ˣ e^(-t²) dt`; its derivative is
    /// `2/√π e^(-x²)`.
    pub fn erf(self) -> Self {
        self.unary(UnaryOp::Erf)
    }
    /// GELU, `x Φ(x) = x/2 (1 + erf(x/√2))` with `Φ` the standard normal distribution
    /// function: PyTorch's `gelu` (`approximate='none'`). Its derivative is
    /// `Φ(x) + x φ(x)`; far below 0 it is computed with `erfc`, so it stays accurate
    /// where `1 + erf` would round to 0.
    pub fn gelu(self) -> Self {
        self.unary(UnaryOp::Gelu)
    }
    /// GELU's tanh form, `x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))`: PyTorch's `gelu`
    /// with `approximate='tanh'` (computed as `x σ(2u)`, the same function).
    pub fn gelu_tanh(self) -> Self {
        self.unary(UnaryOp::GeluTanh)
    }
}

impl<'t, T: Float> Add for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn add(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Add)
    }
}
impl<'t, T: Float> Sub for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn sub(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Sub)
    }
}
impl<'t, T: Float> Mul for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn mul(self, rhs: Self) -> Self {
        self.binary(rhs, BinaryOp::Mul)
    }
}
impl<'t, T: Float> Div for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The gradient the fast vjp passes to the input of `op` at `x` (output `y`).
    fn vjp_of(op: UnaryOp<f32>, x: &Tensor<f32>, y: &Tensor<f32>, g: &Tensor<f32>) -> Tensor<f32> {
        let inputs = [x];
        let ctx = VjpContext {
            inputs: &inputs,
            output: y,
            grad: g,
            wants: &[true],
        };
        Rule::vjp(&op, &ctx)[0].clone().expect("a gradient")
    }

    /// Elementwise ops on a matrix large enough to be computed in bands of rows give
    /// the same bits on one thread as on two and three (ragged bands).
    #[test]
    fn banded_unary_ops_give_the_same_bits_on_any_thread_count() {
        let (rows, cols) = (257, 128);
        assert!(rows * cols >= crate::kernels::schedule::ELEMENTWISE_SPLIT_MIN);
        let x = Tensor::from_vec(
            (0..rows * cols)
                .map(|i| ((i * 7919 % 2003) as f32) / 100.0 - 10.0)
                .collect(),
            [rows, cols],
        );
        let g = x.map(|v| v.cos());
        let sigmoid = UnaryOp::Activation(Activation::Sigmoid);
        let run = |threads: usize| {
            crate::with_threads(threads, || {
                assert_eq!(crate::threads(), threads);
                let y = unary_forward(sigmoid, &x);
                let dx = vjp_of(sigmoid, &x, &y, &g);
                let bits =
                    |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                (bits(&y), bits(&dx))
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(run(threads) == one, "{threads} threads differ from one");
        }
    }

    /// The wide (AVX-512 or AVX2) loops compute the same bits as the scalar functions
    /// called one element at a time, forward and backward, for every unary op: wider
    /// vectors change only how many elements go at once, never the arithmetic.
    #[test]
    fn wide_unary_loops_give_the_scalar_bits() {
        let n = 1003; // not a multiple of any vector width
        let value = |i: usize, seed: usize| {
            (((i * 2_654_435_761 + seed) % 4001) as f32 / 100.0 - 20.0)
                * if i.is_multiple_of(7) { 5.0 } else { 1.0 }
        };
        let x = Tensor::from_vec((0..n).map(|i| value(i, 1)).collect(), [n]);
        let g = Tensor::from_vec((0..n).map(|i| value(i, 2) / 20.0).collect(), [n]);
        let ops = [
            UnaryOp::Neg,
            UnaryOp::Exp,
            UnaryOp::Ln,
            UnaryOp::Sqrt,
            UnaryOp::Square,
            UnaryOp::Activation(Activation::Sigmoid),
            UnaryOp::Activation(Activation::Tanh),
            UnaryOp::Activation(Activation::Relu),
            UnaryOp::Abs,
            UnaryOp::Softplus,
            UnaryOp::LogSigmoid,
            UnaryOp::Erf,
            UnaryOp::Gelu,
            UnaryOp::GeluTanh,
            UnaryOp::Powf(1.5),
            UnaryOp::Sin,
            UnaryOp::Cos,
            UnaryOp::Powi(3),
            UnaryOp::Powi(-2),
            UnaryOp::AddScalar(0.25),
            UnaryOp::MulScalar(-3.0),
            UnaryOp::SubFrom(2.0),
            UnaryOp::DivInto(0.5),
        ];
        let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for op in ops {
            let y = unary_forward(op, &x);
            let want: Vec<f32> = x.data().iter().map(|&v| op.f(v)).collect();
            assert_eq!(bits(y.data()), bits(&want), "{} forward", op.name());
            let dx = vjp_of(op, &x, &y, &g);
            let want: Vec<f32> = (0..n)
                .map(|i| op.vjp(x.data()[i], y.data()[i], g.data()[i]))
                .collect();
            assert_eq!(bits(dx.data()), bits(&want), "{} backward", op.name());
        }
    }
}
