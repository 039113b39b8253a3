//! Property tests: random shapes and values for every op, and random expression DAGs
//! with shared subexpressions, all agreeing with finite differences.
//! Points are kept inside each op's domain and away from kinks (relu, abs, max ties).

use autodiff::{gradcheck, GradcheckOptions, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, lo, hi, &mut StdRng::seed_from_u64(seed))
}

fn shape_strategy(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 0..=max_rank)
}

/// An output shape and two operand shapes that broadcast to it: each operand may drop
/// leading dimensions and set any dimension to 1.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape_strategy(3), any::<u64>()).prop_map(|(out, bits)| {
        let derive = |salt: u32| -> Vec<usize> {
            let b = bits.rotate_left(salt * 8);
            let drop = (b as usize) % (out.len() + 1);
            out[drop..]
                .iter()
                .enumerate()
                .map(|(i, &d)| if (b >> (i + 3)) & 1 == 1 { 1 } else { d })
                .collect()
        };
        (derive(0), derive(3))
    })
}

fn passes(
    f: impl for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
    inputs: &[Tensor<f64>],
) -> Result<(), TestCaseError> {
    gradcheck(f, inputs, GradcheckOptions::default())
        .map(|_| ())
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn grad_matches_finite_differences_for_smooth_unary_ops(shape in shape_strategy(3), op in 0usize..8, seed in any::<u64>()) {
        let x = uniform(&shape, -2.0, 2.0, seed);
        let pos = uniform(&shape, 0.2, 3.0, seed);
        let away = x.map(|v| if v.abs() < 0.1 { v + 0.5 } else { v });
        match op {
            0 => passes(|_, v| v[0].exp(), &[x])?,
            1 => passes(|_, v| v[0].ln(), &[pos])?,
            2 => passes(|_, v| v[0].sqrt(), &[pos])?,
            3 => passes(|_, v| v[0].powf(-1.5), &[pos])?,
            4 => passes(|_, v| v[0].sigmoid() * v[0].tanh(), &[x])?,
            5 => passes(|_, v| v[0].softplus() - v[0].square(), &[x])?,
            6 => passes(|_, v| v[0].relu() + v[0].abs() * 0.5, &[away])?,
            _ => passes(|_, v| 1.0 / v[0] - 2.0 * v[0], &[pos])?,
        }
    }

    #[test]
    fn grad_matches_finite_differences_for_random_broadcasts((a, b) in broadcast_pair(), op in 0usize..4, seed in any::<u64>()) {
        let (ta, tb) = (uniform(&a, -2.0, 2.0, seed), uniform(&b, 0.5, 2.0, seed ^ 1));
        match op {
            0 => passes(|_, v| v[0] + v[1], &[ta, tb])?,
            1 => passes(|_, v| v[1] - v[0], &[ta, tb])?,
            2 => passes(|_, v| v[0] * v[1], &[ta, tb])?,
            _ => passes(|_, v| v[0] / v[1], &[ta, tb])?,
        }
    }

    #[test]
    fn grad_matches_finite_differences_for_random_matmuls(m in 1usize..6, k in 1usize..6, n in 1usize..6, batch in 0usize..3, seed in any::<u64>()) {
        if batch == 0 {
            passes(|_, v| v[0].matmul(v[1]), &[uniform(&[m, k], -1.0, 1.0, seed), uniform(&[k, n], -1.0, 1.0, seed ^ 1)])?;
            passes(|_, v| v[0].linear(v[1], v[2]), &[uniform(&[m, k], -1.0, 1.0, seed), uniform(&[k, n], -1.0, 1.0, seed ^ 1), uniform(&[n], -1.0, 1.0, seed ^ 3)])?;
        } else {
            passes(|_, v| v[0].matmul(v[1]), &[uniform(&[batch, m, k], -1.0, 1.0, seed), uniform(&[batch, k, n], -1.0, 1.0, seed ^ 1)])?;
            passes(|_, v| v[0].matmul(v[1]), &[uniform(&[batch, m, k], -1.0, 1.0, seed), uniform(&[k, n], -1.0, 1.0, seed ^ 2)])?;
        }
    }

    #[test]
    fn grad_matches_finite_differences_for_random_reductions(shape in prop::collection::vec(1usize..=4, 1..=4), mask in any::<u8>(), keepdim in any::<bool>(), op in 0usize..3, seed in any::<u64>()) {
        let axes: Vec<usize> = (0..shape.len()).filter(|d| (mask >> d) & 1 == 1).collect();
        // A permutation of distinct values keeps max away from ties.
        let n: usize = shape.iter().product();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut vals: Vec<f64> = (0..n).map(|i| i as f64 * 0.25 - 1.0).collect();
        rand::seq::SliceRandom::shuffle(vals.as_mut_slice(), &mut rng);
        let x = Tensor::from_vec(vals, &shape);
        match op {
            0 => passes(|_, v| v[0].sum_axes(&axes, keepdim), &[x])?,
            1 => passes(|_, v| v[0].mean_axes(&axes, keepdim), &[x])?,
            _ => passes(|_, v| v[0].max_axes(&axes, keepdim), &[x])?,
        }
    }

    #[test]
    fn grad_matches_finite_differences_for_softmax_and_cross_entropy(shape in prop::collection::vec(1usize..=5, 1..=3), axis in any::<Index>(), targets in prop::collection::vec(any::<Index>(), 1..6), classes in 1usize..6, seed in any::<u64>()) {
        let axis = axis.index(shape.len());
        let x = uniform(&shape, -5.0, 5.0, seed);
        passes(|_, v| v[0].softmax(axis), std::slice::from_ref(&x))?;
        passes(|_, v| v[0].log_softmax(axis), &[x])?;
        let t: Vec<usize> = targets.iter().map(|i| i.index(classes)).collect();
        passes(|_, v| v[0].cross_entropy(&t), &[uniform(&[t.len(), classes], -5.0, 5.0, seed ^ 1)])?;
    }

    #[test]
    fn grad_matches_finite_differences_for_random_shape_ops(shape in prop::collection::vec(1usize..=4, 1..=4), picks in prop::collection::vec(any::<Index>(), 1..6), perm_seed in any::<u64>(), axis in any::<Index>(), seed in any::<u64>()) {
        let x = uniform(&shape, -1.0, 1.0, seed);
        let axis = axis.index(shape.len());
        let idx: Vec<usize> = picks.iter().map(|p| p.index(shape[axis])).collect();
        let weights = uniform(&[idx.len() * x.numel() / shape[axis]], 0.5, 1.5, seed ^ 3);
        passes(|tape, v| {
            let s = v[0].index_select(axis, &idx);
            (s * tape.constant(weights.clone().reshape(s.shape()))).tanh()
        }, std::slice::from_ref(&x))?;
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut StdRng::seed_from_u64(perm_seed));
        let w2 = uniform(&[x.numel()], 0.5, 1.5, seed ^ 4);
        passes(|tape, v| {
            let p = v[0].permute(&perm);
            (p * tape.constant(w2.clone().reshape(p.shape()))).tanh()
        }, std::slice::from_ref(&x))?;
        let y = uniform(&shape, -1.0, 1.0, seed ^ 5);
        passes(|tape, v| {
            let c = Var::concat(&[v[0], v[1]], axis);
            let w = tape.constant(uniform(&c.shape(), 0.5, 1.5, 9));
            (c * w).tanh().reshape([c.shape().iter().product::<usize>()])
        }, &[x, y])?;
    }
}

/// One step of a random program; every op maps values in [-2, 2] back into [-2, 2], so
/// deep programs neither overflow nor flatten out.
fn apply<'t>(
    op: usize,
    a: Var<'t, f64>,
    b: Var<'t, f64>,
    w: Var<'t, f64>,
    perm: &[usize],
    cols: &[usize],
) -> Var<'t, f64> {
    let c = a.shape()[1] as f64;
    match op {
        0 => (a + b) * 0.5,
        1 => (a - b) * 0.5,
        2 => a * b * 0.5,
        3 => a / (b.square() + 1.0),
        4 => a.tanh(),
        5 => a.sigmoid(),
        6 => a.exp() * 0.25,
        7 => a.softplus() * 0.5,
        8 => a.square() * 0.5,
        9 => a.softmax(1),
        10 => a.log_softmax(1) * 0.3,
        11 => (a - b.mean_axes(&[0], true)) * 0.5,
        12 => a * b.sum_axes(&[1], true).tanh(),
        13 => a.matmul(w) * (1.0 / c),
        14 => a.select_rows(perm),
        15 => Var::concat(&[a, b], 1).index_select(1, cols),
        _ => a.t().t() * b.sqrt_abs_smooth(),
    }
}

trait SmoothAbs<'t> {
    fn sqrt_abs_smooth(self) -> Var<'t, f64>;
}
impl<'t> SmoothAbs<'t> for Var<'t, f64> {
    /// sqrt(x² + 1) / 2: a smooth stand-in for |x|.
    fn sqrt_abs_smooth(self) -> Var<'t, f64> {
        (self.square() + 1.0).sqrt() * 0.5
    }
}

const OPS: usize = 17;

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn grad_matches_finite_differences_for_random_dags_with_shared_subexpressions(
        rows in 1usize..4,
        cols in 1usize..5,
        steps in prop::collection::vec((0..OPS, any::<Index>(), any::<Index>()), 10..=50),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut perm: Vec<usize> = (0..rows).collect();
        rand::seq::SliceRandom::shuffle(perm.as_mut_slice(), &mut rng);
        let pick: Vec<usize> = (0..cols).map(|i| (i * 7 + seed as usize) % (2 * cols)).collect();
        let inputs = vec![
            uniform(&[rows, cols], -1.0, 1.0, seed),
            uniform(&[rows, cols], -1.0, 1.0, seed ^ 1),
            uniform(&[cols, cols], -1.0, 1.0, seed ^ 2),
        ];
        passes(|_, v| {
            let mut nodes = vec![v[0], v[1]];
            for (op, a, b) in &steps {
                let (a, b) = (nodes[a.index(nodes.len())], nodes[b.index(nodes.len())]);
                nodes.push(apply(*op, a, b, v[2], &perm, &pick));
            }
            // Everything computed feeds the output, so every shared node is exercised.
            nodes[2..].iter().skip(1).fold(nodes[2], |acc, &n| acc + n)
        }, &inputs)?;
    }
}
