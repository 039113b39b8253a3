//! Ops that move data without arithmetic: reshape, permute/transpose, broadcast,
//! row selection (gather) and concatenation. Their vjps move the adjoint back.

use super::{BatchView, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::shape::{broadcast_shapes, check_axis, numel, split_at_axis, Dims, Shape};
use crate::tape::Var;
use crate::tensor::{broadcast_to, permute, sum_to_shape, Tensor};
use smallvec::{smallvec, SmallVec};
use std::rc::Rc;

/// The same elements under the output's shape ([`Var::reshape`]).
pub(crate) struct Reshape;

impl<T: Float> Rule<T> for Reshape {
    fn name(&self) -> String {
        "reshape".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(ctx.grad.clone().reshape(ctx.inputs[0].shape()))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(ctx.grad.reshape(ctx.inputs[0].shape()))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.reshape(ctx.output.shape()))
    }
    /// Row-major: a reshape keeping the first axis keeps each example's block.
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        batch.leading(batch.inputs[0].shape)
    }
}

/// Output axis `d` is input axis `perm[d]` ([`Var::permute`]).
pub(crate) struct Permute(Shape);

impl<T: Float> Rule<T> for Permute {
    fn name(&self) -> String {
        format!("permute{:?}", self.0.as_slice())
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(permute(ctx.grad, &inverse(&self.0)))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(ctx.grad.permute(&inverse(&self.0)))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.permute(&self.0))
    }
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        self.0[0] == 0
    }
}

/// The permutation back (the adjoint's).
fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; perm.len()];
    for (d, &p) in perm.iter().enumerate() {
        inverse[p] = d;
    }
    inverse
}

/// Repeats along broadcast axes ([`Var::broadcast_to`]).
pub(crate) struct BroadcastTo;

impl<T: Float> Rule<T> for BroadcastTo {
    fn name(&self) -> String {
        "broadcast_to".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(sum_to_shape(ctx.grad.clone(), ctx.inputs[0].shape()))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(ctx.grad.sum_to(&ctx.inputs[0].shape()))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.broadcast_to(ctx.output.shape()))
    }
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        let from = batch.inputs[0].shape;
        batch.leading(from) && from.len() == batch.output.len()
    }
}

/// The slices `indices` along `axis` ([`Var::index_select`]).
/// `indices` as runs of consecutive values, `(first, count)` in order: a band of columns
/// is one run, copied as one block rather than element by element.
fn runs(indices: &[usize]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in indices {
        match runs.last_mut() {
            Some((start, count)) if *start + *count == i => *count += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
}

pub(crate) struct IndexSelect {
    axis: usize,
    indices: Rc<[usize]>,
}

impl<T: Float> Rule<T> for IndexSelect {
    fn name(&self) -> String {
        format!("index_select(axis {})", self.axis)
    }
    /// Scatter-adds the selected slices' adjoints back to the rows they came from.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let x = ctx.inputs[0];
        let (outer, len, inner) = split_at_axis(x.shape(), self.axis);
        let mut out = Tensor::zeros(x.shape());
        let (dst, g) = (out.data_mut(), ctx.grad.data());
        for o in 0..outer {
            // A run of consecutive indices adds one contiguous block (each element of it
            // once, in the same order as index by index).
            let mut k = 0;
            for (start, count) in runs(&self.indices) {
                let from = &g[(o * self.indices.len() + k) * inner..][..count * inner];
                let to = &mut dst[(o * len + start) * inner..][..count * inner];
                for (t, &f) in to.iter_mut().zip(from) {
                    *t += f;
                }
                k += count;
            }
        }
        smallvec![Some(out)]
    }
    /// Recorded: the selected slices' adjoints scattered back to where they came from.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        let (outer, len, inner) = split_at_axis(&shape, self.axis);
        let mut to = Vec::with_capacity(outer * self.indices.len() * inner);
        for o in 0..outer {
            for &i in self.indices.iter() {
                to.extend((0..inner).map(|j| (o * len + i) * inner + j));
            }
        }
        smallvec![Some(ctx.grad.scatter_add(Rc::from(to), &shape))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.index_select(self.axis, &self.indices))
    }
    fn keeps_rows(&self, _: &BatchView<'_>) -> bool {
        self.axis != 0
    }
}

/// The inputs joined along `axis` ([`Var::concat`]).
pub(crate) struct Concat {
    axis: usize,
}

impl<T: Float> Rule<T> for Concat {
    fn name(&self) -> String {
        format!("concat(axis {})", self.axis)
    }
    /// Each input gets its own slice of the adjoint back.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let (outer, total, inner) = split_at_axis(ctx.output.shape(), self.axis);
        let g = ctx.grad.data();
        let mut start = 0;
        let mut grads: InputGrads<T> = SmallVec::new();
        for (input, &wanted) in ctx.inputs.iter().zip(ctx.wants) {
            let len = input.shape()[self.axis];
            if wanted {
                let mut data = Vec::with_capacity(input.numel());
                for o in 0..outer {
                    data.extend_from_slice(
                        &g[(o * total + start) * inner..(o * total + start + len) * inner],
                    );
                }
                grads.push(Some(Tensor::from_vec(data, input.shape())));
            } else {
                grads.push(None);
            }
            start += len;
        }
        grads
    }
    /// Recorded: each input gets its slice of the adjoint.
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let mut start = 0;
        let mut grads: VarGrads<'t, T> = SmallVec::new();
        for (input, &wanted) in ctx.inputs.iter().zip(ctx.wants) {
            let len = input.shape()[self.axis];
            let range: Vec<usize> = (start..start + len).collect();
            grads.push(wanted.then(|| ctx.grad.index_select(self.axis, &range)));
            start += len;
        }
        grads
    }
    /// The tangents concatenated (zeros for the inputs without one).
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        if ctx.tangents.iter().all(Option::is_none) {
            return None;
        }
        let tape = ctx.output.tape();
        let parts: Vec<Var<'t, T>> = ctx
            .inputs
            .iter()
            .zip(ctx.tangents)
            .map(|(x, t)| t.unwrap_or_else(|| tape.constant(Tensor::zeros(x.shape()))))
            .collect();
        Some(Var::concat(&parts, self.axis))
    }
    fn keeps_rows(&self, batch: &BatchView<'_>) -> bool {
        self.axis != 0 && (0..batch.inputs.len()).all(|p| batch.rows(p))
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Sums over the axes that broadcasting added or stretched, back to `shape` (which
    /// broadcasts to this value's shape): the adjoint of a broadcast.
    pub(crate) fn sum_to(self, shape: &[usize]) -> Var<'t, T> {
        let from = self.shape();
        if from.as_slice() == shape {
            return self;
        }
        let lead = from.len() - shape.len();
        let axes: Vec<usize> = (0..from.len())
            .filter(|&d| d < lead || (shape[d - lead] == 1 && from[d] != 1))
            .collect();
        self.sum_axes(&axes, false).reshape(shape)
    }

    /// The same elements under a new shape with as many elements.
    ///
    /// Panics naming both shapes when the element counts differ.
    #[track_caller]
    pub fn reshape(self, shape: impl AsRef<[usize]>) -> Var<'t, T> {
        let shape = shape.as_ref();
        let from = self.shape();
        assert!(
            numel(shape) == numel(&from),
            "reshape: {} cannot become {}: element counts differ",
            Dims(&from),
            Dims(shape)
        );
        self.tape
            .record(&[self], |x, _| (x[0].clone().reshape(shape), Reshape))
    }

    /// Reorders the axes: output axis `d` is input axis `perm[d]`.
    ///
    /// Panics naming the shape when `perm` is not a permutation of its axes.
    #[track_caller]
    pub fn permute(self, perm: &[usize]) -> Var<'t, T> {
        let shape = self.shape();
        let rank = shape.len();
        let mut seen = vec![false; rank];
        let valid = perm.len() == rank
            && perm
                .iter()
                .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true));
        assert!(
            valid,
            "permute: {:?} is not a permutation of the axes of {}",
            perm,
            Dims(&shape)
        );
        self.tape.record(&[self], |x, _| {
            (permute(x[0], perm), Permute(Shape::from_slice(perm)))
        })
    }

    /// Swaps two axes.
    #[track_caller]
    pub fn transpose(self, a: usize, b: usize) -> Var<'t, T> {
        let shape = self.shape();
        check_axis("transpose", a, &shape);
        check_axis("transpose", b, &shape);
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two axes (the matrix transpose).
    #[track_caller]
    pub fn t(self) -> Var<'t, T> {
        let rank = self.shape().len();
        assert!(
            rank >= 2,
            "t: needs at least 2 dimensions, got {}",
            Dims(&self.shape())
        );
        self.transpose(rank - 2, rank - 1)
    }

    /// Repeats the value along broadcast dimensions to reach `shape`.
    ///
    /// Panics naming both shapes when it does not broadcast to `shape`.
    #[track_caller]
    pub fn broadcast_to(self, shape: impl AsRef<[usize]>) -> Var<'t, T> {
        let shape = shape.as_ref();
        let from = self.shape();
        let ok = broadcast_shapes("broadcast_to", &from, shape).map(|s| s.as_slice() == shape);
        assert!(
            matches!(ok, Ok(true)),
            "broadcast_to: {} does not broadcast to {}",
            Dims(&from),
            Dims(shape)
        );
        self.tape
            .record(&[self], |x, _| (broadcast_to(x[0], shape), BroadcastTo))
    }

    /// Picks the slices `indices` along `axis` (a gather; indices may repeat).
    ///
    /// Panics naming the shape when the axis or an index is out of range.
    #[track_caller]
    pub fn index_select(self, axis: usize, indices: &[usize]) -> Var<'t, T> {
        let shape = self.shape();
        check_axis("index_select", axis, &shape);
        if let Some(&bad) = indices.iter().find(|&&i| i >= shape[axis]) {
            panic!(
                "index_select: index {bad} is out of range for axis {axis} of {}",
                Dims(&shape)
            );
        }
        self.tape.record(&[self], |x, _| {
            let x = x[0];
            let (outer, len, inner) = split_at_axis(x.shape(), axis);
            let src = x.data();
            let mut data = Vec::with_capacity(outer * indices.len() * inner);
            let runs = runs(indices);
            for o in 0..outer {
                for &(start, count) in &runs {
                    data.extend_from_slice(&src[(o * len + start) * inner..][..count * inner]);
                }
            }
            let mut shape: Shape = x.shape().into();
            shape[axis] = indices.len();
            (
                Tensor::from_vec(data, shape),
                IndexSelect {
                    axis,
                    indices: indices.into(),
                },
            )
        })
    }

    /// The rows `indices` of a matrix (or the slices along the first axis).
    #[track_caller]
    pub fn select_rows(self, indices: &[usize]) -> Var<'t, T> {
        self.index_select(0, indices)
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    ///
    /// Panics naming the shapes when they differ outside `axis`.
    #[track_caller]
    pub fn concat(parts: &[Var<'t, T>], axis: usize) -> Var<'t, T> {
        assert!(!parts.is_empty(), "concat: needs at least one tensor");
        let tape = parts[0].tape;
        let first = parts[0].shape();
        check_axis("concat", axis, &first);
        for &part in &parts[1..] {
            tape.check_owns(part);
            let s = part.shape();
            let agree = s.len() == first.len()
                && s.iter()
                    .zip(&first)
                    .enumerate()
                    .all(|(d, (a, b))| d == axis || a == b);
            assert!(
                agree,
                "concat: {} and {} differ outside axis {axis}",
                Dims(&first),
                Dims(&s)
            );
        }
        tape.record(parts, |xs, _| {
            let first = xs[0].shape();
            let total: usize = xs.iter().map(|x| x.shape()[axis]).sum();
            let (outer, _, inner) = split_at_axis(first, axis);
            let mut data = Vec::with_capacity(outer * total * inner);
            for o in 0..outer {
                for x in xs {
                    let len = x.shape()[axis];
                    data.extend_from_slice(&x.data()[o * len * inner..(o + 1) * len * inner]);
                }
            }
            let mut shape: Shape = first.into();
            shape[axis] = total;
            (Tensor::from_vec(data, shape), Concat { axis })
        })
    }
}
