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
//!
//! # Derivatives of derivatives
//!
//! [`Var::grad`] is the other way to differentiate: it returns the gradients as
//! [`Var`]s recorded on the same tape (PyTorch's `create_graph=True`), so they can be
//! used in further expressions and differentiated again, to any order. Each node also
//! keeps the op that computed it (8 bytes more per node; the values are recomputed by
//! replaying the tape), and the recorded reverse sweep calls the op's derivative rule
//! with the adjoint as a `Var`: the rules are the tensor tape's own (`UnaryOp`,
//! `BinaryOp` and [`Activation`], written once in the rule language of
//! `ops/rules.rs`), the same ones `backward`'s numeric partials come from.
//!
//! ```
//! use autodiff::scalar::Tape;
//! let tape = Tape::new();
//! let x = tape.var(0.7);
//! let y = x.sin() * x.exp();
//! let d1 = y.grad(&[x])[0]; // e^x (sin x + cos x), a Var on the tape
//! assert_eq!(d1.value(), y.backward()[x]);
//! let d3 = d1.grad(&[x])[0].grad(&[x])[0];
//! let want = 2.0 * 0.7f64.exp() * (0.7f64.cos() - 0.7f64.sin());
//! assert!((d3.value() - want).abs() < 1e-12 * want.abs());
//! ```
//!
//! `relu`, `abs`, `maximum` and `minimum` are piecewise linear: their second derivative
//! is zero wherever it exists (the gate, the sign or the choice of side is a constant
//! taken from the value), and at their kinks the first derivative chosen by `backward`
//! is used. A variable the output does not depend on gets a zero: a new leaf of value 0
//! with no parents, so it is a constant of every variable recorded before it.

use crate::ops::activation::Activation;
use crate::ops::rules::Real;
use crate::ops::{BinaryOp, UnaryOp};
use crate::sweep::reaching;
use crate::tape::{next_tape_id, NodeId};
use std::cell::RefCell;
use std::ops::{Add, Div, Mul, Neg, Sub};

const NO_PARENT: u32 = u32::MAX;

/// An adjoint slot of the scalar tape's reverse walk: a number for `backward` (0: none
/// arrived, and a node whose adjoint is 0 passes nothing on), a recorded `Var` for
/// `grad`.
trait Slot {
    type Adjoint: Copy;
    fn get(&self) -> Option<Self::Adjoint>;
    fn add(&mut self, g: Self::Adjoint);
}

impl Slot for f64 {
    type Adjoint = f64;
    #[inline(always)]
    fn get(&self) -> Option<f64> {
        (*self != 0.0).then_some(*self)
    }
    #[inline(always)]
    fn add(&mut self, g: f64) {
        *self += g;
    }
}

impl<'t> Slot for Option<Var<'t>> {
    type Adjoint = Var<'t>;
    fn get(&self) -> Option<Var<'t>> {
        *self
    }
    fn add(&mut self, g: Var<'t>) {
        // The first contribution is moved in, not added to a zero.
        *self = Some(match *self {
            None => g,
            Some(acc) => acc + g,
        });
    }
}

/// The scalar tape's one reverse walk, for `backward` and `grad` alike: from the last
/// node down to `first`, each node with an adjoint passes `edge(i, side, node, adjoint)`
/// (`None`: nothing) to its parent on that side.
#[inline(always)]
fn reverse<S: Slot>(
    adjoints: &mut [S],
    first: usize,
    node: impl Fn(usize) -> Node,
    mut edge: impl FnMut(usize, usize, Node, S::Adjoint) -> Option<S::Adjoint>,
) {
    for i in (first..adjoints.len()).rev() {
        let Some(g) = adjoints[i].get() else {
            continue;
        };
        let nd = node(i);
        for (side, parent) in nd.parents.into_iter().enumerate() {
            if parent == NO_PARENT {
                continue;
            }
            if let Some(dx) = edge(i, side, nd, g) {
                adjoints[parent as usize].add(dx);
            }
        }
    }
}

/// What `backward` reads: the parents and the numeric partials with respect to them.
///
/// A node without a second parent has a free slot, `partials[1]`, which `backward`
/// never reads: it holds what [`Var::grad`] needs to recompute the node's value, the
/// value itself for a leaf and the op's constant (as in `x + c`) for an op of one
/// parent.
#[derive(Clone, Copy)]
struct Node {
    parents: [u32; 2],
    partials: [f64; 2],
}

/// The op that computed a node: what [`Var::grad`] needs, with the node's parents and
/// constant, to recompute its value and to rebuild its partials as `Var`s.
///
/// Eight bytes, in a column of its own: `backward`'s loop reads no more memory than it
/// did before `grad` existed, and a node costs 32 bytes instead of 24. (A 16-byte op,
/// or each node's value kept beside it, makes a node 40 bytes or more; with glibc's
/// allocator the scalar_tape benchmark's 1M-node tape then no longer fits under the
/// threshold below which freed memory is kept for reuse, so every new tape faults its
/// pages in again: the benchmark ran 3 to 4 times as slow.)
#[derive(Clone, Copy, Debug)]
enum ScalarOp {
    /// A variable, or a constant recorded by [`Var::grad`] (its seed, a zero
    /// gradient): no parents. Its value is its constant.
    Leaf,
    /// An op of one parent, the tensor tape's `UnaryOp` with its constant (if any)
    /// taken out into the node.
    Unary(UnaryKind),
    /// `x / c`: the value is the quotient, the rule `MulScalar(1 / c)`'s.
    DivBy,
    /// `a op b`, with its rule from the tensor tape.
    Binary(BinaryOp),
    /// `x^p` with a variable exponent.
    Pow,
    /// `maximum`/`minimum`: the value of parent 0 or 1, chosen in the forward pass.
    Select(u8),
}

const _: () = assert!(std::mem::size_of::<ScalarOp>() == 8);

/// Stands in for a [`UnaryOp`]'s constant, which the scalar tape keeps in the node.
#[derive(Clone, Copy, Debug)]
struct NoConst;

/// A [`UnaryOp`] without its constant: 8 bytes where `UnaryOp<f64>` is 16.
type UnaryKind = UnaryOp<NoConst>;

/// `op` as its kind and its constant (0 where it has none).
#[inline(always)]
fn split(op: UnaryOp<f64>) -> (UnaryKind, f64) {
    let mut c = 0.0;
    let kind = op.map_const(|v| {
        c = v;
        NoConst
    });
    (kind, c)
}

/// The [`UnaryOp`] that [`split`] took apart.
#[inline(always)]
fn join(kind: UnaryKind, c: f64) -> UnaryOp<f64> {
    kind.map_const(|NoConst| c)
}

/// The rule language of `ops/rules.rs` with what the two scalar-only rules (`pow`,
/// `maximum`/`minimum`) need beyond it. Implemented for `f64` (the numeric partials) and
/// for [`Var`] (the recorded ones).
trait ScalarReal: Real<f64> {
    /// The number this stands for (a rule may branch on it).
    fn value_of(self) -> f64;
    /// Natural logarithm.
    fn ln_(self) -> Self;
    /// `self^e` with a variable exponent.
    fn pow_(self, e: Self) -> Self;
}

impl ScalarReal for f64 {
    #[inline(always)]
    fn value_of(self) -> f64 {
        self
    }
    #[inline(always)]
    fn ln_(self) -> f64 {
        self.ln()
    }
    #[inline(always)]
    fn pow_(self, e: f64) -> f64 {
        self.powf(e)
    }
}

impl ScalarOp {
    /// The node's value from its parents' values `a` and `b` (`b` is ignored by ops of
    /// one parent) and its constant `c`: computed once when the op is recorded and
    /// again, the same way, when [`Var::grad`] replays the tape.
    #[inline(always)]
    fn f(self, a: f64, b: f64, c: f64) -> f64 {
        match self {
            ScalarOp::Leaf => c,
            ScalarOp::Unary(kind) => join(kind, c).f(a),
            ScalarOp::DivBy => a / c,
            ScalarOp::Binary(BinaryOp::Add) => a + b,
            ScalarOp::Binary(BinaryOp::Sub) => a - b,
            ScalarOp::Binary(BinaryOp::Mul) => a * b,
            ScalarOp::Binary(BinaryOp::Div) => a / b,
            ScalarOp::Pow => a.powf(b),
            ScalarOp::Select(0) => a,
            ScalarOp::Select(_) => b,
        }
    }

    /// The gradient `g ∂y/∂parent` of parent `side` (0 or 1) of the node `y = op(a, b)`
    /// with constant `c` (`b` is ignored by ops of one parent): the op's one definition
    /// of its derivative. At `f64` with `g = 1` it is the partial `backward` multiplies
    /// by; on [`Var`]s it records the same arithmetic.
    #[inline(always)]
    fn vjp_rule<N: ScalarReal>(self, c: f64, side: usize, a: N, b: N, y: N, g: N) -> N {
        match self {
            ScalarOp::Leaf => unreachable!("scalar tape: a leaf has no parents"),
            ScalarOp::Unary(kind) => join(kind, c).vjp_rule(a, y, g),
            ScalarOp::DivBy => UnaryOp::MulScalar(1.0 / c).vjp_rule(a, y, g),
            ScalarOp::Binary(op) => op.vjp_rule(side, a, b, y, g),
            ScalarOp::Pow => {
                if side == 0 {
                    g * (b * a.pow_(b.add_c(-1.0))) // d(x^p)/dx = p x^(p-1)
                } else if a.value_of() > 0.0 {
                    g * (y * a.ln_()) // d(x^p)/dp = x^p ln x
                } else {
                    g.mul_c(0.0) // no real logarithm: taken as 0
                }
            }
            ScalarOp::Select(chosen) => {
                if side == usize::from(chosen) {
                    g
                } else {
                    g.mul_c(0.0)
                }
            }
        }
    }
}

/// A tape's two parallel columns: node `i` is `nodes[i]` and `ops[i]`.
struct Records {
    nodes: Vec<Node>,
    ops: Vec<ScalarOp>,
}

/// Records scalar operations; see the [module docs](self).
pub struct Tape {
    id: u64,
    records: RefCell<Records>,
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
            records: RefCell::new(Records {
                nodes: Vec::with_capacity(nodes),
                ops: Vec::with_capacity(nodes),
            }),
        }
    }

    /// A new input variable: a leaf whose derivative `backward` computes (the tensor
    /// tape's [`crate::Tape::param`]).
    pub fn var(&self, value: f64) -> Var<'_> {
        self.leaf(value)
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.records.borrow().nodes.len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of tape storage per recorded node: the parents and partials `backward`
    /// reads, and the op [`Var::grad`] reads.
    pub const BYTES_PER_NODE: usize = std::mem::size_of::<Node>() + std::mem::size_of::<ScalarOp>();

    #[inline(always)]
    fn leaf(&self, value: f64) -> Var<'_> {
        self.push(ScalarOp::Leaf, [NO_PARENT, NO_PARENT], [0.0, value], value)
    }

    #[inline(always)]
    fn push(&self, op: ScalarOp, parents: [u32; 2], partials: [f64; 2], value: f64) -> Var<'_> {
        let mut records = self.records.borrow_mut();
        let id = NodeId::try_from(records.nodes.len()).expect("scalar tape: more than 2^32 nodes");
        records.nodes.push(Node { parents, partials });
        records.ops.push(op);
        Var {
            tape: self,
            id,
            value,
        }
    }

    /// Every node's value up to node `n - 1`, recomputed from the leaves forward by
    /// the same function each op was recorded with (so the same bits).
    fn replay(&self, n: usize) -> Vec<f64> {
        let records = self.records.borrow();
        let mut values: Vec<f64> = Vec::with_capacity(n);
        for (node, op) in records.nodes[..n].iter().zip(&records.ops[..n]) {
            let [p, q] = node.parents;
            let a = if p == NO_PARENT {
                0.0
            } else {
                values[p as usize]
            };
            let b = if q == NO_PARENT {
                a
            } else {
                values[q as usize]
            };
            values.push(op.f(a, b, node.partials[1]));
        }
        values
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
        let records = self.tape.records.borrow();
        let nodes = &records.nodes;
        let n = self.id as usize + 1;
        let mut adjoints = vec![0.0; n];
        adjoints[n - 1] = 1.0;
        reverse(
            &mut adjoints,
            0,
            |i| nodes[i],
            |_, side, node, a| Some(node.partials[side] * a),
        );
        Gradients {
            tape_id: self.tape.id,
            adjoints,
        }
    }

    /// The gradients of this output with respect to `wrt`, as `Var`s recorded on the
    /// same tape (PyTorch's `create_graph=True`): each can be used in further
    /// expressions and differentiated again, to any order. The reverse sweep calls each
    /// op's derivative rule with the adjoint as a `Var` (the rules `backward`'s partials
    /// come from), visiting only the nodes through which this output depends on some
    /// of `wrt`.
    ///
    /// ```
    /// use autodiff::scalar::Tape;
    /// let tape = Tape::new();
    /// let x = tape.var(2.0);
    /// let y = x.powi(3); // x³
    /// let dy = y.grad(&[x])[0]; // 3x²
    /// let d2y = dy.grad(&[x])[0]; // 6x
    /// let d3y = d2y.grad(&[x])[0]; // 6
    /// assert_eq!((dy.value(), d2y.value(), d3y.value()), (12.0, 12.0, 6.0));
    /// ```
    ///
    /// A variable the output does not depend on (one recorded after it, say) gets a
    /// zero: a new leaf of value 0 with no parents, a constant of every variable
    /// recorded before it. At first order the values are `backward`'s, bit for bit,
    /// with two exceptions: `a / b` of two `Var`s, whose rule gives `g / b` where
    /// `backward` multiplies by the partial `1 / b` (they can differ in the last bit),
    /// and nodes whose adjoint is 0, which `backward` skips and `grad` does not (so a
    /// `0 · ∞` partial there gives NaN, and a zero may carry the other sign).
    ///
    /// Panics, at the caller's line, when a variable in `wrt` belongs to another tape.
    #[track_caller]
    pub fn grad(&self, wrt: &[Var<'t>]) -> Vec<Var<'t>> {
        let tape = self.tape;
        for w in wrt {
            assert!(
                w.tape.id == tape.id,
                "scalar grad: variable #{} in wrt belongs to another tape than the output #{}",
                w.id,
                self.id
            );
        }
        let n = self.id as usize + 1;
        // needed[i]: node i is one of `wrt` or depends on one of them.
        let needed = {
            let records = tape.records.borrow();
            let parents = |i: usize| {
                records.nodes[i]
                    .parents
                    .into_iter()
                    .filter(|&p| p != NO_PARENT)
            };
            reaching(n, wrt.iter().map(|w| w.id as usize), |i| {
                parents(i).map(|p| p as usize)
            })
        };
        let first = needed.iter().position(|&x| x).unwrap_or(n);
        let values = tape.replay(n);
        debug_assert_eq!(
            values[n - 1].to_bits(),
            self.value.to_bits(),
            "scalar grad: replay"
        );
        let var = |id: u32| Var {
            tape,
            id,
            value: values[id as usize],
        };
        let mut adjoints: Vec<Option<Var<'t>>> = vec![None; n];
        if needed[n - 1] {
            adjoints[n - 1] = Some(tape.leaf(1.0));
        }
        // Copied out, so that the rule can record on the tape while it runs.
        let node = |i: usize| tape.records.borrow().nodes[i];
        reverse(&mut adjoints[..], first, node, |i, side, node, g| {
            let [p, q] = node.parents;
            let parent = node.parents[side];
            if !needed[parent as usize] {
                return None;
            }
            let op = tape.records.borrow().ops[i];
            let (a, y) = (var(p), var(i as NodeId));
            let b = if q == NO_PARENT { a } else { var(q) };
            Some(op.vjp_rule(node.partials[1], side, a, b, y, g))
        });
        let mut zero = None;
        wrt.iter()
            .map(|w| {
                adjoints
                    .get(w.id as usize)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| *zero.get_or_insert_with(|| tape.leaf(0.0)))
            })
            .collect()
    }

    #[track_caller]
    fn check_same_tape(&self, other: &Var<'_>) {
        assert!(
            self.tape.id == other.tape.id,
            "scalar tape: a Var from another tape was used here; values of two tapes cannot be mixed"
        );
    }

    /// Records `op` of this value: its function and its partial from the op's one
    /// definition, the tensor tape's own (`UnaryOp::f`, and `df`, its `vjp_rule` with
    /// `g = 1`). Its constant, if any, is kept in the node's free slot; `grad`'s replay
    /// recomputes the value with `join(split(op)).f`, which is `op.f`.
    #[inline(always)]
    fn unary(self, op: UnaryOp<f64>) -> Var<'t> {
        let x = self.value;
        let y = op.f(x);
        let (kind, c) = split(op);
        self.tape.push(
            ScalarOp::Unary(kind),
            [self.id, NO_PARENT],
            [op.df(x, y), c],
            y,
        )
    }

    /// Records the scalar-only op `op` of this value with constant `c`.
    #[inline(always)]
    fn record_unary(self, op: ScalarOp, c: f64) -> Var<'t> {
        let x = self.value;
        let y = op.f(x, x, c);
        let partial = op.vjp_rule(c, 0, x, x, y, 1.0);
        self.tape.push(op, [self.id, NO_PARENT], [partial, c], y)
    }

    /// Records `op(self, other)`, its partials from the op's rule.
    #[inline(always)]
    #[track_caller]
    fn binary(self, other: Var<'t>, op: ScalarOp) -> Var<'t> {
        self.check_same_tape(&other);
        let (a, b) = (self.value, other.value);
        let y = op.f(a, b, 0.0);
        let partials = [
            op.vjp_rule(0.0, 0, a, b, y, 1.0),
            op.vjp_rule(0.0, 1, a, b, y, 1.0),
        ];
        self.tape.push(op, [self.id, other.id], partials, y)
    }

    /// `x²`
    pub fn square(self) -> Var<'t> {
        self.unary(UnaryOp::Square)
    }

    /// `x^n` for an integer power (`powi(0)` has derivative 0 everywhere).
    pub fn powi(self, n: i32) -> Var<'t> {
        self.unary(UnaryOp::Powi(n))
    }

    /// `x^p` for a constant exponent.
    pub fn powf(self, p: f64) -> Var<'t> {
        self.unary(UnaryOp::Powf(p))
    }

    /// `x^y` with a variable exponent: d/dx = y x^(y-1), d/dy = x^y ln x (taken as 0
    /// where `x <= 0`, which has no real logarithm).
    #[track_caller]
    pub fn pow(self, y: Var<'t>) -> Var<'t> {
        self.binary(y, ScalarOp::Pow)
    }

    /// `e^x`
    pub fn exp(self) -> Var<'t> {
        self.unary(UnaryOp::Exp)
    }

    /// Natural logarithm.
    pub fn ln(self) -> Var<'t> {
        self.unary(UnaryOp::Ln)
    }

    /// Square root.
    pub fn sqrt(self) -> Var<'t> {
        self.unary(UnaryOp::Sqrt)
    }

    /// Sine.
    pub fn sin(self) -> Var<'t> {
        self.unary(UnaryOp::Sin)
    }

    /// Cosine.
    pub fn cos(self) -> Var<'t> {
        self.unary(UnaryOp::Cos)
    }

    /// Hyperbolic tangent.
    pub fn tanh(self) -> Var<'t> {
        self.unary(UnaryOp::Activation(Activation::Tanh))
    }

    /// The logistic function, stable for large |x|.
    pub fn sigmoid(self) -> Var<'t> {
        self.unary(UnaryOp::Activation(Activation::Sigmoid))
    }

    /// `ln σ(x) = -softplus(-x)`, stable for large |x|; its derivative is `σ(-x)`.
    pub fn log_sigmoid(self) -> Var<'t> {
        self.unary(UnaryOp::LogSigmoid)
    }

    /// The error function `2/√π ∫₀ˣ e^(-t²) dt`.
    pub fn erf(self) -> Var<'t> {
        self.unary(UnaryOp::Erf)
    }

    /// GELU, `x Φ(x)` with `Φ` the standard normal distribution function (PyTorch's
    /// `gelu`, `approximate='none'`).
    pub fn gelu(self) -> Var<'t> {
        self.unary(UnaryOp::Gelu)
    }

    /// GELU's tanh form, `x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))` (PyTorch's
    /// `approximate='tanh'`).
    pub fn gelu_tanh(self) -> Var<'t> {
        self.unary(UnaryOp::GeluTanh)
    }

    /// `max(x, 0)`; the derivative at 0 is taken as 0, the second derivative is 0.
    pub fn relu(self) -> Var<'t> {
        self.unary(UnaryOp::Activation(Activation::Relu))
    }

    /// `|x|`; the derivative at 0 is taken as 0, the second derivative is 0.
    pub fn abs(self) -> Var<'t> {
        self.unary(UnaryOp::Abs)
    }

    /// The larger of two values (pairwise, as NumPy's and PyTorch's `maximum`: a
    /// tensor's `max` is a reduction); on a tie the gradient goes to `self`. The
    /// second derivative is 0.
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
        self.select(other, self.value >= other.value)
    }

    /// The smaller of two values (pairwise, see [`Var::maximum`]); on a tie the
    /// gradient goes to `self`.
    #[track_caller]
    pub fn minimum(self, other: Var<'t>) -> Var<'t> {
        self.select(other, self.value <= other.value)
    }

    /// `self` if `first`, else `other`, recorded as a choice.
    #[track_caller]
    fn select(self, other: Var<'t>, first: bool) -> Var<'t> {
        self.binary(other, ScalarOp::Select(u8::from(!first)))
    }
}

/// 1, -1 or 0.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The rule language on the scalar tape: a rule applied to `Var`s records its
/// arithmetic, so [`Var::grad`] can call the tensor tape's rules unchanged. The sign and
/// the gate are constants taken from the value (multiplications by 0 or ±1), so
/// `abs` and `relu` have second derivative 0.
impl Real<f64> for Var<'_> {
    fn mul_c(self, c: f64) -> Self {
        self * c
    }
    fn add_c(self, c: f64) -> Self {
        self + c
    }
    fn c_sub(self, c: f64) -> Self {
        c - self
    }
    fn c_div(self, c: f64) -> Self {
        c / self
    }
    fn sin_(self) -> Self {
        self.sin()
    }
    fn cos_(self) -> Self {
        self.cos()
    }
    fn powf_(self, p: f64) -> Self {
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
        self.mul_c(sign(x.value))
    }
    fn where_positive(self, y: Self) -> Self {
        self.mul_c(if y.value > 0.0 { 1.0 } else { 0.0 })
    }
}

impl ScalarReal for Var<'_> {
    fn value_of(self) -> f64 {
        self.value
    }
    fn ln_(self) -> Self {
        self.ln()
    }
    fn pow_(self, e: Self) -> Self {
        self.pow(e)
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
        self.binary(o, ScalarOp::Binary(BinaryOp::Add))
    }
}
impl<'t> Sub for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn sub(self, o: Var<'t>) -> Var<'t> {
        self.binary(o, ScalarOp::Binary(BinaryOp::Sub))
    }
}
impl<'t> Mul for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn mul(self, o: Var<'t>) -> Var<'t> {
        self.binary(o, ScalarOp::Binary(BinaryOp::Mul))
    }
}
impl<'t> Div for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn div(self, o: Var<'t>) -> Var<'t> {
        self.binary(o, ScalarOp::Binary(BinaryOp::Div))
    }
}
impl<'t> Neg for Var<'t> {
    type Output = Var<'t>;
    fn neg(self) -> Var<'t> {
        self.unary(UnaryOp::Neg)
    }
}
impl<'t> Add<f64> for Var<'t> {
    type Output = Var<'t>;
    fn add(self, c: f64) -> Var<'t> {
        self.unary(UnaryOp::AddScalar(c))
    }
}
impl<'t> Sub<f64> for Var<'t> {
    type Output = Var<'t>;
    fn sub(self, c: f64) -> Var<'t> {
        self.unary(UnaryOp::AddScalar(-c)) // x + (-c) is x - c, to the bit
    }
}
impl<'t> Mul<f64> for Var<'t> {
    type Output = Var<'t>;
    fn mul(self, c: f64) -> Var<'t> {
        self.unary(UnaryOp::MulScalar(c))
    }
}
impl<'t> Div<f64> for Var<'t> {
    type Output = Var<'t>;
    fn div(self, c: f64) -> Var<'t> {
        self.record_unary(ScalarOp::DivBy, c)
    }
}
impl<'t> Add<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn add(self, v: Var<'t>) -> Var<'t> {
        v.unary(UnaryOp::AddScalar(self))
    }
}
impl<'t> Sub<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn sub(self, v: Var<'t>) -> Var<'t> {
        v.unary(UnaryOp::SubFrom(self))
    }
}
impl<'t> Mul<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn mul(self, v: Var<'t>) -> Var<'t> {
        v.unary(UnaryOp::MulScalar(self))
    }
}
impl<'t> Div<Var<'t>> for f64 {
    type Output = Var<'t>;
    fn div(self, v: Var<'t>) -> Var<'t> {
        v.unary(UnaryOp::DivInto(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `grad` recomputes values by replaying the tape: every op, NaN-producing ones
    /// included, must give back the bits its forward pass computed.
    #[test]
    fn replay_recomputes_every_value_to_the_bit() {
        let tape = Tape::new();
        let (x, z) = (tape.var(0.7), tape.var(-1.3));
        let vars = [
            x + z,
            x - z,
            x * z,
            x / z,
            -x,
            x + 0.3,
            x - 0.3,
            x * 0.3,
            x / 0.3,
            0.3 + x,
            0.3 - x,
            0.3 * x,
            0.3 / x,
            x.square(),
            x.powi(3),
            x.powi(-2),
            x.powi(0),
            x.powf(2.5),
            z.powf(0.5),
            x.pow(z),
            z.pow(x),
            x.exp(),
            x.ln(),
            z.ln(),
            x.sqrt(),
            x.sin(),
            x.cos(),
            x.tanh(),
            x.sigmoid(),
            z.log_sigmoid(),
            x.erf(),
            z.gelu(),
            z.gelu_tanh(),
            z.relu(),
            x.abs(),
            z.abs(),
            x.maximum(z),
            z.maximum(x),
            x.minimum(z),
            z.minimum(x),
            // x / c is not x * (1 / c) here: the replay must divide.
            z / 0.7,
            x / 1.3,
        ];
        let values = tape.replay(tape.len());
        for v in [x, z].iter().chain(&vars) {
            assert_eq!(values[v.id as usize].to_bits(), v.value.to_bits(), "{v:?}");
        }
        assert_eq!(Tape::BYTES_PER_NODE, 32);
    }
}
