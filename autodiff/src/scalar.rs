//! Scalar reverse mode, micrograd-style, in f64.
//!
//! Each node stores at most two parent indices and the local partial derivatives
//! computed during the forward pass, so every edge of the graph carries its sensitivity.
//! Backward is one reverse loop `adjoint[parent] += partial * adjoint[node]` over the
//! tape: no recursion, and a chain of any length needs no stack.
//!
//! ```
//! use autodiff::scalar::Tape;
//! let tape = Tape::new();
//! let x = tape.var(-4.0);
//! let z = 2.0 * x + 2.0 + x;
//! let y = (z * z).relu() + z * x;
//! let g = y.backward();
//! assert_eq!(y.value(), 140.0);
//! assert_eq!(g[x], -82.0); // dy/dx = 2z·3 + (3x + z) = -60 - 22
//! ```
//!
//! It reads like the tensor tape ([`crate::Tape`]): a [`Var`] is a `Copy` handle with
//! [`Var::id`] and [`Var::value`], `backward` returns a separate [`Gradients`] read with
//! `grads[x]` or [`Gradients::get`], and ops carry the same names (`square`, `powi`,
//! `sin`, `exp`, `sigmoid`, ...). Two differences are deliberate. A leaf is
//! [`Tape::var`]: every leaf of a scalar tape is a variable of the function (constants
//! are plain `f64` operands, folded into the partials), whereas the tensor tape has two
//! kinds of leaf, `param` and `constant`. And the pairwise [`Var::maximum`] and
//! [`Var::minimum`] are named as in NumPy and PyTorch, because a tensor's `max` is a
//! reduction.

use crate::ops::activation::Activation;
use crate::ops::UnaryOp;
use crate::tape::{next_tape_id, NodeId};
use std::cell::RefCell;
use std::ops::{Add, Div, Mul, Neg, Sub};

const NO_PARENT: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Node {
    parents: [u32; 2],
    partials: [f64; 2],
}

/// Records scalar operations; see the [module docs](self).
pub struct Tape {
    id: u64,
    nodes: RefCell<Vec<Node>>,
}

/// A scalar recorded on a [`Tape`]: a `Copy` handle carrying its value.
#[derive(Clone, Copy)]
pub struct Var<'t> {
    tape: &'t Tape,
    id: NodeId,
    value: f64,
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty tape with room for `nodes` nodes before it reallocates.
    pub fn with_capacity(nodes: usize) -> Self {
        Tape {
            id: next_tape_id(),
            nodes: RefCell::new(Vec::with_capacity(nodes)),
        }
    }

    /// A new input variable: a leaf whose derivative `backward` computes (the tensor
    /// tape's [`crate::Tape::param`]).
    pub fn var(&self, value: f64) -> Var<'_> {
        self.push(value, [NO_PARENT, NO_PARENT], [0.0, 0.0])
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of tape storage per recorded node.
    pub const BYTES_PER_NODE: usize = std::mem::size_of::<Node>();

    fn push(&self, value: f64, parents: [u32; 2], partials: [f64; 2]) -> Var<'_> {
        let mut nodes = self.nodes.borrow_mut();
        let id = NodeId::try_from(nodes.len()).expect("scalar tape: more than 2^32 nodes");
        nodes.push(Node { parents, partials });
        Var {
            tape: self,
            id,
            value,
        }
    }
}

/// Adjoints of every node recorded up to the output, indexed by [`Var`].
///
/// Unlike the tensor tape's [`crate::Gradients`], every node's adjoint is kept (they are
/// single numbers), so a variable the output does not depend on reads 0.
pub struct Gradients {
    tape_id: u64,
    adjoints: Vec<f64>,
}

impl Gradients {
    /// d(output)/d(var): 0 when the output does not depend on `var` (a variable recorded
    /// after it, say), `None` for a variable of another tape.
    ///
    /// ```
    /// # use autodiff::scalar::Tape;
    /// let (tape, other) = (Tape::new(), Tape::new());
    /// let x = tape.var(3.0);
    /// let g = (x * x).backward();
    /// assert_eq!(g.get(x), Some(6.0));
    /// assert_eq!(g.get(other.var(3.0)), None);
    /// ```
    pub fn get(&self, var: Var<'_>) -> Option<f64> {
        if var.tape.id != self.tape_id {
            return None;
        }
        Some(self.adjoints.get(var.id as usize).copied().unwrap_or(0.0))
    }
}

impl<'t> std::ops::Index<Var<'t>> for Gradients {
    type Output = f64;

    /// d(output)/d(var), as [`Gradients::get`]; panics, at the caller's line, for a
    /// variable of another tape.
    #[track_caller]
    fn index(&self, var: Var<'t>) -> &f64 {
        assert!(
            var.tape.id == self.tape_id,
            "gradients: node #{} belongs to another tape than the one backward ran on",
            var.id
        );
        self.adjoints.get(var.id as usize).unwrap_or(&0.0)
    }
}

impl<'t> Var<'t> {
    /// The value computed in the forward pass.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// This node's index on its tape.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Backpropagates from this variable (seeded with 1) and returns every adjoint.
    /// The tape is not changed: calling it twice gives the same answer.
    pub fn backward(&self) -> Gradients {
        let nodes = self.tape.nodes.borrow();
        let n = self.id as usize + 1;
        let mut adjoints = vec![0.0; n];
        adjoints[n - 1] = 1.0;
        for i in (0..n).rev() {
            let a = adjoints[i];
            if a == 0.0 {
                continue;
            }
            let node = nodes[i];
            for k in 0..2 {
                let p = node.parents[k];
                if p != NO_PARENT {
                    adjoints[p as usize] += node.partials[k] * a;
                }
            }
        }
        Gradients {
            tape_id: self.tape.id,
            adjoints,
        }
    }

    #[track_caller]
    fn check_same_tape(&self, other: &Var<'_>) {
        assert!(
            self.tape.id == other.tape.id,
            "scalar tape: a Var from another tape was used here; values of two tapes cannot be mixed"
        );
    }

    fn unary(self, value: f64, partial: f64) -> Var<'t> {
        self.tape.push(value, [self.id, NO_PARENT], [partial, 0.0])
    }

    #[track_caller]
    fn binary(self, other: Var<'t>, value: f64, da: f64, db: f64) -> Var<'t> {
        self.check_same_tape(&other);
        self.tape.push(value, [self.id, other.id], [da, db])
    }

    /// Records `op` of this value, with its partial from the op's one definition of
    /// its function and derivative, the tensor tape's own (`UnaryOp::f` and `df`).
    fn apply(self, op: UnaryOp<f64>) -> Var<'t> {
        let x = self.value;
        let y = op.f(x);
        self.unary(y, op.df(x, y))
    }

    /// `x²`
    pub fn square(self) -> Var<'t> {
        self.apply(UnaryOp::Square)
    }

    /// `x^n` for an integer power (`powi(0)` has derivative 0 everywhere).
    pub fn powi(self, n: i32) -> Var<'t> {
        self.apply(UnaryOp::Powi(n))
    }

    /// `x^p` for a constant exponent.
    pub fn powf(self, p: f64) -> Var<'t> {
        self.apply(UnaryOp::Powf(p))
    }

    /// `x^y` with a variable exponent: d/dx = y x^(y-1), d/dy = x^y ln x.
    #[track_caller]
    pub fn pow(self, y: Var<'t>) -> Var<'t> {
        let (x, p) = (self.value, y.value);
        let z = x.powf(p);
        let dy = if x > 0.0 { z * x.ln() } else { 0.0 };
        self.binary(y, z, p * x.powf(p - 1.0), dy)
    }

    /// `e^x`
    pub fn exp(self) -> Var<'t> {
        self.apply(UnaryOp::Exp)
    }

    /// Natural logarithm.
    pub fn ln(self) -> Var<'t> {
        self.apply(UnaryOp::Ln)
    }

    /// Square root.
    pub fn sqrt(self) -> Var<'t> {
        self.apply(UnaryOp::Sqrt)
    }

    /// Sine.
    pub fn sin(self) -> Var<'t> {
        self.apply(UnaryOp::Sin)
    }

    /// Cosine.
    pub fn cos(self) -> Var<'t> {
        self.apply(UnaryOp::Cos)
    }

    /// Hyperbolic tangent.
    pub fn tanh(self) -> Var<'t> {
        self.apply(UnaryOp::Activation(Activation::Tanh))
    }

    /// The logistic function, stable for large |x|.
    pub fn sigmoid(self) -> Var<'t> {
        self.apply(UnaryOp::Activation(Activation::Sigmoid))
    }

    /// `max(x, 0)`; the derivative at 0 is taken as 0.
    pub fn relu(self) -> Var<'t> {
        self.apply(UnaryOp::Activation(Activation::Relu))
    }

    /// `|x|`; the derivative at 0 is taken as 0.
    pub fn abs(self) -> Var<'t> {
        self.apply(UnaryOp::Abs)
    }

    /// The larger of two values (pairwise, as NumPy's and PyTorch's `maximum`: a
    /// tensor's `max` is a reduction); on a tie the gradient goes to `self`.
    ///
    /// ```
    /// # use autodiff::scalar::Tape;
    /// let tape = Tape::new();
    /// let (a, b) = (tape.var(2.0), tape.var(5.0));
    /// let m = a.maximum(b);
    /// assert_eq!((m.value(), m.backward()[b]), (5.0, 1.0));
    /// ```
    #[track_caller]
    pub fn maximum(self, other: Var<'t>) -> Var<'t> {
        let first = self.value >= other.value;
        let v = if first { self.value } else { other.value };
        self.binary(
            other,
            v,
            f64::from(u8::from(first)),
            f64::from(u8::from(!first)),
        )
    }

    /// The smaller of two values (pairwise, see [`Var::maximum`]); on a tie the
    /// gradient goes to `self`.
    #[track_caller]
    pub fn minimum(self, other: Var<'t>) -> Var<'t> {
        let first = self.value <= other.value;
        let v = if first { self.value } else { other.value };
        self.binary(
            other,
            v,
            f64::from(u8::from(first)),
            f64::from(u8::from(!first)),
        )
    }
}

impl std::fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(#{} = {})", self.id, self.value)
    }
}

impl<'t> Add for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn add(self, o: Var<'t>) -> Var<'t> {
        self.binary(o, self.value + o.value, 1.0, 1.0)
    }
}
impl<'t> Sub for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn sub(self, o: Var<'t>) -> Var<'t> {
        self.binary(o, self.value - o.value, 1.0, -1.0)
    }
}
impl<'t> Mul for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn mul(self, o: Var<'t>) -> Var<'t> {
        self.binary(o, self.value * o.value, o.value, self.value)
    }
}
impl<'t> Div for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn div(self, o: Var<'t>) -> Var<'t> {
        let q = self.value / o.value;
        self.binary(o, q, 1.0 / o.value, -q / o.value) // d(a/b)/db = -a/b²
    }
}
impl<'t> Neg for Var<'t> {
    type Output = Var<'t>;
    fn neg(self) -> Var<'t> {
        self.unary(-self.value, -1.0)
    }
}
impl<'t> Add<f64> for Var<'t> {
    type Output = Var<'t>;
    fn add(self, c: f64) -> Var<'t> {
        self.unary(self.value + c, 1.0)
    }
}
impl<'t> Sub<f64> for Var<'t> {
    type Output = Var<'t>;
    fn sub(self, c: f64) -> Var<'t> {
        self.unary(self.value - c, 1.0)
    }
}
impl<'t> Mul<f64> for Var<'t> {
    type Output = Var<'t>;
    fn mul(self, c: f64) -> Var<'t> {
        self.unary(self.value * c, c)
    }
}
impl<'t> Div<f64> for Var<'t> {
    type Output = Var<'t>;
    fn div(self, c: f64) -> Var<'t> {
        self.unary(self.value / c, 1.0 / c)
    }
}
impl<'t> Add<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn add(self, v: Var<'t>) -> Var<'t> {
        v.unary(self + v.value, 1.0)
    }
}
impl<'t> Sub<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn sub(self, v: Var<'t>) -> Var<'t> {
        v.unary(self - v.value, -1.0)
    }
}
impl<'t> Mul<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn mul(self, v: Var<'t>) -> Var<'t> {
        v.unary(self * v.value, self)
    }
}
impl<'t> Div<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn div(self, v: Var<'t>) -> Var<'t> {
        let q = self / v.value;
        v.unary(q, -q / v.value)
    }
}
