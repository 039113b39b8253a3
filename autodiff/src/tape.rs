//! The tensor tape: a Wengert list of recorded operations. Nodes are appended in
//! execution order, which is already a topological order, so `backward` is one reverse
//! loop over the list: no recursion, no sort, and no reference-counted graph to drop.

use crate::float::Float;
use crate::grad::Gradients;
use crate::hooks::Hooks;
use crate::ops::{InputGrads, Op, Rule, VarJvp, VarVjp, VjpContext};
use crate::profile::{Phase, Profile};
use crate::shape::Dims;
use crate::sweep::{self, Contributions, Pass};
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Index of a node on its tape.
pub type NodeId = u32;

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_tape_id() -> u64 {
    NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed)
}

pub(crate) struct Node<T: Float> {
    /// The op that computed the value; `None` for a leaf (a parameter or a constant).
    pub(crate) op: Option<Op<T>>,
    pub(crate) inputs: SmallVec<[NodeId; 2]>,
    pub(crate) value: Tensor<T>,
    pub(crate) requires_grad: bool,
    /// Keep this node's gradient after backward (see [`Var::retain_grad`]).
    pub(crate) retain_grad: bool,
    /// The value was dropped by [`Var::backward_releasing`]; `value` is then empty.
    pub(crate) released: bool,
}

impl<T: Float> Node<T> {
    /// The value, or a panic at the caller's line when a releasing sweep dropped it.
    #[track_caller]
    pub(crate) fn value(&self, id: NodeId) -> &Tensor<T> {
        if self.released {
            released_panic(id, &self.name());
        }
        &self.value
    }

    /// The op's name, as in messages.
    pub(crate) fn name(&self) -> String {
        self.op
            .as_ref()
            .map_or_else(|| "leaf".into(), |op| op.name())
    }
}

#[cold]
#[track_caller]
fn released_panic(id: NodeId, name: &str) -> ! {
    panic!(
        "tape: node #{id} ({name}) was used after its value was released by backward_releasing; \
         read what you need before that sweep, or use backward(), which keeps every value"
    )
}

/// Records tensor operations so that [`Var::backward`] can replay the chain rule.
///
/// A tape belongs to one computation (one training step, say) and is dropped with it.
/// Handles ([`Var`]) borrow the tape, so the compiler stops them from outliving it.
/// Mixing handles of two live tapes in one op is not a compile error, though: it
/// panics at run time, at the caller's line, with "a Var from another tape was used
/// here". [`Gradients::get`] answers `None` for another tape's handle.
///
/// Leaves are recorded with [`Tape::param`] (a gradient is wanted) or
/// [`Tape::constant`]; both take a [`Tensor`] by value or by reference (a reference
/// costs no copy: clones share storage).
///
/// A cost used in more than one place is kept as a named function generic over the
/// tape's lifetime, or as a closure wrapped in [`crate::func::function`]. A closure
/// stored with a plain `let` cannot be used that way: without annotations the compiler
/// asks for them (E0282), and with them its lifetime is fixed at its first use, so
/// passing it to [`crate::gradcheck`] or [`crate::func::grad`], which need
/// `for<'t> Fn(&'t Tape, ..)`, fails with "lifetime may not live long enough" or "one
/// type is more general than the other". `function` gives the closure that shape where
/// it is written.
///
/// ```
/// use autodiff::{gradcheck, GradcheckOptions, Tape, Tensor, Var};
///
/// /// Mean squared distance of `p[0]` from the point (1, 2).
/// fn cost<'t>(tape: &'t Tape<f64>, p: &[Var<'t, f64>]) -> Var<'t, f64> {
///     let target = tape.constant(Tensor::from_vec(vec![1.0, 2.0], [2]));
///     (p[0] - target).square().mean()
/// }
///
/// let w = Tensor::from_vec(vec![0.0, 0.0], [2]);
/// let tape = Tape::new();
/// let x = tape.param(&w); // by reference: `w` stays usable, nothing is copied
/// let grads = cost(&tape, &[x]).backward();
/// assert_eq!(grads[x].data(), &[-1.0, -2.0]); // d/dw mean((w - t)²) = (w - t)
/// assert!(gradcheck(cost, &[w], GradcheckOptions::default()).is_ok());
/// ```
///
/// The same cost as a closure that captures its target, used on a tape and then lent
/// (`&cost`) to `gradcheck`:
///
/// ```
/// use autodiff::func::function;
/// use autodiff::{gradcheck, GradcheckOptions, Tape, Tensor};
///
/// let target = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let cost = function(|tape, p| (p[0] - tape.constant(&target)).square().mean());
///
/// let w = Tensor::from_vec(vec![0.0, 0.0], [2]);
/// let tape = Tape::new();
/// let x = tape.param(&w);
/// let grads = cost(&tape, &[x]).backward();
/// assert_eq!(grads[x].data(), &[-1.0, -2.0]);
/// assert!(gradcheck(&cost, &[w], GradcheckOptions::default()).is_ok());
/// ```
pub struct Tape<T: Float> {
    id: u64,
    nodes: RefCell<Vec<Node<T>>>,
    detect_anomaly: Cell<bool>,
    anomaly: RefCell<Option<Anomaly>>,
    /// Gradient hooks by node ([`Var::register_hook`]).
    hooks: Hooks<T>,
    /// The products recorded so far ([`Tape::flops`]).
    flops: Cell<Flops>,
    /// Whether ops are timed ([`Tape::set_profiling`]), and their times.
    pub(crate) profiling: Cell<bool>,
    pub(crate) times: RefCell<Profile>,
}

/// The floating-point operations of the products recorded on a tape ([`Tape::flops`]),
/// two per multiply-add as PyTorch's `FlopCounterMode` counts them. The products
/// (matrix products, linear layers, convolutions) are where a network's arithmetic is;
/// the element-wise ops, reductions and softmaxes beside them are not counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flops {
    /// The products as recorded.
    pub forward: u64,
    /// What a backward pass through every recorded product does: one product of the
    /// same size for each of its inputs that requires a gradient (`dA = G Bᵀ` and
    /// `dB = Aᵀ G`; a convolution's input and weight gradients), none for a constant
    /// input such as the data.
    pub backward: u64,
}

impl Flops {
    /// Forward and backward together: a training step's arithmetic.
    pub fn total(&self) -> u64 {
        self.forward + self.backward
    }
}

/// The pass in which anomaly detection ([`Tape::detect_anomaly`]) found a non-finite
/// value: [`Anomaly::phase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnomalyPhase {
    /// An op's output.
    Forward,
    /// A gradient an op's vjp produced for one of its inputs.
    Backward,
}

/// The first NaN or infinity found while anomaly detection was on
/// ([`Tape::detect_anomaly`]): which op made it, in which pass, and the shapes involved.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// Forward value or backward gradient.
    pub phase: AnomalyPhase,
    /// The node whose op produced it.
    pub node: NodeId,
    /// The op's name.
    pub op: String,
    /// Shapes of the op's inputs.
    pub input_shapes: Vec<Vec<usize>>,
    /// Shape of the non-finite tensor.
    pub shape: Vec<usize>,
    /// How many of its elements are not finite.
    pub count: usize,
    /// The first non-finite element's value.
    pub first: f64,
    /// Whether the op's inputs were all finite (so this op is where it started).
    pub inputs_finite: bool,
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<String> = self
            .input_shapes
            .iter()
            .map(|s| Dims(s).to_string())
            .collect();
        write!(
            f,
            "{} pass: op {} (node #{}, inputs {}) produced {} non-finite value(s) ({}) in a tensor of shape {}{}",
            match self.phase {
                AnomalyPhase::Forward => "forward",
                AnomalyPhase::Backward => "backward",
            },
            self.op,
            self.node,
            if shapes.is_empty() { "none".to_string() } else { shapes.join(", ") },
            self.count,
            self.first,
            Dims(&self.shape),
            if self.inputs_finite { "" } else { "; its inputs were already non-finite" }
        )
    }
}

fn first_non_finite<T: Float>(t: &Tensor<T>) -> Option<(usize, f64)> {
    let mut count = 0;
    let mut first = None;
    for &x in t.data() {
        if !x.is_finite() {
            count += 1;
            first.get_or_insert(x.as_f64());
        }
    }
    first.map(|f| (count, f))
}

/// A handle to a value recorded on a [`Tape`]: a cheap `Copy` index.
///
/// Arithmetic on handles records new nodes: `a + b`, `a.matmul(b)`, `x.sigmoid()`, ...
///
/// The element type is always `T` of its tape: `Var<'t, f32>` or `Var<'t, f64>`
/// (there is no default, so a signature says which precision it works in).
#[derive(Clone, Copy)]
pub struct Var<'t, T: Float> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) id: NodeId,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            id: next_tape_id(),
            nodes: RefCell::new(Vec::new()),
            detect_anomaly: Cell::new(false),
            anomaly: RefCell::new(None),
            hooks: Hooks::default(),
            flops: Cell::new(Flops::default()),
            profiling: Cell::new(false),
            times: RefCell::new(Profile::default()),
        }
    }

    /// An empty tape with room for `nodes` nodes before it reallocates.
    pub fn with_capacity(nodes: usize) -> Self {
        Tape {
            id: next_tape_id(),
            nodes: RefCell::new(Vec::with_capacity(nodes)),
            detect_anomaly: Cell::new(false),
            anomaly: RefCell::new(None),
            hooks: Hooks::default(),
            flops: Cell::new(Flops::default()),
            profiling: Cell::new(false),
            times: RefCell::new(Profile::default()),
        }
    }

    /// Records a value that needs no gradient (input data, targets). Takes a tensor
    /// or a reference to one; a reference shares the storage, it does not copy.
    pub fn constant(&self, value: impl Into<Tensor<T>>) -> Var<'_, T> {
        self.push_node(None, SmallVec::new(), value.into(), false)
    }

    /// Records a value whose gradient `backward` should compute (a parameter). Takes a
    /// tensor or a reference to one; a reference shares the storage, it does not copy.
    ///
    /// ```
    /// # use autodiff::{Tape, Tensor};
    /// let weights = vec![Tensor::<f32>::ones([2]), Tensor::zeros([2])];
    /// let tape = Tape::new();
    /// let vars: Vec<_> = weights.iter().map(|w| tape.param(w)).collect();
    /// assert_eq!(vars.len(), 2);
    /// ```
    pub fn param(&self, value: impl Into<Tensor<T>>) -> Var<'_, T> {
        self.push_node(None, SmallVec::new(), value.into(), true)
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flops of the products recorded so far, forward and for a backward pass
    /// through them ([`Flops`]): divide a step's time into them for the arithmetic rate
    /// of a training step, and that by [`crate::peak_gflops`] for its share of the
    /// machine. Products inside a recomputed block ([`Tape::recompute`]) are
    /// on the block's own tape and not counted here.
    ///
    /// ```
    /// use autodiff::{Flops, Tape, Tensor};
    ///
    /// let tape = Tape::<f32>::new();
    /// let x = tape.constant(Tensor::ones([32, 784])); // the data: no gradient
    /// let w = tape.param(Tensor::ones([784, 16]));
    /// let _y = x.matmul(w);
    /// let macs = 32 * 784 * 16;
    /// assert_eq!(tape.flops(), Flops { forward: 2 * macs, backward: 2 * macs });
    /// ```
    pub fn flops(&self) -> Flops {
        self.flops.get()
    }

    /// Turns anomaly detection on or off. While on, the first op whose output (forward)
    /// or input gradient (backward) holds a NaN or infinity is recorded with its node id
    /// and shapes; read it with [`Tape::anomaly`]. Off by default: it scans every value.
    pub fn detect_anomaly(&self, on: bool) {
        self.detect_anomaly.set(on);
    }

    /// The first non-finite value found since anomaly detection was turned on.
    pub fn anomaly(&self) -> Option<Anomaly> {
        self.anomaly.borrow().clone()
    }

    fn check_gradients(
        &self,
        id: NodeId,
        node: &Node<T>,
        grad: &Tensor<T>,
        input_grads: &InputGrads<T>,
        nodes: &[Node<T>],
    ) {
        for g in input_grads.iter().flatten() {
            if let Some((count, first)) = first_non_finite(g) {
                *self.anomaly.borrow_mut() = Some(Anomaly {
                    phase: AnomalyPhase::Backward,
                    node: id,
                    op: node.name(),
                    input_shapes: node
                        .inputs
                        .iter()
                        .map(|&p| nodes[p as usize].value.shape().to_vec())
                        .collect(),
                    shape: g.shape().to_vec(),
                    count,
                    first,
                    inputs_finite: grad.all_finite()
                        && node
                            .inputs
                            .iter()
                            .all(|&p| nodes[p as usize].value.all_finite()),
                });
                return;
            }
        }
    }

    /// The recorded graph as Graphviz `dot` text: one box per node with its op and
    /// shape, parameters drawn as double boxes and constants dashed.
    pub fn to_dot(&self) -> String {
        let nodes = self.nodes.borrow();
        let mut out = String::from(
            "digraph tape {\n  rankdir=LR;\n  node [shape=box, fontname=monospace];\n",
        );
        for (i, node) in nodes.iter().enumerate() {
            let style = match (&node.op, node.requires_grad) {
                (None, true) => ", peripheries=2",
                (_, false) => ", style=dashed",
                _ => "",
            };
            let name = leaf_or_op_name(node.op.as_ref(), node.requires_grad);
            let shape = if node.released {
                "released".to_string()
            } else {
                Dims(node.value.shape()).to_string()
            };
            let _ = writeln!(out, "  n{i} [label=\"#{i} {name} {shape}\"{style}];");
            for &input in &node.inputs {
                let _ = writeln!(out, "  n{input} -> n{i};");
            }
        }
        out.push_str("}\n");
        out
    }

    pub(crate) fn hooks(&self) -> &Hooks<T> {
        &self.hooks
    }

    pub(crate) fn nodes(&self) -> Ref<'_, Vec<Node<T>>> {
        self.nodes.borrow()
    }

    pub(crate) fn nodes_mut(&self) -> RefMut<'_, Vec<Node<T>>> {
        self.nodes.borrow_mut()
    }

    /// Appends a node. An op none of whose inputs needs a gradient is stored as a
    /// constant: it keeps its value but no saved state and no vjp work.
    pub(crate) fn push_node(
        &self,
        op: Option<Op<T>>,
        inputs: SmallVec<[NodeId; 2]>,
        value: Tensor<T>,
        leaf_grad: bool,
    ) -> Var<'_, T> {
        let mut nodes = self.nodes.borrow_mut();
        if self.detect_anomaly.get() && self.anomaly.borrow().is_none() {
            if let Some((count, first)) = first_non_finite(&value) {
                let id = nodes.len() as NodeId;
                let name = leaf_or_op_name(op.as_ref(), leaf_grad);
                *self.anomaly.borrow_mut() = Some(Anomaly {
                    phase: AnomalyPhase::Forward,
                    node: id,
                    op: name,
                    input_shapes: inputs
                        .iter()
                        .map(|&i| nodes[i as usize].value.shape().to_vec())
                        .collect(),
                    shape: value.shape().to_vec(),
                    count,
                    first,
                    inputs_finite: inputs.iter().all(|&i| nodes[i as usize].value.all_finite()),
                });
            }
        }
        let requires_grad = if inputs.is_empty() {
            leaf_grad
        } else {
            inputs.iter().any(|&i| nodes[i as usize].requires_grad)
        };
        let (op, inputs) = if requires_grad || inputs.is_empty() {
            (op, inputs)
        } else {
            (None, SmallVec::new())
        };
        let id = NodeId::try_from(nodes.len()).expect("tape: more than 2^32 nodes");
        nodes.push(Node {
            op,
            inputs,
            value,
            requires_grad,
            retain_grad: false,
            released: false,
        });
        Var { tape: self, id }
    }

    /// Records the result of an op on `inputs`. `forward` sees the input values and
    /// whether any gradient is wanted (so it can skip saving state when none is).
    ///
    /// A panic inside `forward` names this crate's line, not the user's: ops check
    /// their operands' shapes before calling `record` (from `#[track_caller]` methods).
    #[track_caller]
    pub(crate) fn record<R: Rule<T>>(
        &self,
        inputs: &[Var<'_, T>],
        forward: impl FnOnce(&[&Tensor<T>], bool) -> (Tensor<T>, R),
    ) -> Var<'_, T> {
        for v in inputs {
            self.check_owns(*v);
        }
        let ids: SmallVec<[NodeId; 2]> = inputs.iter().map(|v| v.id).collect();
        let (value, op) = {
            let nodes = self.nodes.borrow();
            let values: SmallVec<[&Tensor<T>; 2]> =
                ids.iter().map(|&i| nodes[i as usize].value(i)).collect();
            let wants_grad = ids.iter().any(|&i| nodes[i as usize].requires_grad);
            let start = self.profiling.get().then(Instant::now);
            let (value, op) = forward(&values, wants_grad);
            let macs = op.multiply_adds(&values);
            if macs > 0 {
                // A product's operands are its first two inputs (a bias may follow).
                let grads = ids[..2]
                    .iter()
                    .filter(|&&i| nodes[i as usize].requires_grad);
                let mut flops = self.flops.get();
                flops.forward += 2 * macs;
                flops.backward += 2 * macs * grads.count() as u64;
                self.flops.set(flops);
            }
            if let Some(start) = start {
                self.add_time(&op.name(), Phase::Forward, start.elapsed(), 2 * macs);
            }
            (value, op)
        };
        self.push_node(Some(Rc::new(op)), ids, value, false)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Adds the vjp of `op` that began at `start` to the profile, with the products it
    /// did: one per operand (the first two inputs) it was asked for.
    fn time_vjp(&self, op: &dyn Rule<T>, inputs: &[&Tensor<T>], wants: &[bool], start: Instant) {
        let time = start.elapsed();
        let operands = wants.iter().take(2).filter(|&&w| w).count() as u64;
        let flops = 2 * op.multiply_adds(inputs) * operands;
        self.add_time(&op.name(), Phase::Backward, time, flops);
    }

    /// The name of the first custom op whose first-order-only vjp was recorded where a
    /// gradient flows (so differentiating through it would be refused).
    pub(crate) fn first_order_only(&self) -> Option<String> {
        self.nodes.borrow().iter().find_map(|node| {
            let op = node.op.as_ref().filter(|_| node.requires_grad)?;
            op.first_order_only().map(str::to_string)
        })
    }

    /// Panics, at the caller's line, when `v` was recorded on another tape.
    #[track_caller]
    pub(crate) fn check_owns(&self, v: Var<'_, T>) {
        assert!(
            v.tape.id == self.id,
            "tape: a Var from another tape was used here (node #{} of tape {}, on tape {}); \
             values of two tapes cannot be mixed",
            v.id,
            v.tape.id,
            self.id
        );
    }

    /// The reverse sweep from `root` with adjoint `seed`, through each op's fast vjp.
    /// With `release`, each op result's value is dropped as soon as the sweep has passed
    /// it (see [`Var::backward_releasing`]).
    #[track_caller]
    pub(crate) fn backward_from(
        &self,
        root: NodeId,
        seed: Tensor<T>,
        release: bool,
    ) -> Gradients<T> {
        let seed = {
            let nodes = self.nodes.borrow();
            let node = &nodes[root as usize];
            let root_value = node.value(root);
            assert!(
                seed.shape() == root_value.shape(),
                "backward_with: seed shape {} differs from the output's shape {}",
                Dims(seed.shape()),
                Dims(root_value.shape())
            );
            node.requires_grad.then_some(seed)
        };
        let mut pass = Numeric { release };
        Gradients::new(
            self.id,
            sweep::reverse(self, root as usize, seed, &mut pass),
        )
    }

    /// Marks node `i`'s value released and hands it over.
    fn release_value(&self, i: usize) -> Tensor<T> {
        let mut nodes = self.nodes.borrow_mut();
        let node = &mut nodes[i];
        node.released = true;
        std::mem::replace(&mut node.value, Tensor::from_vec(Vec::new(), [0]))
    }
}

/// `backward`'s pass: adjoints are buffer tensors and each op's fast vjp computes them.
struct Numeric {
    /// Drop each op result once the sweep has passed its op.
    release: bool,
}

impl<T: Float> Pass<T> for Numeric {
    type Adjoint = Tensor<T>;

    fn wants(&self, nodes: &[Node<T>], p: NodeId) -> bool {
        nodes[p as usize].requires_grad
    }

    /// Intermediate gradients are freed as soon as they are used, unless the caller
    /// asked to keep one.
    fn keeps(&self, node: &Node<T>) -> bool {
        node.retain_grad
    }

    #[track_caller]
    fn vjp(
        &mut self,
        tape: &Tape<T>,
        i: usize,
        grad: Tensor<T>,
        wants: &[bool],
    ) -> Contributions<Tensor<T>> {
        let anomaly = tape.detect_anomaly.get() && tape.anomaly.borrow().is_none();
        let op = tape.nodes()[i]
            .op
            .clone()
            .expect("the sweep visits op nodes only");
        // An op that asks for its output and adjoint by value (a recomputed block) gets
        // them in a releasing sweep, so that it can free them before it is done (with
        // anomaly detection on, the adjoint is still needed after the vjp).
        if self.release && op.takes_owned() && !tape.nodes()[i].retain_grad && !anomaly {
            tape.nodes()[i].value(i as NodeId); // panics if an earlier sweep released it
            let output = tape.release_value(i);
            let nodes = tape.nodes();
            let inputs = input_values(&nodes, i);
            let start = tape.profiling.get().then(Instant::now);
            let grads = op.vjp_owned(&inputs, wants, output, grad);
            if let Some(start) = start {
                tape.time_vjp(&*op, &inputs, wants, start);
            }
            return grads;
        }
        let nodes = tape.nodes();
        let node = &nodes[i];
        let inputs = input_values(&nodes, i);
        let ctx = VjpContext {
            inputs: &inputs,
            output: node.value(i as NodeId),
            grad: &grad,
            wants,
        };
        let start = tape.profiling.get().then(Instant::now);
        let input_grads = op.vjp(&ctx);
        if let Some(start) = start {
            tape.time_vjp(&*op, &inputs, wants, start);
        }
        if anomaly {
            tape.check_gradients(i as NodeId, node, &grad, &input_grads, &nodes);
        }
        for (&p, g) in node.inputs.iter().zip(&input_grads) {
            if let Some(g) = g {
                debug_assert_eq!(
                    g.shape(),
                    nodes[p as usize].value.shape(),
                    "vjp of {} returned a wrong shape",
                    op.name()
                );
            }
        }
        input_grads
    }

    /// The hooks see the buffer; a replacement goes on in its place.
    fn hook(&mut self, tape: &Tape<T>, i: usize, grad: Tensor<T>) -> Tensor<T> {
        let name = || tape.nodes()[i].name();
        tape.hooks().run(i as NodeId, &grad, name).unwrap_or(grad)
    }

    /// Node `i`'s vjp was the last reader of its value: later vjps (of nodes < i) read
    /// only their own inputs. Leaves are not passed here: they share the caller's
    /// storage, so dropping them would free nothing.
    fn passed(&mut self, tape: &Tape<T>, i: usize) {
        if self.release && !tape.nodes()[i].released {
            drop(tape.release_value(i));
        }
    }

    fn add(acc: &mut Tensor<T>, g: Tensor<T>) {
        *acc += &g;
    }
}

/// The values of node `i`'s inputs (a panic at the caller's line if one was released).
#[track_caller]
pub(crate) fn input_values<T: Float>(nodes: &[Node<T>], i: usize) -> SmallVec<[&Tensor<T>; 2]> {
    let inputs = &nodes[i].inputs;
    inputs.iter().map(|&p| nodes[p as usize].value(p)).collect()
}

/// A leaf's name (whether it is a parameter or a constant) or the op's.
fn leaf_or_op_name<T: Float>(op: Option<&Op<T>>, requires_grad: bool) -> String {
    match (op, requires_grad) {
        (None, true) => "param".to_string(),
        (None, false) => "constant".to_string(),
        (Some(op), _) => op.name(),
    }
}

impl<T: Float> Tape<T> {
    /// The recorded reverse sweep from `root` with adjoint `seed` (a value on this
    /// tape): each op's vjp is recorded as ops, so the gradients it returns for `wrt`
    /// are values on the tape, differentiable again. Only the nodes through which `root`
    /// depends on some of `wrt` are visited.
    #[track_caller]
    pub(crate) fn grad_from<'t>(
        &'t self,
        root: NodeId,
        seed: Var<'t, T>,
        wrt: &[Var<'t, T>],
    ) -> Vec<Var<'t, T>> {
        let grads = self.grad_sweep(root, seed, wrt);
        wrt.iter()
            .zip(grads)
            .map(|(&w, g)| g.unwrap_or_else(|| self.constant(Tensor::zeros(w.shape()))))
            .collect()
    }

    /// [`Tape::grad_from`]'s sweep: `None` for a value `root` does not depend on.
    #[track_caller]
    pub(crate) fn grad_sweep<'t>(
        &'t self,
        root: NodeId,
        seed: Var<'t, T>,
        wrt: &[Var<'t, T>],
    ) -> Vec<Option<Var<'t, T>>> {
        self.check_owns(seed);
        for &w in wrt {
            self.check_owns(w);
        }
        let n = root as usize + 1;
        let needed = {
            let nodes = self.nodes.borrow();
            let ids = wrt.iter().map(|w| w.id as usize);
            sweep::reaching(n, ids, |i| nodes[i].inputs.iter().map(|&p| p as usize))
        };
        let seed = needed[n - 1].then_some(seed);
        let adjoints = sweep::reverse(self, n - 1, seed, &mut Recorded { tape: self, needed });
        wrt.iter()
            .map(|&w| adjoints.get(w.id as usize).copied().flatten())
            .collect()
    }

    /// The forward sweep of forward mode: from the tangents of `seeds` (pairs of a value
    /// and its tangent, both on this tape), each op's tangent rule records the tangent of
    /// its output, up to `root`. Returns `root`'s tangent, `None` when it is zero (the
    /// output does not depend on the seeds).
    #[track_caller]
    pub(crate) fn jvp_from<'t>(
        &'t self,
        root: NodeId,
        seeds: &[(Var<'t, T>, Var<'t, T>)],
    ) -> Option<Var<'t, T>> {
        let n = root as usize + 1;
        let mut tangents: Vec<Option<Var<'t, T>>> = vec![None; n];
        let mut first = n;
        for &(x, t) in seeds {
            self.check_owns(x);
            self.check_owns(t);
            let (xs, ts) = (x.shape(), t.shape());
            assert!(
                xs == ts,
                "jvp: tangent shape {} differs from its value's shape {}",
                Dims(&ts),
                Dims(&xs)
            );
            if (x.id as usize) < n {
                tangents[x.id as usize] = Some(t);
                first = first.min(x.id as usize);
            }
        }
        for i in first..n {
            if tangents[i].is_some() {
                continue; // a seed
            }
            let (op, inputs) = {
                let nodes = self.nodes.borrow();
                let node = &nodes[i];
                let Some(op) = node.op.clone() else {
                    continue;
                };
                (op, node.inputs.clone())
            };
            let input_tangents: SmallVec<[Option<Var<'t, T>>; 2]> =
                inputs.iter().map(|&p| tangents[p as usize]).collect();
            if input_tangents.iter().all(Option::is_none) {
                continue;
            }
            let input_vars: SmallVec<[Var<'t, T>; 2]> =
                inputs.iter().map(|&id| Var { tape: self, id }).collect();
            let ctx = VarJvp {
                inputs: &input_vars,
                output: Var {
                    tape: self,
                    id: i as NodeId,
                },
                tangents: &input_tangents,
            };
            tangents[i] = op.jvp_var(&ctx);
        }
        tangents[n - 1]
    }
}

/// `grad`'s pass: adjoints are values on the tape and each op's recorded vjp computes
/// them, so the gradients can be differentiated again. Only the nodes through which the
/// output depends on a wanted input are visited.
struct Recorded<'t, T: Float> {
    tape: &'t Tape<T>,
    needed: Vec<bool>,
}

impl<'t, T: Float> Pass<T> for Recorded<'t, T> {
    type Adjoint = Var<'t, T>;

    fn wants(&self, _: &[Node<T>], p: NodeId) -> bool {
        self.needed[p as usize]
    }

    /// Keeping costs nothing (a handle), and a wanted input may be an op's result.
    fn keeps(&self, _: &Node<T>) -> bool {
        true
    }

    #[track_caller]
    fn vjp(
        &mut self,
        tape: &Tape<T>,
        i: usize,
        grad: Var<'t, T>,
        wants: &[bool],
    ) -> Contributions<Var<'t, T>> {
        // The op is cloned (a reference count) so that its rule can record on the tape
        // while it runs.
        let (op, inputs) = {
            let nodes = tape.nodes();
            let node = &nodes[i];
            (node.op.clone().expect("op node"), node.inputs.clone())
        };
        let tape = self.tape;
        let input_vars: SmallVec<[Var<'t, T>; 2]> =
            inputs.iter().map(|&id| Var { tape, id }).collect();
        let ctx = VarVjp {
            inputs: &input_vars,
            output: Var {
                tape,
                id: i as NodeId,
            },
            grad,
            wants,
        };
        op.vjp_var(&ctx)
    }

    /// The hooks see the gradient's value; a replacement is recorded as a constant, so
    /// no derivative flows through it, while `None` keeps the recorded gradient.
    fn hook(&mut self, tape: &Tape<T>, i: usize, grad: Var<'t, T>) -> Var<'t, T> {
        let name = || tape.nodes()[i].name();
        match tape.hooks().run(i as NodeId, &grad.value(), name) {
            Some(g) => self.tape.constant(g),
            None => grad,
        }
    }

    fn add(acc: &mut Var<'t, T>, g: Var<'t, T>) {
        *acc = *acc + g;
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The gradients of this one-element output with respect to `wrt`, as values
    /// recorded on the tape (PyTorch's `create_graph=True`): each can be used in further
    /// expressions and differentiated again, to any order. Each op's vjp is recorded as
    /// ordinary ops (the same rules `backward` computes with its fast kernels).
    ///
    /// A value that the output does not depend on gets a zero gradient. Only values
    /// recorded with [`Tape::param`] (or computed from one) carry a dependence: a
    /// [`Tape::constant`] and everything computed from constants alone is a constant.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.5, 2.0], [2]));
    /// let y = x.powi(3).sum(); // Σ x³
    /// let g = y.grad(&[x])[0]; // 3x², a value on the tape
    /// assert_eq!(g.value().data(), &[0.75, 12.0]);
    /// let h = g.sum().grad(&[x])[0]; // 6x
    /// assert_eq!(h.value().data(), &[3.0, 12.0]);
    /// ```
    ///
    /// Panics if the output has more than one element (use [`Var::grad_with`]).
    #[track_caller]
    pub fn grad(&self, wrt: &[Var<'t, T>]) -> Vec<Var<'t, T>> {
        let shape = self.single_element("grad", "grad_with(seed, ..)");
        let seed = self.tape.constant(Tensor::ones(&shape));
        self.tape.grad_from(self.id, seed, wrt)
    }

    /// The vector-Jacobian products `seedᵀ J` for `wrt`, recorded on the tape like
    /// [`Var::grad`]. The seed is itself a value on the tape (of this output's shape),
    /// so the result can also be differentiated with respect to it.
    ///
    /// Panics naming both shapes when `seed`'s shape differs from the output's.
    #[track_caller]
    pub fn grad_with(&self, seed: Var<'t, T>, wrt: &[Var<'t, T>]) -> Vec<Var<'t, T>> {
        let (shape, seed_shape) = (self.shape(), seed.shape());
        assert!(
            shape == seed_shape,
            "grad_with: seed shape {} differs from the output's shape {}",
            Dims(&seed_shape),
            Dims(&shape)
        );
        self.tape.grad_from(self.id, seed, wrt)
    }

    /// This node's index on its tape.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The tape this value is recorded on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// A copy of the value.
    ///
    /// Panics once [`Var::backward_releasing`] has released the value.
    #[track_caller]
    pub fn value(&self) -> Tensor<T> {
        self.tape.nodes()[self.id as usize].value(self.id).clone()
    }

    /// Calls `f` with a reference to the value, without copying it.
    ///
    /// Panics once [`Var::backward_releasing`] has released the value.
    #[track_caller]
    pub fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        f(self.tape.nodes()[self.id as usize].value(self.id))
    }

    /// The value's shape.
    #[track_caller]
    pub fn shape(&self) -> crate::Shape {
        self.with_value(|v| v.shape().into())
    }

    /// The value of a one-element result (a cost, say).
    #[track_caller]
    pub fn item(&self) -> T {
        self.tape.nodes()[self.id as usize].value(self.id).item()
    }

    /// Whether gradients flow into this value.
    pub fn requires_grad(&self) -> bool {
        self.tape.nodes()[self.id as usize].requires_grad
    }

    /// Backpropagates from this one-element output (seeded with 1) and returns the
    /// gradients of every parameter it depends on. The tape is not changed, so this can
    /// be called again with the same result.
    ///
    /// Panics if the output has more than one element: use [`Var::backward_with`].
    #[track_caller]
    pub fn backward(&self) -> Gradients<T> {
        let shape = self.single_element("backward", "backward_with(seed)");
        self.tape
            .backward_from(self.id, Tensor::ones(&shape), false)
    }

    /// [`Var::backward`] that releases the tape's values as it goes, for a tape that
    /// is swept once (a training step): each op's result is dropped as soon as the
    /// reverse sweep has passed its op, which was the last one to read it. This is
    /// PyTorch's `backward()` with `retain_graph=False`. The peak memory of backward
    /// falls by what the values of the ops already passed held; the gradients are the
    /// same bits as [`Var::backward`]'s.
    ///
    /// Afterwards every op result recorded up to and including this output has lost
    /// its value, whether the gradient went through it or not: reading one
    /// ([`Var::value`], [`Var::item`], [`Var::shape`]), recording an op on it or
    /// sweeping through it again ([`Var::backward`], [`Var::grad`]) panics with "its
    /// value was released by backward_releasing". Read the cost and any output you
    /// need first. Parameters and constants keep their values (they share the
    /// caller's storage), values recorded after this output are untouched, and
    /// gradients kept with [`Var::retain_grad`] are returned as usual.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.5, 2.0], [2]));
    /// let y = (x * x).sum();
    /// let cost = y.item(); // before the sweep
    /// let grads = y.backward_releasing();
    /// assert_eq!(grads[x].data(), &[1.0, 4.0]);
    /// assert_eq!(cost, 4.25);
    /// assert_eq!(x.value().data(), &[0.5, 2.0]); // a parameter keeps its value
    /// // y.item() would now panic: "node #2 (sum) was used after its value was
    /// // released by backward_releasing; ..."
    /// ```
    ///
    /// Panics if the output has more than one element.
    #[track_caller]
    pub fn backward_releasing(&self) -> Gradients<T> {
        let shape = self.single_element("backward_releasing", "backward_with(seed)");
        self.tape.backward_from(self.id, Tensor::ones(&shape), true)
    }

    /// The shape of this output, which `what` needs to have one element (else a panic
    /// at the caller's line that points to `instead`).
    #[track_caller]
    fn single_element(&self, what: &str, instead: &str) -> crate::Shape {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "{what}: output has shape {}; {what}() needs a single element, use {instead}",
            Dims(&shape)
        );
        shape
    }

    /// Backpropagates from this output with adjoint `seed` (same shape as the output):
    /// computes the vector-Jacobian product `seedᵀ J` for every parameter.
    ///
    /// Panics naming both shapes when `seed`'s shape differs from the output's.
    #[track_caller]
    pub fn backward_with(&self, seed: Tensor<T>) -> Gradients<T> {
        self.tape.backward_from(self.id, seed, false)
    }

    /// Keeps this intermediate value's gradient in the [`Gradients`] that `backward`
    /// returns (normally only parameters keep theirs). This is how to read "the desired
    /// nudge" `dC/da` of a hidden activation. Only values that depend on a parameter
    /// have a gradient.
    pub fn retain_grad(&self) {
        self.tape.nodes.borrow_mut()[self.id as usize].retain_grad = true;
    }

    /// The same value as a constant: gradients do not flow through it.
    pub fn detach(&self) -> Var<'t, T> {
        self.tape.constant(self.value())
    }
}

impl<T: Float> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes = self.tape.nodes();
        let node = &nodes[self.id as usize];
        if node.released {
            return write!(f, "Var #{} ({}) released", self.id, node.name());
        }
        write!(f, "Var #{} ({}) = {}", self.id, node.name(), node.value)
    }
}
