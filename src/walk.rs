//! The draw page's minibatch view: one example's nudges next to the same nudges
//! averaged over 100 training examples, and the "drunk walk" of stochastic gradient
//! descent (steps on minibatches of 100) against full-batch gradient descent from the
//! same weights, drawn on the cost over the plane of the visited weights' two top
//! principal directions. Every gradient and cost comes from the engine's tape.

use crate::nudges::{json_exact, json_lists, learn, nudges};
use autodiff::{Tape, Tensor};
use nn::{Cost, Dataset, Model, Module, Quadratic};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Examples averaged in the minibatch view, and the size of each SGD step's batch.
pub const BATCH: usize = 100;
/// The "full batch": the first this many training examples.
pub const FULL: usize = 2000;
/// Steps of each walk.
pub const STEPS: usize = 15;
/// Cost samples per side of the drawn plane, its edges included (the page shades
/// between them).
pub const GRID: usize = 11;

/// Every parameter, in store order, as one vector.
pub fn flatten(model: &Model<f32>) -> Vec<f32> {
    model
        .params()
        .values()
        .flat_map(|t| t.data().iter().copied())
        .collect()
}

/// Writes `flat` (from [`flatten`]) back into `model`.
pub fn unflatten(model: &mut Model<f32>, flat: &[f32]) {
    let mut at = 0;
    for (_, t) in model.params_mut().iter_mut() {
        let n = t.data().len();
        t.data_mut().copy_from_slice(&flat[at..at + n]);
        at += n;
    }
}

/// The quadratic cost of `model` on `images` and `labels`, on a tape.
pub fn cost(model: &Model<f32>, images: &Tensor<f32>, labels: &[usize]) -> f32 {
    let tape = Tape::new();
    let bound = model.params().bind_constants(&tape);
    Quadratic
        .cost(model.forward(&bound, tape.constant(images.clone())), labels)
        .item()
}

/// The two top principal directions of `points` (each of the same length), as unit
/// vectors, from the small Gram matrix by power iteration with deflation.
pub fn principal_plane(points: &[Vec<f32>]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = points.len();
    let d = points[0].len();
    let mean: Vec<f64> = (0..d)
        .map(|k| points.iter().map(|p| f64::from(p[k])).sum::<f64>() / m as f64)
        .collect();
    let centred: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            p.iter()
                .zip(&mean)
                .map(|(&x, mu)| f64::from(x) - mu)
                .collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut gram: Vec<Vec<f64>> = (0..m)
        .map(|i| (0..m).map(|j| dot(&centred[i], &centred[j])).collect())
        .collect();
    let mut directions = Vec::new();
    for _ in 0..2 {
        let mut e: Vec<f64> = (0..m).map(|i| 1.0 + (i as f64 * 0.37).sin()).collect();
        let mut lambda = 0.0;
        for _ in 0..300 {
            let next: Vec<f64> = gram.iter().map(|row| dot(row, &e)).collect();
            let norm = dot(&next, &next).sqrt();
            if norm < 1e-30 {
                break;
            }
            lambda = norm;
            e = next.iter().map(|x| x / norm).collect();
        }
        for i in 0..m {
            for j in 0..m {
                gram[i][j] -= lambda * e[i] * e[j];
            }
        }
        // The direction in weight space: the centred points weighted by e.
        let mut u = vec![0.0; d];
        for (c, w) in centred.iter().zip(&e) {
            for (uk, ck) in u.iter_mut().zip(c) {
                *uk += w * ck;
            }
        }
        let norm = dot(&u, &u).sqrt().max(1e-30);
        directions.push(u.iter().map(|x| x / norm).collect::<Vec<f64>>());
    }
    let v = directions.pop().unwrap_or_default();
    let u = directions.pop().unwrap_or_default();
    (mean, u, v)
}

fn pairs(points: &[(f64, f64)]) -> String {
    let items: Vec<String> = points
        .iter()
        .map(|(a, b)| format!("[{a:e},{b:e}]"))
        .collect();
    format!("[{}]", items.join(","))
}

/// The minibatch view's JSON for one example (`input`, `label`): its activations and
/// nudges and the batch's, and both walks projected on the cost's plane. `model` is
/// left as it was.
pub fn minibatch_json(
    model: &mut Model<f32>,
    input: &[f32],
    label: usize,
    train: &Dataset,
    lr: f64,
) -> String {
    let one = nudges(model, input, &[label]);
    let batch = train.slice(0, BATCH);
    let many = nudges(model, batch.images.data(), &batch.labels);

    let start = flatten(model);
    let full = train.slice(0, FULL);
    let n = full.labels.len();
    let mut rng = StdRng::seed_from_u64(7);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut sgd = vec![start.clone()];
    for k in 0..STEPS {
        let idx: Vec<usize> = (0..BATCH.min(n))
            .map(|i| order[(k * BATCH + i) % n])
            .collect();
        let b = train.gather(&idx);
        // A step that fails (a diverging learning rate) ends the walk there.
        if learn(model, b.images.data(), &b.labels, lr).is_err() {
            break;
        }
        sgd.push(flatten(model));
    }
    unflatten(model, &start);
    let mut gd = vec![start.clone()];
    for _ in 0..STEPS {
        if learn(model, full.images.data(), &full.labels, lr).is_err() {
            break;
        }
        gd.push(flatten(model));
    }
    let visited: Vec<Vec<f32>> = sgd.iter().chain(&gd).cloned().collect();
    let (mean, u, v) = principal_plane(&visited);
    let project = |p: &Vec<f32>| -> (f64, f64) {
        let (mut a, mut b) = (0.0, 0.0);
        for k in 0..p.len() {
            let c = f64::from(p[k]) - mean[k];
            a += c * u[k];
            b += c * v[k];
        }
        (a, b)
    };
    let sgd_xy: Vec<(f64, f64)> = sgd.iter().map(project).collect();
    let gd_xy: Vec<(f64, f64)> = gd.iter().map(project).collect();
    let all: Vec<&(f64, f64)> = sgd_xy.iter().chain(&gd_xy).collect();
    let range = |f: fn(&(f64, f64)) -> f64| {
        let lo = all.iter().map(|p| f(p)).fold(f64::INFINITY, f64::min);
        let hi = all.iter().map(|p| f(p)).fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.2).max(1e-3);
        (lo - pad, hi + pad)
    };
    let (a0, a1) = range(|p| p.0);
    let (b0, b1) = range(|p| p.1);
    let at = |lo: f64, hi: f64, i: usize| lo + (hi - lo) * i as f64 / (GRID - 1) as f64;
    let mut costs = Vec::with_capacity(GRID * GRID);
    let mut point = vec![0.0f32; mean.len()];
    for j in 0..GRID {
        for i in 0..GRID {
            let (a, b) = (at(a0, a1, i), at(b0, b1, j));
            for k in 0..point.len() {
                point[k] = (mean[k] + a * u[k] + b * v[k]) as f32;
            }
            unflatten(model, &point);
            costs.push(cost(model, &full.images, &full.labels));
        }
    }
    unflatten(model, &start);
    format!(
        "{{\"one\":{{\"activations\":{},\"nudges\":{}}},\"batch\":{{\"activations\":{},\"nudges\":{},\"size\":{}}},\"walk\":{{\"sgd\":{},\"full\":{},\"a\":[{a0:e},{a1:e}],\"b\":[{b0:e},{b1:e}],\"grid\":{GRID},\"cost\":{},\"examples\":{n},\"batch\":{BATCH},\"lr\":{lr}}}}}",
        json_lists(&one.activations),
        json_lists(&one.nudges),
        json_lists(&many.activations),
        json_lists(&many.nudges),
        batch.labels.len(),
        pairs(&sgd_xy),
        pairs(&gd_xy),
        json_exact(&costs),
    )
}
