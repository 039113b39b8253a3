//! Checks analytic gradients against central finite differences in f64.
//!
//! The function under test builds its expression on whatever fresh tape it is given,
//! so it can be evaluated at perturbed inputs. Small inputs are checked element by
//! element; large ones along random unit directions. A non-scalar output is reduced
//! with fixed random weights, which checks a random vector-Jacobian product.

use crate::scalar;
use crate::shape::{strides, Shape};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt;

/// Tolerances and sampling for [`gradcheck`]. The defaults are PyTorch's for double
/// precision: `eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Relative step: element `i` moves by `eps * max(1, |x_i|)`.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Tolerance relative to the numeric derivative.
    pub rtol: f64,
    /// Inputs with at most this many elements are checked element by element.
    pub max_elementwise: usize,
    /// Number of random directions checked for each larger input.
    pub directions: usize,
    /// Seed for the output weights and the directions.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            max_elementwise: 512,
            directions: 16,
            seed: 0x5eed,
        }
    }
}

/// What a passing [`gradcheck`] (or [`gradgradcheck`] and their scalar forms) covered.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// Number of derivatives compared (elements plus directions).
    pub checks: usize,
    /// Largest `|analytic - numeric|` seen.
    pub max_abs_error: f64,
    /// Largest relative error seen, `|analytic - numeric| / max(|numeric|, atol / rtol)`:
    /// relative to the numeric derivative, or to the tolerance's floor `atol / rtol`
    /// where the derivative is smaller than that (near zero, where `atol` decides).
    /// A derivative with a relative error of at most `rtol` always passes, and a passing
    /// check never reports more than `2 * rtol`.
    pub max_rel_error: f64,
}

/// Where a [`gradcheck`] compared a derivative: named in [`GradcheckError::Mismatch`].
#[derive(Clone, Debug, PartialEq)]
pub enum GradcheckLocation {
    /// One element, by flat and multi-dimensional index.
    Element {
        /// Row-major index.
        flat: usize,
        /// Index per dimension.
        index: Vec<usize>,
    },
    /// The `k`-th random direction of a large input.
    Direction(usize),
}

impl fmt::Display for GradcheckLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradcheckLocation::Element { flat, index } => {
                write!(f, "element {index:?} (flat {flat})")
            }
            GradcheckLocation::Direction(k) => write!(f, "random direction {k}"),
        }
    }
}

/// Why a gradient check failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GradcheckError {
    /// An analytic derivative disagrees with the finite difference.
    #[error(
        "gradcheck failed for input {input} (shape {shape:?}) at {location}: analytic {analytic:.10e}, \
         numeric {numeric:.10e}, abs error {abs_error:.3e}, rel error {rel_error:.3e} \
         (allowed {allowed:.3e} = atol + rtol * |numeric|)"
    )]
    Mismatch {
        /// Which input (position in the inputs slice).
        input: usize,
        /// That input's shape.
        shape: Vec<usize>,
        /// Which element or direction.
        location: GradcheckLocation,
        /// The derivative from backward.
        analytic: f64,
        /// The central finite difference.
        numeric: f64,
        /// `|analytic - numeric|`.
        abs_error: f64,
        /// `|analytic - numeric| / max(|numeric|, atol / rtol)`, as in
        /// [`GradcheckReport::max_rel_error`].
        rel_error: f64,
        /// The tolerance that was exceeded.
        allowed: f64,
    },
    /// The function's value at the unperturbed inputs is not finite.
    #[error("gradcheck: the output is not finite at the given inputs ({0})")]
    NonFiniteOutput(f64),
    /// [`gradgradcheck`] met a custom op that has only a first-order vjp, so its
    /// gradient cannot be differentiated (see [`crate::CustomOp::vjp_var`]).
    #[error(
        "gradgradcheck: custom op `{0}` has only a first-order vjp, so its gradient \
         cannot be differentiated (give it CustomOp::vjp_var)"
    )]
    FirstOrderOnly(String),
}

/// Checks the gradients of a tensor expression. `f` builds the expression on the tape
/// it is given, from the inputs recorded there as parameters.
///
/// ```
/// use autodiff::{gradcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]);
/// let report = gradcheck(|_, v| (v[0].sigmoid() * v[0]).sum(), &[x], GradcheckOptions::default()).unwrap();
/// assert_eq!(report.checks, 3);
/// ```
pub fn gradcheck<F>(
    f: F,
    inputs: &[Tensor<f64>],
    options: GradcheckOptions,
) -> Result<GradcheckReport, GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    let mut rng = StdRng::seed_from_u64(options.seed);
    // Analytic pass: also fixes the output weights.
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = inputs.iter().map(|x| tape.param(x)).collect();
    let out = f(&tape, &vars);
    let out_shape = out.shape();
    let weights = if out_shape.iter().product::<usize>() == 1 {
        Tensor::ones(&out_shape)
    } else {
        Tensor::<f64>::rand_uniform(&out_shape, -1.0, 1.0, &mut rng)
    };
    let value = out.with_value(|v| dot(v.data(), weights.data()));
    if !value.is_finite() {
        return Err(GradcheckError::NonFiniteOutput(value));
    }
    let grads = out.backward_with(weights.clone());
    let analytic: Vec<Vec<f64>> = vars
        .iter()
        .zip(inputs)
        .map(|(&v, x)| {
            grads
                .get(v)
                .map_or_else(|| vec![0.0; x.numel()], |g| g.data().to_vec())
        })
        .collect();
    let eval = |point: &[Vec<f64>]| -> f64 {
        let tape = Tape::new();
        let vars: Vec<Var<'_, f64>> = point
            .iter()
            .zip(inputs)
            .map(|(d, x)| tape.param(Tensor::from_vec(d.clone(), x.shape())))
            .collect();
        let y = f(&tape, &vars);
        y.with_value(|v| dot(v.data(), weights.data()))
    };
    let shapes: Vec<Shape> = inputs.iter().map(|x| x.shape().into()).collect();
    let points: Vec<Vec<f64>> = inputs.iter().map(|x| x.data().to_vec()).collect();
    compare(&points, &shapes, &analytic, eval, &options, &mut rng)
}

/// Checks second derivatives against finite differences of first derivatives, as
/// PyTorch's `gradgradcheck` does, with [`gradcheck`]'s tolerances (PyTorch's defaults).
///
/// The gradient of `f` is recorded on the tape ([`Var::grad_with`], with a fixed random
/// adjoint `u` for the output), reduced to one number with fixed random weights `r`,
/// and that function of the inputs and `u`, `Σ_k ⟨r_k, ∂⟨u, f⟩/∂x_k⟩`, is checked
/// with [`gradcheck`]: its analytic gradient is the derivative of the recorded
/// gradient (every op's vjp, differentiated), its numeric one a central difference of
/// first derivatives. The derivative with respect to `u` checks that the recorded
/// vjp is the right linear map of the adjoint. The inputs come first in
/// [`GradcheckError::Mismatch`]'s numbering; input `inputs.len()` is `u`.
///
/// ```
/// use autodiff::{gradgradcheck, GradcheckOptions, Tensor};
/// let x = Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]);
/// let w = Tensor::from_vec(vec![0.3, 0.1, -0.7, 0.2, 0.9, -0.4], [3, 2]);
/// let report = gradgradcheck(
///     |_, p| p[0].reshape([1, 3]).matmul(p[1]).tanh().square().sum(),
///     &[x, w],
///     GradcheckOptions::default(),
/// )
/// .unwrap();
/// assert_eq!(report.checks, 3 + 6 + 1); // both inputs, and the output's adjoint
/// ```
pub fn gradgradcheck<F>(
    f: F,
    inputs: &[Tensor<f64>],
    options: GradcheckOptions,
) -> Result<GradcheckReport, GradcheckError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x0002_9ad0);
    let out_shape = {
        let tape = Tape::new();
        let vars: Vec<Var<'_, f64>> = inputs.iter().map(|x| tape.param(x)).collect();
        f(&tape, &vars).shape()
    };
    let u = Tensor::<f64>::rand_uniform(&out_shape, -1.0, 1.0, &mut rng);
    let weights: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|x| Tensor::<f64>::rand_uniform(x.shape(), -1.0, 1.0, &mut rng))
        .collect();
    let n = inputs.len();
    let mut points = inputs.to_vec();
    points.push(u);
    // Refuse, with an error rather than a panic, a custom op that cannot be
    // differentiated twice.
    {
        let tape = Tape::new();
        let vars: Vec<Var<'_, f64>> = points.iter().map(|x| tape.param(x)).collect();
        let y = f(&tape, &vars[..n]);
        let _ = y.grad_with(vars[n], &vars[..n]);
        if let Some(op) = tape.first_order_only() {
            return Err(GradcheckError::FirstOrderOnly(op));
        }
    }
    gradcheck(
        |tape, p| {
            let y = f(tape, &p[..n]);
            let grads = y.grad_with(p[n], &p[..n]);
            grads
                .iter()
                .zip(&weights)
                .map(|(&g, r)| (g * tape.constant(r)).sum())
                .reduce(|a, b| a + b)
                .unwrap_or_else(|| tape.constant(Tensor::scalar(0.0)))
        },
        &points,
        options,
    )
}

/// Checks the gradients of a scalar expression built with [`scalar::Tape`].
///
/// ```
/// use autodiff::{gradcheck_scalar, GradcheckOptions};
/// let report = gradcheck_scalar(|_, v| (v[0] * v[1]).sin() + v[0].exp(), &[0.3, -1.2], GradcheckOptions::default()).unwrap();
/// assert_eq!(report.checks, 2);
/// ```
pub fn gradcheck_scalar<F>(
    f: F,
    inputs: &[f64],
    options: GradcheckOptions,
) -> Result<GradcheckReport, GradcheckError>
where
    F: for<'t> Fn(&'t scalar::Tape, &[scalar::Var<'t>]) -> scalar::Var<'t>,
{
    let mut rng = StdRng::seed_from_u64(options.seed);
    let tape = scalar::Tape::new();
    let vars: Vec<scalar::Var<'_>> = inputs.iter().map(|&x| tape.var(x)).collect();
    let out = f(&tape, &vars);
    if !out.value().is_finite() {
        return Err(GradcheckError::NonFiniteOutput(out.value()));
    }
    let grads = out.backward();
    let analytic: Vec<Vec<f64>> = vars.iter().map(|&v| vec![grads[v]]).collect();
    let eval = |point: &[Vec<f64>]| -> f64 {
        let tape = scalar::Tape::new();
        let vars: Vec<scalar::Var<'_>> = point.iter().map(|p| tape.var(p[0])).collect();
        f(&tape, &vars).value()
    };
    let shapes: Vec<Shape> = inputs.iter().map(|_| Shape::new()).collect();
    let points: Vec<Vec<f64>> = inputs.iter().map(|&x| vec![x]).collect();
    compare(&points, &shapes, &analytic, eval, &options, &mut rng)
}

/// Checks the second derivatives of a scalar expression built with [`scalar::Tape`],
/// the scalar twin of [`gradgradcheck`]: with a fixed random adjoint `u` for the output
/// and fixed random weights `r`, the recorded gradient ([`scalar::Var::grad`]) is
/// reduced to `Σ_k r_k ∂(u f)/∂x_k`, and that function of the inputs and `u` is checked
/// with [`gradcheck_scalar`]. Its analytic gradient differentiates every op's recorded
/// derivative rule; the derivative with respect to `u` checks that the recorded
/// gradient is linear in the adjoint. Input `inputs.len()` is `u` in
/// [`GradcheckError::Mismatch`]'s numbering. `u` and `r` are drawn as [`gradgradcheck`]
/// draws them for 0-d tensors, from the same seed.
///
/// ```
/// use autodiff::{gradgradcheck_scalar, GradcheckOptions};
/// let report = gradgradcheck_scalar(
///     |_, v| (v[0] * v[1]).sin() + v[0].exp() / v[1],
///     &[0.3, -1.2],
///     GradcheckOptions::default(),
/// )
/// .unwrap();
/// assert_eq!(report.checks, 2 + 1); // both inputs, and the output's adjoint
/// ```
pub fn gradgradcheck_scalar<F>(
    f: F,
    inputs: &[f64],
    options: GradcheckOptions,
) -> Result<GradcheckReport, GradcheckError>
where
    F: for<'t> Fn(&'t scalar::Tape, &[scalar::Var<'t>]) -> scalar::Var<'t>,
{
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x0002_9ad0);
    let n = inputs.len();
    // u first, then one weight per input: the order gradgradcheck draws them in.
    let draws = Tensor::<f64>::rand_uniform([n + 1], -1.0, 1.0, &mut rng).into_vec();
    let (u, weights) = (draws[0], &draws[1..]);
    let mut points = inputs.to_vec();
    points.push(u);
    gradcheck_scalar(
        |tape, p| {
            let y = f(tape, &p[..n]) * p[n];
            y.grad(&p[..n])
                .iter()
                .zip(weights)
                .map(|(&g, &r)| g * r)
                .reduce(|a, b| a + b)
                .unwrap_or(p[n] * 0.0)
        },
        &points,
        options,
    )
}

/// `abs_error` relative to `|numeric|`, or to the floor `atol / rtol` below which the
/// absolute tolerance decides, so that a near-zero derivative does not read as a large
/// relative error on a check that passes.
fn relative_error(abs_error: f64, numeric: f64, options: &GradcheckOptions) -> f64 {
    let floor = if options.rtol > 0.0 {
        options.atol / options.rtol
    } else {
        0.0
    };
    let scale = numeric.abs().max(floor);
    if scale > 0.0 {
        abs_error / scale
    } else {
        abs_error
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The comparison shared by the tensor and scalar checkers: one central difference per
/// element (or direction), keeping the worst violation.
fn compare(
    points: &[Vec<f64>],
    shapes: &[Shape],
    analytic: &[Vec<f64>],
    eval: impl Fn(&[Vec<f64>]) -> f64,
    options: &GradcheckOptions,
    rng: &mut StdRng,
) -> Result<GradcheckReport, GradcheckError> {
    let mut report = GradcheckReport {
        checks: 0,
        max_abs_error: 0.0,
        max_rel_error: 0.0,
    };
    let mut worst: Option<(f64, GradcheckError)> = None;
    let mut work = points.to_vec();
    let mut record = |input: usize,
                      location: GradcheckLocation,
                      a: f64,
                      n: f64,
                      report: &mut GradcheckReport| {
        let abs_error = (a - n).abs();
        let rel_error = relative_error(abs_error, n, options);
        let allowed = options.atol + options.rtol * n.abs();
        report.checks += 1;
        if abs_error.is_finite() {
            report.max_abs_error = report.max_abs_error.max(abs_error);
            report.max_rel_error = report.max_rel_error.max(rel_error);
        }
        // NaN on either side fails: the comparison below is false for NaN.
        let ok = abs_error <= allowed;
        if !ok {
            let excess = if abs_error.is_finite() {
                abs_error - allowed
            } else {
                f64::INFINITY
            };
            if worst.as_ref().is_none_or(|(w, _)| excess > *w) {
                let shape = shapes[input].to_vec();
                worst = Some((
                    excess,
                    GradcheckError::Mismatch {
                        input,
                        shape,
                        location,
                        analytic: a,
                        numeric: n,
                        abs_error,
                        rel_error,
                        allowed,
                    },
                ));
            }
        }
    };
    for input in 0..points.len() {
        let len = points[input].len();
        if len <= options.max_elementwise {
            let st = strides(&shapes[input]);
            for i in 0..len {
                let x = points[input][i];
                let h = options.eps * x.abs().max(1.0);
                work[input][i] = x + h;
                let up = eval(&work);
                work[input][i] = x - h;
                let down = eval(&work);
                work[input][i] = x;
                let numeric = (up - down) / (2.0 * h);
                let index = st
                    .iter()
                    .zip(shapes[input].iter())
                    .map(|(s, d)| (i / s) % d)
                    .collect();
                record(
                    input,
                    GradcheckLocation::Element { flat: i, index },
                    analytic[input][i],
                    numeric,
                    &mut report,
                );
            }
        } else {
            let scale = points[input].iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let h = options.eps * scale;
            for k in 0..options.directions {
                let dir = Tensor::<f64>::randn([len], rng).into_vec();
                let norm = dir
                    .iter()
                    .map(|d| d * d)
                    .sum::<f64>()
                    .sqrt()
                    .max(f64::MIN_POSITIVE);
                let dir: Vec<f64> = dir.iter().map(|d| d / norm).collect();
                let shifted = |sign: f64| -> Vec<f64> {
                    points[input]
                        .iter()
                        .zip(&dir)
                        .map(|(x, d)| x + sign * h * d)
                        .collect()
                };
                work[input] = shifted(1.0);
                let up = eval(&work);
                work[input] = shifted(-1.0);
                let down = eval(&work);
                work[input].clone_from(&points[input]);
                let numeric = (up - down) / (2.0 * h);
                record(
                    input,
                    GradcheckLocation::Direction(k),
                    dot(&analytic[input], &dir),
                    numeric,
                    &mut report,
                );
            }
        }
    }
    match worst {
        Some((_, err)) => Err(err),
        None => Ok(report),
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gradcheck passed: {} derivatives, max abs error {:.3e}, max rel error {:.3e}",
            self.checks, self.max_abs_error, self.max_rel_error
        )
    }
}
