//! Per-sample gradients: every parameter's gradient for each example of a batch, as a
//! tensor with the batch on its first axis ([`crate::func::per_sample_grads`]).
//!
//! Two paths give the same numbers (to rounding):
//!
//! - **Batched**: one forward pass over the whole batch and one reverse sweep seeded with
//!   ones on the per-example losses. Where an op's rows are the examples, the adjoint a
//!   sweep of the summed losses brings to row `i` is exactly what example `i` alone would
//!   bring there (no other example's loss depends on that row), so only the ops that read
//!   a parameter need per-example work: a linear layer's weight gradient for example `i`
//!   is the outer product of its input row and its output adjoint row (one pass for the
//!   batch, the trick behind Opacus and `torch.func.vmap(grad)`); a convolution's is that
//!   example's im2col product; a broadcast operand's is its element-wise rule summed
//!   within the example. Values computed from parameters alone (a transposed weight, say)
//!   get one adjoint per example and are swept once per example.
//! - **Loop**: one forward and backward pass per example. It works for every op.
//!
//! The batched path is taken when the recorded ops show that examples never meet: the
//! inputs' first axis is followed through every op (an op that sums over it, reshapes
//! across it, or multiplies two batched operands into one matrix mixes examples), and
//! every op that reads a parameter has a per-example rule. Otherwise the loop runs, and
//! [`PerSample::why_loop`] says which op stopped the batched path. A cost that registers
//! a gradient hook ([`crate::Var::register_hook`]) also takes the loop, so that the hook
//! sees one example's gradient, as it would in that example's own `backward`.

use crate::float::Float;
use crate::ops::{BatchInput, BatchView, Rule, VjpContext};
use crate::shape::Dims;
use crate::sweep::{reaching, reverse, Contributions, Pass};
use crate::tape::{input_values, Node, NodeId, Tape, Var};
use crate::tensor::Tensor;
use smallvec::{smallvec, SmallVec};

/// A function of parameters (first slice) and a batch of inputs (second slice, each with
/// the examples on its first axis) that returns one loss per example, shape `[n]`.
///
/// Examples must not meet: example `i`'s loss may depend on the parameters and on row
/// `i` of each input only (no batch norm, no mean over the batch inside). Write the
/// per-example loss, not the batch mean: with `nn`, `Cost::per_sample_of`.
pub trait BatchFunction<T: Float>:
    for<'t> Fn(&'t Tape<T>, &[Var<'t, T>], &[Var<'t, T>]) -> Var<'t, T>
{
}
impl<T: Float, F> BatchFunction<T> for F where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>], &[Var<'t, T>]) -> Var<'t, T>
{
}

/// Returns `f` unchanged, its type fixed to a [`BatchFunction`]: a closure to store in a
/// variable and give to more than one call ([`per_sample`], [`per_sample_grads`]). As
/// with [`crate::func::function`], a closure stored with a plain `let` has no bound to
/// learn its argument types from, and annotating them fixes one tape lifetime ("lifetime
/// may not live long enough"). Lend the result as `&f` to keep it.
///
/// ```
/// use autodiff::func::{batch_function, per_sample, per_sample_grads, PerSamplePath};
/// use autodiff::Tensor;
///
/// // Per-example squared error of a linear model with a fixed bias `b`, captured.
/// let b = Tensor::from_vec(vec![0.1], [1]);
/// let losses = batch_function(move |tape, p, batch| {
///     (batch[0].matmul(p[0]) + tape.constant(&b) - batch[1]).square().sum_axes(&[1], false)
/// });
/// let w = Tensor::<f64>::from_vec(vec![0.5, -1.0], [2, 1]);
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
/// let y = Tensor::from_vec(vec![0.0, 1.0], [2, 1]);
/// let g = per_sample_grads(&losses, &[w.clone()], &[x.clone(), y.clone()]);
/// let looped = per_sample(&losses, &[w], &[x, y], PerSamplePath::Loop);
/// // Example 0: r = 0.5 - 2 + 0.1 = -1.4, dL/dw = 2 r x = [-2.8, -5.6].
/// assert!((g[0].data()[0] + 2.8).abs() < 1e-12 && (g[0].data()[1] + 5.6).abs() < 1e-12);
/// assert!((looped.grads[0].data()[1] - g[0].data()[1]).abs() < 1e-12);
/// ```
pub fn batch_function<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>], &[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

/// Which way [`per_sample`] computes the gradients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PerSamplePath {
    /// Batched where the recorded ops allow it, else the loop.
    #[default]
    Auto,
    /// One batched pass; panics, saying why, where the ops do not allow it.
    Batched,
    /// One forward and backward pass per example: works for every op.
    Loop,
}

/// Per-example losses and gradients, from [`per_sample`].
#[derive(Clone, Debug)]
pub struct PerSample<T: Float> {
    /// Each example's loss, `[n]`.
    pub losses: Tensor<T>,
    /// One tensor per parameter, `[n, ..parameter's shape]`: row `i` is the gradient of
    /// example `i`'s loss (zeros where it does not depend on the parameter).
    pub grads: Vec<Tensor<T>>,
    /// Whether the batched path computed them.
    pub batched: bool,
    /// Why the batched path did not apply, when [`PerSamplePath::Auto`] fell back to the
    /// loop.
    pub why_loop: Option<String>,
}

/// Every parameter's gradient for each example: one tensor per parameter of shape
/// `[n, ..parameter's shape]`, row `i` the gradient of example `i`'s loss alone. The mean
/// over the rows is the gradient of the mean loss (the batch gradient). See
/// [`per_sample`] for the losses and the choice of path.
///
/// ```
/// use autodiff::func::per_sample_grads;
/// use autodiff::{Tape, Tensor, Var};
///
/// /// Per-example squared error of a linear model: (x w + b - y)², one per row.
/// fn losses<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], batch: &[Var<'t, f64>]) -> Var<'t, f64> {
///     let (x, y) = (batch[0], batch[1]);
///     (x.linear(p[0], p[1]) - y).square().sum_axes(&[1], false)
/// }
/// let w = Tensor::from_vec(vec![0.5, -1.0], [2, 1]);
/// let b = Tensor::from_vec(vec![0.1], [1]);
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]);
/// let y = Tensor::from_vec(vec![0.0, 1.0, -1.0], [3, 1]);
/// let g = per_sample_grads(losses, &[w, b], &[x, y]);
/// assert_eq!(g[0].shape(), &[3, 2, 1]); // one weight gradient per example
/// // Example 0: r = 0.5 - 2 + 0.1 = -1.4, dL/dw = 2 r x = [-2.8, -5.6].
/// assert!((g[0].data()[0] + 2.8).abs() < 1e-12 && (g[0].data()[1] + 5.6).abs() < 1e-12);
/// ```
#[track_caller]
pub fn per_sample_grads<T: Float>(
    f: impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
) -> Vec<Tensor<T>> {
    per_sample(f, params, inputs, PerSamplePath::Auto).grads
}

/// Per-example losses and gradients of `f` (see [`BatchFunction`]) at `params` for the
/// batch `inputs`, by the given path. Panics if the inputs do not share a first axis, if
/// `f` does not return one loss per example, or if [`PerSamplePath::Batched`] is asked
/// for where the ops do not allow it.
#[track_caller]
pub fn per_sample<T: Float>(
    f: impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
    path: PerSamplePath,
) -> PerSample<T> {
    let n = batch_len(inputs);
    if n == 0 {
        return PerSample {
            losses: Tensor::zeros([0]),
            grads: params.iter().map(|p| stacked(Vec::new(), 0, p)).collect(),
            batched: path != PerSamplePath::Loop,
            why_loop: None,
        };
    }
    match path {
        PerSamplePath::Loop => looped(&f, params, inputs, n),
        PerSamplePath::Auto | PerSamplePath::Batched => match batched(&f, params, inputs, n) {
            Ok(result) => result,
            Err(why) if path == PerSamplePath::Auto => PerSample {
                why_loop: Some(why),
                ..looped(&f, params, inputs, n)
            },
            Err(why) => panic!("per_sample: the batched path does not apply here: {why}"),
        },
    }
}

/// The batch size every input shares. Panics naming the shapes otherwise.
#[track_caller]
fn batch_len<T: Float>(inputs: &[Tensor<T>]) -> usize {
    assert!(
        !inputs.is_empty(),
        "per_sample: needs at least one input, with the examples on its first axis"
    );
    let n = inputs[0].shape().first().copied();
    for (k, x) in inputs.iter().enumerate() {
        assert!(
            x.rank() >= 1 && x.shape().first().copied() == n,
            "per_sample: input {k} has shape {} but input 0 has shape {}: every input needs \
             the examples on its first axis",
            Dims(x.shape()),
            Dims(inputs[0].shape())
        );
    }
    n.unwrap_or(0)
}

#[track_caller]
fn check_losses(shape: &[usize], n: usize) {
    assert!(
        shape == [n],
        "per_sample: the function returned shape {} for a batch of {n}; it must return one \
         loss per example, shape [{n}] (a per-example cost, not the batch mean)",
        Dims(shape)
    );
}

/// `data` (n rows of `like`'s elements) as a tensor `[n, ..like's shape]`.
fn stacked<T: Float>(data: Vec<T>, n: usize, like: &Tensor<T>) -> Tensor<T> {
    let mut shape = vec![n];
    shape.extend_from_slice(like.shape());
    Tensor::from_vec(data, shape)
}

/// Example `e` of `x`, as a batch of one.
fn example<T: Float>(x: &Tensor<T>, e: usize) -> Tensor<T> {
    let len = x.numel() / x.shape()[0];
    let mut shape = x.shape().to_vec();
    shape[0] = 1;
    Tensor::from_vec(x.data()[e * len..(e + 1) * len].to_vec(), shape)
}

/// One forward and backward pass per example.
#[track_caller]
fn looped<T: Float>(
    f: &impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
    n: usize,
) -> PerSample<T> {
    let mut grads: Vec<Vec<T>> = params
        .iter()
        .map(|p| Vec::with_capacity(n * p.numel()))
        .collect();
    let mut losses = Vec::with_capacity(n);
    for e in 0..n {
        let tape = Tape::new();
        let ps: Vec<Var<'_, T>> = params.iter().map(|p| tape.param(p)).collect();
        let xs: Vec<Var<'_, T>> = inputs
            .iter()
            .map(|x| tape.constant(example(x, e)))
            .collect();
        let loss = f(&tape, &ps, &xs);
        check_losses(&loss.shape(), 1);
        losses.push(loss.item());
        let g = loss.backward();
        for ((out, &p), value) in grads.iter_mut().zip(&ps).zip(params) {
            match g.get(p) {
                Some(t) => out.extend_from_slice(t.data()),
                None => out.resize(out.len() + value.numel(), T::zero()),
            }
        }
    }
    PerSample {
        losses: Tensor::from_vec(losses, [n]),
        grads: grads
            .into_iter()
            .zip(params)
            .map(|(g, p)| stacked(g, n, p))
            .collect(),
        batched: false,
        why_loop: None,
    }
}

/// How a recorded value relates to the batch.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// The same for every example (parameters, constants, values made of them).
    Shared,
    /// First axis = the examples; row `i` depends on example `i` (and shared values) only.
    Rows,
    /// Examples meet here, or a parameter enters an op with no per-example rule.
    Mixed(String),
}

/// The batched path, or why it does not apply.
#[track_caller]
fn batched<T: Float>(
    f: &impl BatchFunction<T>,
    params: &[Tensor<T>],
    inputs: &[Tensor<T>],
    n: usize,
) -> Result<PerSample<T>, String> {
    let tape = Tape::new();
    let ps: Vec<Var<'_, T>> = params.iter().map(|p| tape.param(p)).collect();
    // Recorded as parameters so that the ops on them are recorded (ops on constants
    // alone are folded into constants), but never swept into: see `depends`.
    let xs: Vec<Var<'_, T>> = inputs.iter().map(|x| tape.param(x)).collect();
    let loss = f(&tape, &ps, &xs);
    check_losses(&loss.shape(), n);
    if !tape.hooks().is_empty() {
        // A hook sees a value's whole gradient; batched, that is every example's at once.
        let why = "a gradient hook is registered (Var::register_hook), and each example's \
                   sweep runs it on that example's gradient alone";
        return Err(why.into());
    }
    let root = loss.id() as usize;
    let (kinds, depends) = {
        let nodes = tape.nodes();
        let is_input = |i: usize| xs.iter().any(|x| x.id() as usize == i);
        // Whether a value depends on some parameter: only those need an adjoint.
        let parameters =
            (0..=root).filter(|&i| nodes[i].op.is_none() && nodes[i].requires_grad && !is_input(i));
        let depends = reaching(root + 1, parameters, |i| {
            nodes[i].inputs.iter().map(|&p| p as usize)
        });
        let mut kinds = Vec::with_capacity(root + 1);
        for (i, node) in nodes[..=root].iter().enumerate() {
            let kind = match &node.op {
                None if is_input(i) => Kind::Rows,
                None => Kind::Shared,
                Some(op) => classify(op.as_ref(), node, &nodes, &kinds, &depends, n),
            };
            kinds.push(kind);
        }
        (kinds, depends)
    };
    match &kinds[root] {
        Kind::Mixed(why) => return Err(why.clone()),
        Kind::Shared => return Err("the losses do not depend on the batch".into()),
        Kind::Rows => {}
    }
    let seed = depends[root].then(|| Adjoint::Batch(Tensor::ones([n])));
    let mut pass = PerExample { kinds, depends, n };
    let mut adjoints = reverse(&tape, root, seed, &mut pass);
    let grads = ps
        .iter()
        .zip(params)
        .map(|(p, value)| {
            let data = match adjoints[p.id() as usize].take() {
                Some(Adjoint::Stacked(data)) => data,
                _ => vec![T::zero(); n * value.numel()],
            };
            stacked(data, n, value)
        })
        .collect();
    let losses = tape.nodes()[root].value.clone();
    Ok(PerSample {
        losses,
        grads,
        batched: true,
        why_loop: None,
    })
}

/// An adjoint of the batched sweep.
#[derive(Clone)]
enum Adjoint<T: Float> {
    /// A `Rows` value's: the batch's adjoint, row `i` example `i`'s.
    Batch(Tensor<T>),
    /// A `Shared` value's: one adjoint per example, stacked (`n` times its length).
    Stacked(Vec<T>),
}

/// The batched sweep seeded with ones on the losses. At a `Rows` node the ops' fast
/// vjps carry each example's adjoint in its own row, and the shared inputs that
/// depend on parameters get the op's per-example rule; a `Shared` node that depends
/// on parameters (a transposed weight, say) gets the op's vjp once per example.
struct PerExample {
    kinds: Vec<Kind>,
    depends: Vec<bool>,
    n: usize,
}

impl<T: Float> Pass<T> for PerExample {
    type Adjoint = Adjoint<T>;

    fn wants(&self, _: &[Node<T>], p: NodeId) -> bool {
        self.depends[p as usize]
    }

    fn keeps(&self, _: &Node<T>) -> bool {
        false
    }

    fn vjp(
        &mut self,
        tape: &Tape<T>,
        i: usize,
        grad: Adjoint<T>,
        wants: &[bool],
    ) -> Contributions<Adjoint<T>> {
        let n = self.n;
        let nodes = tape.nodes();
        let node = &nodes[i];
        let op = node.op.as_deref().expect("op node");
        let values = input_values(&nodes, i);
        let rows = |p: NodeId| self.kinds[p as usize] == Kind::Rows;
        match grad {
            Adjoint::Batch(grad) => {
                let rows_wants: SmallVec<[bool; 2]> = node
                    .inputs
                    .iter()
                    .zip(wants)
                    .map(|(&p, &w)| w && rows(p))
                    .collect();
                let mut out: Contributions<Adjoint<T>> = smallvec![None; node.inputs.len()];
                let ctx = VjpContext {
                    inputs: &values,
                    output: &node.value,
                    grad: &grad,
                    wants: &rows_wants,
                };
                if rows_wants.contains(&true) {
                    for ((slot, g), &w) in out.iter_mut().zip(op.vjp(&ctx)).zip(&rows_wants) {
                        *slot = g.filter(|_| w).map(Adjoint::Batch);
                    }
                }
                for (k, &p) in node.inputs.iter().enumerate() {
                    if wants[k] && !rows(p) {
                        out[k] = Some(Adjoint::Stacked(op.per_example(k, &ctx, n)));
                    }
                }
                out
            }
            Adjoint::Stacked(stack) => {
                // A value made of parameters alone: its vjp once per example.
                let len = node.value.numel();
                let mut out: SmallVec<[Option<Vec<T>>; 2]> = smallvec![None; node.inputs.len()];
                for (e, g) in stack.chunks_exact(len.max(1)).enumerate().take(n) {
                    let grad = Tensor::from_vec(g.to_vec(), node.value.shape());
                    let ctx = VjpContext {
                        inputs: &values,
                        output: &node.value,
                        grad: &grad,
                        wants,
                    };
                    for ((slot, g), &w) in out.iter_mut().zip(op.vjp(&ctx)).zip(wants) {
                        let Some(g) = g.filter(|_| w) else { continue };
                        let plen = g.numel();
                        let slot = slot.get_or_insert_with(|| vec![T::zero(); n * plen]);
                        for (s, &v) in slot[e * plen..(e + 1) * plen].iter_mut().zip(g.data()) {
                            *s += v;
                        }
                    }
                }
                out.into_iter().map(|s| s.map(Adjoint::Stacked)).collect()
            }
        }
    }

    fn add(acc: &mut Adjoint<T>, g: Adjoint<T>) {
        match (acc, g) {
            (Adjoint::Batch(acc), Adjoint::Batch(g)) => *acc += &g,
            (Adjoint::Stacked(acc), Adjoint::Stacked(g)) => {
                for (a, v) in acc.iter_mut().zip(g) {
                    *a += v;
                }
            }
            _ => unreachable!("a value is either batched or shared"),
        }
    }
}

/// The kind of a recorded op's output from its inputs' kinds; the op itself says
/// whether it keeps the examples apart ([`Rule::keeps_rows`]) and which shared inputs
/// it has a per-example rule for.
fn classify<T: Float>(
    op: &dyn Rule<T>,
    node: &Node<T>,
    nodes: &[Node<T>],
    kinds: &[Kind],
    depends: &[bool],
    n: usize,
) -> Kind {
    let ks: SmallVec<[&Kind; 2]> = node.inputs.iter().map(|&p| &kinds[p as usize]).collect();
    if let Some(Kind::Mixed(why)) = ks.iter().find(|k| matches!(k, Kind::Mixed(_))) {
        return Kind::Mixed(why.clone());
    }
    if ks.iter().all(|k| **k == Kind::Shared) {
        return Kind::Shared;
    }
    let out = node.value.shape();
    let name = op.name();
    let mixes = |how: &str| Kind::Mixed(format!("{name} {how}"));
    if out.first() != Some(&n) {
        return mixes(&format!(
            "gives shape {} from batched input: its first axis is not the examples",
            Dims(out)
        ));
    }
    let inputs: SmallVec<[BatchInput<'_>; 2]> = node
        .inputs
        .iter()
        .map(|&p| BatchInput {
            rows: kinds[p as usize] == Kind::Rows,
            depends: depends[p as usize],
            shape: nodes[p as usize].value.shape(),
        })
        .collect();
    let batch = BatchView {
        n,
        inputs: &inputs,
        output: out,
    };
    if !op.keeps_rows(&batch) {
        return mixes("mixes the examples of the batch (or is not known not to)");
    }
    // Every parameter that enters here beside a batched value needs a per-example rule.
    for (k, input) in inputs.iter().enumerate() {
        if !input.rows && input.depends && !op.has_per_example(k, &batch) {
            return mixes(&format!(
                "reads a parameter (input {k}) beside batched values, and has no per-example rule for it"
            ));
        }
    }
    Kind::Rows
}
