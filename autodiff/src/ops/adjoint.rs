//! Ops that exist because other ops' gradients are made of them: a gather and its
//! scatter, the ReLU's gate, a convolution's two gradients (the input's is a transposed
//! convolution) and average pooling's adjoint. Recording a vjp as ops
//! ([`Var::grad`](crate::Var::grad)) needs each of them as an op with a vjp of its own;
//! each pair is the other's adjoint, so the set is closed under differentiation.

use super::{InputGrads, Op, VarGrads, VarJvp, VarVjp, VjpContext};
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

pub(crate) fn gather_vjp<T: Float>(indices: &[usize], ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    let shape = ctx.inputs[0].shape();
    smallvec![Some(scatter_add(ctx.grad.data(), indices, shape))]
}

pub(crate) fn scatter_add_vjp<T: Float>(
    indices: &[usize],
    ctx: &VjpContext<'_, T>,
) -> InputGrads<T> {
    let shape = ctx.inputs[0].shape();
    smallvec![Some(gather(ctx.grad.data(), indices, shape))]
}

pub(crate) fn gate_vjp<T: Float>(open: &[bool], ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    smallvec![Some(gate(ctx.grad, open))]
}

/// d⟨G, dx(dy, w)⟩: by `dy` a convolution of G with `w`; by `w` the weight gradient
/// with G in the input's place.
pub(crate) fn conv_grad_input_vjp<T: Float>(
    g: &Geometry,
    ctx: &VjpContext<'_, T>,
) -> InputGrads<T> {
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

/// d⟨G, dw(dy, x)⟩: by `dy` a convolution of `x` with G as the weights; by `x` the
/// input gradient with G as the weights.
pub(crate) fn conv_grad_weight_vjp<T: Float>(
    g: &Geometry,
    ctx: &VjpContext<'_, T>,
) -> InputGrads<T> {
    let (dy, x, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
    let d_dy = ctx.wants[0].then(|| {
        let (out, _) = conv::conv2d_forward(g, x.data(), gg.data(), None, false);
        Tensor::from_vec(out, dy.shape())
    });
    let d_x = ctx.wants[1]
        .then(|| Tensor::from_vec(conv::conv2d_grad_input(g, dy.data(), gg.data()), x.shape()));
    smallvec![d_dy, d_x]
}

pub(crate) fn avg_pool_grad_vjp<T: Float>(p: &Pool, ctx: &VjpContext<'_, T>) -> InputGrads<T> {
    let out = conv::avg_pool(p, ctx.grad.data());
    smallvec![Some(Tensor::from_vec(out, ctx.inputs[0].shape()))]
}

pub(crate) fn gather_vjp_var<'t, T: Float>(
    indices: &Rc<[usize]>,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let shape = ctx.inputs[0].shape();
    smallvec![Some(ctx.grad.scatter_add(indices.clone(), &shape))]
}

pub(crate) fn scatter_add_vjp_var<'t, T: Float>(
    indices: &Rc<[usize]>,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let shape = ctx.inputs[0].shape();
    smallvec![Some(ctx.grad.gather(indices.clone(), &shape))]
}

pub(crate) fn gate_vjp_var<'t, T: Float>(
    open: &Rc<[bool]>,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    smallvec![Some(ctx.grad.gated(open.clone()))]
}

pub(crate) fn conv_grad_input_vjp_var<'t, T: Float>(
    g: &Geometry,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let (dy, w, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
    smallvec![
        ctx.wants[0].then(|| gg.conv2d(w, g.opts)),
        ctx.wants[1].then(|| dy.conv_grad_weight(gg, *g)),
    ]
}

pub(crate) fn conv_grad_weight_vjp_var<'t, T: Float>(
    g: &Geometry,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    let (dy, x, gg) = (ctx.inputs[0], ctx.inputs[1], ctx.grad);
    smallvec![
        ctx.wants[0].then(|| x.conv2d(gg, g.opts)),
        ctx.wants[1].then(|| dy.conv_grad_input(gg, *g)),
    ]
}

pub(crate) fn avg_pool_grad_vjp_var<'t, T: Float>(
    p: &Pool,
    ctx: &VarVjp<'_, 't, T>,
) -> VarGrads<'t, T> {
    smallvec![Some(ctx.grad.avg_pool_with(*p))]
}

/// Both are bilinear: the tangent is the sum over the two inputs' tangents.
pub(crate) fn conv_grad_input_jvp_var<'t, T: Float>(
    g: &Geometry,
    ctx: &VarJvp<'_, 't, T>,
) -> Option<Var<'t, T>> {
    let (dy, w) = (ctx.inputs[0], ctx.inputs[1]);
    let a = ctx.tangents[0].map(|t| t.conv_grad_input(w, *g));
    let b = ctx.tangents[1].map(|t| dy.conv_grad_input(t, *g));
    super::add_tangents(a, b)
}

pub(crate) fn conv_grad_weight_jvp_var<'t, T: Float>(
    g: &Geometry,
    ctx: &VarJvp<'_, 't, T>,
) -> Option<Var<'t, T>> {
    let (dy, x) = (ctx.inputs[0], ctx.inputs[1]);
    let a = ctx.tangents[0].map(|t| t.conv_grad_weight(x, *g));
    let b = ctx.tangents[1].map(|t| dy.conv_grad_weight(t, *g));
    super::add_tangents(a, b)
}

impl<'t, T: Float> Var<'t, T> {
    /// `self.flat[indices]` under `shape` (`NOWHERE` reads 0).
    pub(crate) fn gather(self, indices: Rc<[usize]>, shape: &[usize]) -> Var<'t, T> {
        assert_eq!(indices.len(), numel(shape), "gather: index count and shape");
        self.tape.record(&[self], |x, _| {
            (gather(x[0].data(), &indices, shape), Op::Gather { indices })
        })
    }

    /// Zeros of `shape` with `self.flat[i]` added at `indices[i]`.
    pub(crate) fn scatter_add(self, indices: Rc<[usize]>, shape: &[usize]) -> Var<'t, T> {
        self.tape.record(&[self], |x, _| {
            assert_eq!(indices.len(), x[0].numel(), "scatter_add: index count");
            (
                scatter_add(x[0].data(), &indices, shape),
                Op::ScatterAdd { indices },
            )
        })
    }

    /// `self` where `open`, else 0.
    pub(crate) fn gated(self, open: Rc<[bool]>) -> Var<'t, T> {
        self.tape
            .record(&[self], |x, _| (gate(x[0], &open), Op::Gate { open }))
    }

    /// A convolution's input gradient: `self` is the output's adjoint `dy`.
    pub(crate) fn conv_grad_input(self, w: Var<'t, T>, g: Geometry) -> Var<'t, T> {
        self.tape.record(&[self, w], |v, _| {
            let dx = conv::conv2d_grad_input(&g, v[0].data(), v[1].data());
            (
                Tensor::from_vec(dx, [g.n, g.c, g.h, g.w]),
                Op::ConvGradInput(g),
            )
        })
    }

    /// A convolution's weight gradient: `self` is the output's adjoint `dy`.
    pub(crate) fn conv_grad_weight(self, x: Var<'t, T>, g: Geometry) -> Var<'t, T> {
        self.tape.record(&[self, x], |v, _| {
            let dw = conv::conv2d_grad_weight(&g, v[0].data(), v[1].data(), None);
            let shape = [g.o, g.c / g.opts.groups, g.kh, g.kw];
            (Tensor::from_vec(dw, shape), Op::ConvGradWeight(g))
        })
    }

    /// Average pooling with a pooling already worked out.
    pub(crate) fn avg_pool_with(self, p: Pool) -> Var<'t, T> {
        self.tape.record(&[self], move |v, _| {
            let out = conv::avg_pool(&p, v[0].data());
            let s = v[0].shape();
            (
                Tensor::from_vec(out, [s[0], s[1], p.oh, p.ow]),
                Op::AvgPool2d(p),
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
            (Tensor::from_vec(dx, shape), Op::AvgPoolGrad(p))
        })
    }
}
