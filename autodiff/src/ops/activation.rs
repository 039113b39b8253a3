//! Activations: elementwise functions whose derivative is a function of their output
//! alone. That one property is what lets a linear layer fuse them
//! ([`Var::linear_with`]): its backward pass needs only the layer's output, which it
//! keeps anyway. Each activation is defined once here (its function, its derivative from
//! the output, its name); the unfused op ([`Var::activation`] and the named methods),
//! the fused layer and `nn`'s layers all use this definition.
//!
//! Adding one: a variant, its arms in `f`, `vjp_rule` (the derivative, written once for
//! every form), `name` and [`per_activation!`], and its public method on [`Var`].

use super::rules::Real;
use crate::float::{sigmoid, Float};
use crate::kernels::elementwise::ElementFn;
use crate::tape::Var;
use std::fmt;
use std::str::FromStr;

/// An elementwise function whose derivative can be computed from its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// The logistic function `1 / (1 + e^-x)`, stable for large |x|: the video's
    /// activation. `σ' = σ (1 - σ)`.
    Sigmoid,
    /// `max(x, 0)`; the derivative at 0 is taken as 0. Its second derivative is zero
    /// wherever it exists.
    Relu,
    /// Hyperbolic tangent. `tanh' = 1 - tanh²`.
    Tanh,
    /// `x` itself: a layer left linear (logits).
    Identity,
}

impl Activation {
    /// Every activation, in declaration order.
    pub const ALL: [Activation; 4] = [
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Identity,
    ];

    /// The function at `x`.
    #[inline(always)]
    pub fn f<T: Float>(self, x: T) -> T {
        match self {
            Activation::Sigmoid => sigmoid(x),
            Activation::Relu => x.max(T::zero()),
            Activation::Tanh => x.tanh(),
            Activation::Identity => x,
        }
    }

    /// The derivative at the input whose output is `y`.
    #[inline(always)]
    pub fn df_from_output<T: Float>(self, y: T) -> T {
        self.vjp_rule(y, T::one())
    }

    /// The input's gradient `g f'` from the output `y`. The ReLU's is chosen, `g` where
    /// the unit is on and zero elsewhere, so that a NaN or infinite gradient does not
    /// leak through a unit that passes nothing (as in PyTorch and JAX; NaN * 0 would be
    /// NaN).
    #[inline(always)]
    pub fn vjp_from_output<T: Float>(self, y: T, g: T) -> T {
        self.vjp_rule(y, g)
    }

    /// The one definition of each activation's derivative, `g f'(x)` written with the
    /// output `y = f(x)`, in the rule language of `ops/rules.rs`: per element for
    /// `backward`, recorded as ops for [`Var::grad`], and (with `g = 1`) the scalar
    /// tape's partial. The ReLU's gate is a constant: its second derivative is zero
    /// wherever it exists.
    #[inline(always)]
    pub(crate) fn vjp_rule<T: Float, N: Real<T>>(self, y: N, g: N) -> N {
        match self {
            Activation::Sigmoid => g * (y * y.c_sub(T::one())), // σ (1 - σ)
            Activation::Tanh => g * (y * y).c_sub(T::one()),    // 1 - tanh²
            // The output is positive exactly where the input is.
            Activation::Relu => g.where_positive(y),
            Activation::Identity => g,
        }
    }

    /// The name used in messages, `to_dot` and command lines.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
        }
    }
}

/// Runs `$body` with `$a` bound to a copy of `$act` in an arm of its own variant, so
/// that after inlining `$a.f` and its derivative are straight-line code inside a loop
/// instead of a `match` per element.
macro_rules! per_activation {
    ($act:expr, |$a:ident| $body:expr) => {
        match $act {
            $crate::ops::activation::Activation::Sigmoid => {
                let $a = $crate::ops::activation::Activation::Sigmoid;
                $body
            }
            $crate::ops::activation::Activation::Relu => {
                let $a = $crate::ops::activation::Activation::Relu;
                $body
            }
            $crate::ops::activation::Activation::Tanh => {
                let $a = $crate::ops::activation::Activation::Tanh;
                $body
            }
            $crate::ops::activation::Activation::Identity => {
                let $a = $crate::ops::activation::Activation::Identity;
                $body
            }
        }
    };
}
pub(crate) use per_activation;

impl<T: Float> ElementFn<T> for Activation {
    #[inline(always)]
    fn f(self, x: T) -> T {
        Activation::f(self, x)
    }

    #[inline(always)]
    fn vjp(self, _: T, y: T, g: T) -> T {
        self.vjp_from_output(y, g)
    }

    #[inline(always)]
    fn per_variant<R>(self, body: impl FnOnce(Self) -> R) -> R {
        per_activation!(self, |a| body(a))
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = String;

    /// Parses a [`name`](Activation::name) (`"none"` also means identity).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Activation::Identity);
        }
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Activation::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown activation {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `act(x)`, elementwise; the identity records nothing and returns `self`.
    pub fn activation(self, act: Activation) -> Self {
        match act {
            Activation::Identity => self,
            act => self.unary(super::elementwise::UnaryOp::Activation(act)),
        }
    }

    /// The logistic function `1 / (1 + e^-x)`, stable for large |x|.
    pub fn sigmoid(self) -> Self {
        self.activation(Activation::Sigmoid)
    }

    /// Hyperbolic tangent.
    pub fn tanh(self) -> Self {
        self.activation(Activation::Tanh)
    }

    /// `max(x, 0)`; the derivative at 0 is taken as 0.
    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }
}
