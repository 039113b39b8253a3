//! Recomputed blocks (what PyTorch calls activation or gradient checkpointing): a block
//! of ops whose intermediate values are not kept on the tape but computed again when a
//! gradient needs them. Memory for a second forward pass of the block.

use super::{InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::shape::Dims;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use std::rc::Rc;

/// A block's forward function: it builds its output on the tape it is given, from
/// that tape's copies of the block's inputs.
pub(crate) type Block<T> = dyn for<'s> Fn(&'s Tape<T>, &[Var<'s, T>]) -> Var<'s, T>;

/// Runs `block` on a scratch tape holding `values` (as parameters where `wants` says
/// so, else constants) and hands its output, on that tape, to `then`.
fn run_scratch<T: Float, R>(
    block: &Block<T>,
    values: &[&Tensor<T>],
    wants: impl Fn(usize) -> bool,
    then: impl for<'s> FnOnce(&'s Tape<T>, &[Var<'s, T>], Var<'s, T>) -> R,
) -> R {
    let scratch = Tape::new();
    let xs: Vec<Var<'_, T>> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if wants(i) {
                scratch.param(v)
            } else {
                scratch.constant(v)
            }
        })
        .collect();
    let y = block(&scratch, &xs);
    scratch.check_owns(y);
    then(&scratch, &xs, y)
}

/// The block again on the outer tape, on an identity of each input (so that the block's
/// nodes come after this one and each input position has its own gradient, even when
/// one value is passed twice).
fn rerun<'t, T: Float>(block: &Block<T>, inputs: &[Var<'t, T>]) -> (Vec<Var<'t, T>>, Var<'t, T>) {
    let proxies: Vec<Var<'t, T>> = inputs.iter().map(|x| x.reshape(x.shape())).collect();
    let tape = inputs[0].tape();
    let y = block(tape, &proxies);
    tape.check_owns(y);
    (proxies, y)
}

/// A recorded block ([`Tape::recompute`]): only its output is kept.
pub(crate) struct Recompute<T: Float>(Rc<Block<T>>);

impl<T: Float> Rule<T> for Recompute<T> {
    fn name(&self) -> String {
        "recompute".into()
    }
    /// Fast vjp: the block again on a scratch tape that records what its backward needs,
    /// then that tape's releasing reverse sweep from the output. The scratch tape, with
    /// what is left of the recomputed intermediates, is dropped before the outer sweep
    /// goes on.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        self.vjp_owned(ctx.inputs, ctx.wants, ctx.output.clone(), ctx.grad.clone())
    }
    fn takes_owned(&self) -> bool {
        true
    }
    /// [`Rule::vjp`] given the block's output and its adjoint by value (clones share
    /// storage): a releasing outer sweep hands over its own, so that both are freed as
    /// soon as the inner sweep has passed the block's last op, not after the whole block.
    fn vjp_owned(
        &self,
        inputs: &[&Tensor<T>],
        wants: &[bool],
        output: Tensor<T>,
        grad: Tensor<T>,
    ) -> InputGrads<T> {
        run_scratch(
            &*self.0,
            inputs,
            |i| wants[i],
            |scratch, xs, y| {
                // The recomputed output equals the kept one; sharing the kept one frees the
                // copy for the rest of the block's backward.
                scratch.share_value(y, output);
                // The releasing sweep drops each recomputed value once the sweep has passed
                // it, so at most the rest of the block is live beside the outer tape.
                let mut grads = scratch.backward_from(y.id(), grad, true);
                xs.iter()
                    .zip(wants)
                    .map(|(&x, &wanted)| if wanted { grads.take(x) } else { None })
                    .collect()
            },
        )
    }
    /// Recorded vjp (for [`Var::grad`]): the block recorded again on the outer tape, then
    /// the recorded reverse sweep through those nodes, so the gradient is differentiable
    /// again. Differentiating it keeps the block's intermediates on the tape.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let (proxies, y) = rerun(&*self.0, ctx.inputs);
        let wrt: Vec<Var<'t, T>> = proxies
            .iter()
            .zip(ctx.wants)
            .filter(|(_, &w)| w)
            .map(|(&p, _)| p)
            .collect();
        let mut grads = y.tape().grad_sweep(y.id(), ctx.grad, &wrt).into_iter();
        ctx.wants
            .iter()
            .map(|&w| if w { grads.next().flatten() } else { None })
            .collect()
    }
    /// Tangent rule: forward mode through the block recorded again on the outer tape.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (proxies, y) = rerun(&*self.0, ctx.inputs);
        let seeds: Vec<_> = proxies
            .iter()
            .zip(ctx.tangents)
            .filter_map(|(&p, &t)| Some((p, t?)))
            .collect();
        y.tape().jvp_from(y.id(), &seeds)
    }
}

impl<T: Float> Tape<T> {
    /// Records `block` applied to `inputs` as one node that keeps only the block's
    /// output: the values computed inside the block are dropped after the forward pass
    /// and computed again, by a second run of `block`, when a gradient goes through it.
    /// This is what PyTorch calls activation (or gradient) checkpointing: it trades
    /// about one more forward pass of the block for the memory its intermediate values
    /// would hold on the tape (see [`Tape::value_bytes`]).
    ///
    /// `block` gets a tape and its own copies of the inputs and builds the output on
    /// that tape; it is run once here (on a scratch tape, recording no gradient state),
    /// once more by each [`Var::backward`] that reaches it (on a scratch tape dropped
    /// right after), and on this tape by [`Var::grad`] and forward mode
    /// ([`crate::func::jvp`]), whose results must be differentiable again, so there the
    /// intermediates are kept. It must compute the same function each time, and cannot
    /// capture `Var`s of this tape: everything it reads from the tape is an input.
    ///
    /// Gradients are bit for bit those of the same ops recorded directly, at the same
    /// thread count, when each input that the block reads more than once has no other
    /// use outside the block (a parameter read only by the block, the input of a chain
    /// of layers). Otherwise the block's contributions to that input's gradient are
    /// added up first and then to the rest, which can round differently. Second
    /// derivatives through the recorded gradient agree to rounding: the unmarked sweep
    /// adds the two adjoints of each node of the block before its vjp, the recomputed
    /// one applies the vjps separately and adds at the block's inputs.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor, Var};
    ///
    /// fn block<'s>(_: &'s Tape<f64>, p: &[Var<'s, f64>]) -> Var<'s, f64> {
    ///     p[0].matmul(p[1]).relu().matmul(p[1]).tanh()
    /// }
    /// let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25], [2, 2]);
    /// let w = Tensor::from_vec(vec![0.3, -0.2, 0.1, 0.7], [2, 2]);
    ///
    /// let plain = Tape::new();
    /// let (xp, wp) = (plain.constant(&x), plain.param(&w));
    /// let g_plain = block(&plain, &[xp, wp]).sum().backward();
    ///
    /// let tape = Tape::new();
    /// let (xr, wr) = (tape.constant(&x), tape.param(&w));
    /// let y = tape.recompute(block, &[xr, wr]).sum();
    /// assert_eq!(tape.len(), plain.len() - 3); // the matmul, relu and matmul are not kept
    /// assert_eq!(y.backward()[wr].data(), g_plain[wp].data());
    /// ```
    ///
    /// Panics, at the caller's line, when an input belongs to another tape.
    #[track_caller]
    pub fn recompute<'t, F>(&'t self, block: F, inputs: &[Var<'t, T>]) -> Var<'t, T>
    where
        F: for<'s> Fn(&'s Tape<T>, &[Var<'s, T>]) -> Var<'s, T> + 'static,
    {
        assert!(
            !inputs.is_empty(),
            "recompute: a block needs at least one input"
        );
        let block: Rc<Block<T>> = Rc::new(block);
        self.record(inputs, |values, _| {
            // Recomputed during backward, so nothing is recorded for it here.
            let value = run_scratch(&*block, values, |_| false, |_, _, y| y.value());
            (value, Recompute(block))
        })
    }

    /// Bytes of the tensor values the tape holds, each buffer counted once (a reshape
    /// or a parameter bound by reference shares its input's buffer). What the ops keep
    /// beside the values for their backward (pooling's argmax, ReLU's mask) is not
    /// counted. A measure of what [`Tape::recompute`] saves. After
    /// [`Var::backward_releasing`] only the parameters, the constants and values
    /// recorded after its output are left.
    pub fn value_bytes(&self) -> usize {
        let nodes = self.nodes();
        let mut seen = std::collections::HashSet::new();
        nodes
            .iter()
            .filter(|n| seen.insert(n.value.data().as_ptr()))
            .map(|n| n.value.numel() * std::mem::size_of::<T>())
            .sum()
    }

    /// Makes `y` (the output of a recomputed block on its scratch tape) hold `kept`, the
    /// equal value the outer tape already holds, so the recomputed copy is freed.
    fn share_value(&self, y: Var<'_, T>, kept: Tensor<T>) {
        let mut nodes = self.nodes_mut();
        let node = &mut nodes[y.id() as usize];
        assert!(
            node.value.shape() == kept.shape(),
            "recompute: the block's output has shape {} on the second run, {} on the first; \
             a recomputed block must compute the same function each time",
            Dims(node.value.shape()),
            Dims(kept.shape())
        );
        node.value = kept;
    }
}
