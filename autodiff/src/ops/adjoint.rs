//! Ops that exist because other ops' gradients are made of them: a gather and its
//! scatter, the ReLU's gate, a convolution's two gradients (the input's is a transposed
//! convolution) and average pooling's adjoint. Recording a vjp as ops
//! ([`Var::grad`](crate::Var::grad)) needs each of them as an op with a vjp of its own;
//! each pair is the other's adjoint, so the set is closed under differentiation.

use super::conv::AvgPool2d;
use super::{add_tangents, InputGrads, Rule, VarGrads, VarJvp, VarVjp, VjpContext};
use crate::float::Float;
use crate::kernels::conv::{self, Geometry, Pool};
use crate::shape::{numel, Dims};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;
use std::rc::Rc;

/// Marks "no source" in a gather's indices (reads 0) and "dropped" in a scatter's.
pub(crate) const NOWHERE: usize = usize::MAX;

fn gather<T: Float>(x: &[T], indices: &[usize], shape: &[usize]) -> Tensor<T> {
    let data = indices
        .iter()
        .map(|&i| if i == NOWHERE { T::zero() } else { x[i] })
        .collect();
    Tensor::from_vec(data, shape)
}

fn scatter_add<T: Float>(x: &[T], indices: &[usize], shape: &[usize]) -> Tensor<T> {
    let mut out = vec![T::zero(); numel(shape)];
    for (&i, &v) in indices.iter().zip(x) {
        if i != NOWHERE {
            out[i] += v;
        }
    }
    Tensor::from_vec(out, shape)
}

fn gate<T: Float>(x: &Tensor<T>, open: &[bool]) -> Tensor<T> {
    let data = x
        .data()
        .iter()
        .zip(open)
        .map(|(&v, &o)| if o { v } else { T::zero() })
        .collect();
    Tensor::from_vec(data, x.shape())
}

/// `x.flat[indices]` (an index of `NOWHERE` reads 0), under any shape.
pub(crate) struct Gather {
    indices: Rc<[usize]>,
}

impl<T: Float> Rule<T> for Gather {
    fn name(&self) -> String {
        "gather".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let shape = ctx.inputs[0].shape();
        smallvec![Some(scatter_add(ctx.grad.data(), &self.indices, shape))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        smallvec![Some(ctx.grad.scatter_add(self.indices.clone(), &shape))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(t.gather(self.indices.clone(), &ctx.output.shape()))
    }
}

/// Zeros of the output's shape with `x.flat[i]` added at `indices[i]` (`NOWHERE` drops
/// it): the vjp of `Gather`, and `Gather` is its vjp.
pub(crate) struct ScatterAdd {
    indices: Rc<[usize]>,
}

impl<T: Float> Rule<T> for ScatterAdd {
    fn name(&self) -> String {
        "scatter_add".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let shape = ctx.inputs[0].shape();
        smallvec![Some(gather(ctx.grad.data(), &self.indices, shape))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let shape = ctx.inputs[0].shape();
        smallvec![Some(ctx.grad.gather(self.indices.clone(), &shape))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(t.scatter_add(self.indices.clone(), &ctx.output.shape()))
    }
}

/// `x` where `open`, else 0: the ReLU's vjp (a choice, so a NaN does not leak).
pub(crate) struct Gate {
    open: Rc<[bool]>,
}

impl<T: Float> Rule<T> for Gate {
    fn name(&self) -> String {
        "gate".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        smallvec![Some(gate(ctx.grad, &self.open))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(ctx.grad.gated(self.open.clone()))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        Some(ctx.tangents[0]?.gated(self.open.clone()))
    }
}

/// A convolution's input gradient from the output's adjoint and the weights (inputs
/// `dy`, `w`): a transposed convolution.
pub(crate) struct ConvGradInput(Geometry);

impl<T: Float> Rule<T> for ConvGradInput {
    fn name(&self) -> String {
        "conv2d_grad_input".into()
    }
    /// d⟨G, dx(dy, w)⟩: by `dy` a convolution of G with `w`; by `w` the weight gradient
    /// with G in the input's place.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let g = &self.0;
        let (dy, w, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let d_dy = ctx.wants[0].then(|| {
            let (out, _) = conv::conv2d_forward(g, gg.data(), w.data(), None, false);
            Tensor::from_vec(out, dy.shape())
        });
        let d_w = ctx.wants[1].then(|| {
            Tensor::from_vec(
                conv::conv2d_grad_weight(g, dy.data(), gg.data(), None),
                w.shape(),
            )
        });
        smallvec![d_dy, d_w]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let g = &self.0;
        let (dy, w, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        smallvec![
            ctx.wants[0].then(|| gg.conv2d(w, g.opts)),
            ctx.wants[1].then(|| dy.conv_grad_weight(gg, *g)),
        ]
    }
    /// Bilinear (as is the weight gradient): the tangent is the sum over the two
    /// inputs' tangents.
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (dy, w) = (ctx.inputs[0], ctx.inputs[1]);
        let a = ctx.tangents[0].map(|t| t.conv_grad_input(w, self.0));
        let b = ctx.tangents[1].map(|t| dy.conv_grad_input(t, self.0));
        add_tangents(a, b)
    }
}

/// A convolution's weight gradient from the output's adjoint and the input (inputs
/// `dy`, `x`).
pub(crate) struct ConvGradWeight(Geometry);

impl<T: Float> Rule<T> for ConvGradWeight {
    fn name(&self) -> String {
        "conv2d_grad_weight".into()
    }
    /// d⟨G, dw(dy, x)⟩: by `dy` a convolution of `x` with G as the weights; by `x` the
    /// input gradient with G as the weights.
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let g = &self.0;
        let (dy, x, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        let d_dy = ctx.wants[0].then(|| {
            let (out, _) = conv::conv2d_forward(g, x.data(), gg.data(), None, false);
            Tensor::from_vec(out, dy.shape())
        });
        let d_x = ctx.wants[1]
            .then(|| Tensor::from_vec(conv::conv2d_grad_input(g, dy.data(), gg.data()), x.shape()));
        smallvec![d_dy, d_x]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        let g = &self.0;
        let (dy, x, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
        smallvec![
            ctx.wants[0].then(|| x.conv2d(gg, g.opts)),
            ctx.wants[1].then(|| dy.conv_grad_input(gg, *g)),
        ]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let (dy, x) = (ctx.inputs[0], ctx.inputs[1]);
        let a = ctx.tangents[0].map(|t| t.conv_grad_weight(x, self.0));
        let b = ctx.tangents[1].map(|t| dy.conv_grad_weight(t, self.0));
        add_tangents(a, b)
    }
}

/// Average pooling's adjoint: each output's adjoint spread over its window.
pub(crate) struct AvgPoolGrad(Pool);

impl<T: Float> Rule<T> for AvgPoolGrad {
    fn name(&self) -> String {
        "avg_pool2d_grad".into()
    }
    fn vjp(&self, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
        let out = conv::avg_pool(&self.0, ctx.grad.data());
        smallvec![Some(Tensor::from_vec(out, ctx.inputs[0].shape()))]
    }
    fn vjp_var<'t>(&self, ctx: &VarVjp<'_, 't, T>) -> VarGrads<'t, T> {
        smallvec![Some(ctx.grad.avg_pool_with(self.0))]
    }
    fn jvp_var<'t>(&self, ctx: &VarJvp<'_, 't, T>) -> Option<Var<'t, T>> {
        let t = ctx.tangents[0]?;
        Some(t.avg_pool_grad_with(self.0, &ctx.output.shape()))
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `self.flat[indices]` under `shape` (`NOWHERE` reads 0).
    pub(crate) fn gather(self, indices: Rc<[usize]>, shape: &[usize]) -> Var<'t, T> {
        assert_eq!(indices.len(), numel(shape), "gather: index count and shape");
        self.tape.record(&[self], |x, _| {
            (gather(x[0].data(), &indices, shape), Gather { indices })
        })
    }

    /// Zeros of `shape` with `self.flat[i]` added at `indices[i]`.
    pub(crate) fn scatter_add(self, indices: Rc<[usize]>, shape: &[usize]) -> Var<'t, T> {
        self.tape.record(&[self], |x, _| {
            assert_eq!(indices.len(), x[0].numel(), "scatter_add: index count");
            (
                scatter_add(x[0].data(), &indices, shape),
                ScatterAdd { indices },
            )
        })
    }

    /// `self` where `open`, else 0.
    pub(crate) fn gated(self, open: Rc<[bool]>) -> Var<'t, T> {
        self.tape
            .record(&[self], |x, _| (gate(x[0], &open), Gate { open }))
    }

    /// A convolution's input gradient: `self` is the output's adjoint `dy`.
    pub(crate) fn conv_grad_input(self, w: Var<'t, T>, g: Geometry) -> Var<'t, T> {
        self.tape.record(&[self, w], |v, _| {
            let dx = conv::conv2d_grad_input(&g, v[0].data(), v[1].data());
            (Tensor::from_vec(dx, [g.n, g.c, g.h, g.w]), ConvGradInput(g))
        })
    }

    /// A convolution's weight gradient: `self` is the output's adjoint `dy`.
    pub(crate) fn conv_grad_weight(self, x: Var<'t, T>, g: Geometry) -> Var<'t, T> {
        self.tape.record(&[self, x], |v, _| {
            let dw = conv::conv2d_grad_weight(&g, v[0].data(), v[1].data(), None);
            let shape = [g.o, g.c / g.opts.groups, g.kh, g.kw];
            (Tensor::from_vec(dw, shape), ConvGradWeight(g))
        })
    }

    /// Average pooling with a pooling already worked out.
    pub(crate) fn avg_pool_with(self, p: Pool) -> Var<'t, T> {
        self.tape.record(&[self], move |v, _| {
            let out = conv::avg_pool(&p, v[0].data());
            let s = v[0].shape();
            (
                Tensor::from_vec(out, [s[0], s[1], p.oh, p.ow]),
                AvgPool2d(p),
            )
        })
    }

    /// Average pooling's adjoint, back to the pooled input's `shape`.
    pub(crate) fn avg_pool_grad_with(self, p: Pool, shape: &[usize]) -> Var<'t, T> {
        assert!(
            shape.len() == 4 && shape[2] == p.h && shape[3] == p.w,
            "avg_pool2d_grad: shape {} does not fit the pooling",
            Dims(shape)
        );
        self.tape.record(&[self], move |v, _| {
            let dx = conv::avg_pool_grad(&p, v[0].data());
            (Tensor::from_vec(dx, shape), AvgPoolGrad(p))
        })
    }
}
