//! The reverse sweep, written once. Every reverse pass over a tensor tape walks the
//! nodes from the root down (append order is already a topological order), takes each
//! node's adjoint, asks its op's rule for the inputs' contributions and adds them into
//! the inputs' adjoints, the first moved in, later ones added. What an adjoint is, and
//! which rule of the op computes with it, is the [`Pass`]'s business: a buffer tensor
//! for `backward` (the fast vjp), a recorded `Var` for `grad` (the recorded vjp), or a
//! batch of per-example rows for per-sample gradients. Gradient hooks
//! ([`crate::Var::register_hook`]) run here too, as the walk reaches their node.

use crate::float::Float;
use crate::tape::{Node, NodeId, Tape};
use smallvec::SmallVec;

/// One optional contribution per input of a node, in input order.
pub(crate) type Contributions<A> = SmallVec<[Option<A>; 2]>;

/// What one reverse pass does at a node; [`reverse`] does the rest.
pub(crate) trait Pass<T: Float> {
    /// An adjoint: the sweep moves it, clones it where a node keeps its own, and adds
    /// two with [`Pass::add`].
    type Adjoint: Clone;

    /// Whether node `p`, an input of a visited node, is to get a contribution.
    fn wants(&self, nodes: &[Node<T>], p: NodeId) -> bool;

    /// Whether an op node keeps its adjoint once it has been visited (leaves always
    /// do: their adjoints are the result). Others are dropped as soon as they are used.
    fn keeps(&self, node: &Node<T>) -> bool;

    /// Node `i`'s contributions to its inputs from its adjoint `grad`, `None` at least
    /// where `wants` is false.
    fn vjp(
        &mut self,
        tape: &Tape<T>,
        i: usize,
        grad: Self::Adjoint,
        wants: &[bool],
    ) -> Contributions<Self::Adjoint>;

    /// Node `i`'s gradient hooks ([`crate::Var::register_hook`]) on its complete adjoint
    /// `grad`, called as the walk reaches a node that has some, before the adjoint is
    /// kept or passed on: what it returns is the node's adjoint from then on. The
    /// default runs none (the per-example pass, which hooks never reach: per-sample
    /// gradients take the loop when a hook is registered).
    fn hook(&mut self, tape: &Tape<T>, i: usize, grad: Self::Adjoint) -> Self::Adjoint {
        let _ = (tape, i);
        grad
    }

    /// Called for every op node once the sweep has passed it, whether an adjoint
    /// reached it or not.
    fn passed(&mut self, tape: &Tape<T>, i: usize) {
        let _ = (tape, i);
    }

    /// `acc += g`.
    fn add(acc: &mut Self::Adjoint, g: Self::Adjoint);
}

/// The reverse sweep from node `root` with adjoint `seed` (`None`: nothing flows):
/// returns every node's adjoint that was kept (leaves', and those [`Pass::keeps`]).
///
/// Only the inputs the pass wants receive anything, so a pass that wants only the
/// nodes leading to some inputs ([`reaching`]) visits nothing else.
///
/// A node's adjoint is complete when the walk reaches it (every consumer comes later
/// on the tape), which is where [`Pass::hook`] runs. A tape without hooks costs one
/// check of its map here, and no lookup per node.
#[track_caller]
pub(crate) fn reverse<T: Float, P: Pass<T>>(
    tape: &Tape<T>,
    root: usize,
    seed: Option<P::Adjoint>,
    pass: &mut P,
) -> Vec<Option<P::Adjoint>> {
    let mut adjoints: Vec<Option<P::Adjoint>> = Vec::with_capacity(root + 1);
    adjoints.resize_with(root + 1, || None);
    adjoints[root] = seed;
    let hooked = !tape.hooks().is_empty();
    for i in (0..=root).rev() {
        let mut grad = adjoints[i].take();
        if hooked && tape.hooks().on(i as NodeId) {
            // No borrow of the nodes is held: a hook is user code.
            grad = grad.map(|g| pass.hook(tape, i, g));
        }
        let visit = {
            let nodes = tape.nodes();
            let node = &nodes[i];
            // A leaf keeps its adjoint: it is the result.
            match (&node.op, grad) {
                (None, grad) => {
                    adjoints[i] = grad;
                    continue;
                }
                (Some(_), None) => None,
                (Some(_), Some(grad)) => {
                    if pass.keeps(node) {
                        adjoints[i] = Some(grad.clone()); // shares storage: no copy
                    }
                    let wants: SmallVec<[bool; 2]> =
                        node.inputs.iter().map(|&p| pass.wants(&nodes, p)).collect();
                    Some((grad, wants, node.inputs.clone()))
                }
            }
        };
        if let Some((grad, wants, inputs)) = visit {
            if wants.contains(&true) {
                let grads = pass.vjp(tape, i, grad, &wants);
                // A vjp must answer for every input; a short list would drop gradients.
                if grads.len() != inputs.len() {
                    wrong_count(tape, i);
                }
                for ((&p, &wanted), g) in inputs.iter().zip(&wants).zip(grads) {
                    let (Some(g), true) = (g, wanted) else {
                        continue;
                    };
                    match &mut adjoints[p as usize] {
                        // The first contribution is moved in, not added to zeros.
                        slot @ None => *slot = Some(g),
                        Some(acc) => P::add(acc, g),
                    }
                }
            }
        }
        pass.passed(tape, i);
    }
    adjoints
}

#[cold]
#[track_caller]
fn wrong_count<T: Float>(tape: &Tape<T>, i: usize) -> ! {
    panic!(
        "vjp of {} returned the wrong number of gradients",
        tape.nodes()[i].name()
    )
}

/// `reached[i]`: node `i` is one of `from` or has an input that is reached, for the
/// first `n` nodes of a graph whose node `i`'s inputs are `inputs(i)` (all before
/// `i`). The nodes through which an output depends on some of `from`: the pruning of
/// both tapes' recorded sweeps, and per-sample gradients' "depends on a parameter".
pub(crate) fn reaching<I: IntoIterator<Item = usize>>(
    n: usize,
    from: impl IntoIterator<Item = usize>,
    inputs: impl Fn(usize) -> I,
) -> Vec<bool> {
    let mut reached = vec![false; n];
    let mut first = n;
    for i in from {
        if i < n {
            reached[i] = true;
            first = first.min(i);
        }
    }
    for i in first..n {
        if !reached[i] && inputs(i).into_iter().any(|p| reached[p]) {
            reached[i] = true;
        }
    }
    reached
}
