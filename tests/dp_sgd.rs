//! DP-SGD: clipping bounds every example's contribution (checked against single-example
//! backward passes, not the library's per-example path), one replaced example moves the
//! clipped sum by at most 2C, with no clipping and no noise a step is the wrapped
//! optimizer's own, the noise is seeded and sized σC/n, and bad settings or batches are
//! refused without touching the parameters.

use autodiff::{Tape, Tensor};
use nn::{
    clipped_sum, per_sample_grads, Activation, Adam, CrossEntropy, DpSgd, Init, Model, Module,
    Optimizer, ParamStore, Sgd,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PIXELS: usize = 784;

/// A small ReLU network: its gradients grow with its inputs, so an outlier's is large.
fn model() -> Model<f64> {
    Model::new(
        &[PIXELS, 16, 10],
        Activation::Relu,
        Activation::Identity,
        Init::He,
        5,
    )
}

/// `n` images with pixels in [0, 1] and labels.
fn batch(n: usize, seed: u64) -> (Tensor<f64>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * PIXELS).map(|_| rng.random::<f64>()).collect();
    let labels = (0..n).map(|_| rng.random_range(0..10)).collect();
    (Tensor::from_vec(x, [n, PIXELS]), labels)
}

/// Example `i` made an outlier: its pixels times 100 and another label.
fn make_outlier(x: &mut Tensor<f64>, labels: &mut [usize], i: usize) {
    for v in &mut x.data_mut()[i * PIXELS..(i + 1) * PIXELS] {
        *v *= 100.0;
    }
    labels[i] = (labels[i] + 3) % 10;
}

/// Example `i`'s gradient by a backward pass over it alone, flattened in store order.
fn single(model: &Model<f64>, x: &Tensor<f64>, labels: &[usize], i: usize) -> Vec<f64> {
    let row = Tensor::from_vec(x.data()[i * PIXELS..(i + 1) * PIXELS].to_vec(), [1, PIXELS]);
    let tape = Tape::new();
    let bound = model.params().bind(&tape);
    let out = model.forward(&bound, tape.constant(row));
    let cost = nn::Cost::cost(&CrossEntropy, out, &labels[i..i + 1]);
    let grads = bound.grads(cost.backward()).unwrap();
    grads.values().flat_map(|g| g.data().to_vec()).collect()
}

/// The batch gradient (of the mean cost) by one backward pass.
fn batch_grads(model: &Model<f64>, x: &Tensor<f64>, labels: &[usize]) -> nn::Grads<f64> {
    let tape = Tape::new();
    let bound = model.params().bind(&tape);
    let out = model.forward(&bound, tape.constant(x.clone()));
    let cost = nn::Cost::cost(&CrossEntropy, out, labels);
    bound.grads(cost.backward()).unwrap()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn flat(grads: &nn::Grads<f64>) -> Vec<f64> {
    grads.values().flat_map(|g| g.data().to_vec()).collect()
}

fn flat_params(params: &ParamStore<f64>) -> Vec<f64> {
    params.values().flat_map(|p| p.data().to_vec()).collect()
}

/// Largest |a - b| over largest |b|.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

fn rows(x: &Tensor<f64>, labels: &[usize], keep: &[usize]) -> (Tensor<f64>, Vec<usize>) {
    let data = keep
        .iter()
        .flat_map(|&i| x.data()[i * PIXELS..(i + 1) * PIXELS].to_vec())
        .collect();
    (
        Tensor::from_vec(data, [keep.len(), PIXELS]),
        keep.iter().map(|&i| labels[i]).collect(),
    )
}

#[test]
fn clipping_bounds_every_examples_contribution() {
    let model = model();
    let (mut x, mut labels) = batch(12, 1);
    for i in [0, 4, 9] {
        make_outlier(&mut x, &mut labels, i);
    }
    let singles: Vec<Vec<f64>> = (0..12).map(|i| single(&model, &x, &labels, i)).collect();
    let mut norms: Vec<f64> = singles.iter().map(|g| norm(g)).collect();
    let by_size = {
        let mut s = norms.clone();
        s.sort_by(f64::total_cmp);
        s
    };
    let c = by_size[6];
    assert!(by_size[11] > 10.0 * c, "some examples are far above C");
    assert!(by_size[0] < 0.9 * c, "some examples are below C");

    // Each example's contribution: the library's clipped sum over that example alone.
    for (i, g) in singles.iter().enumerate() {
        let (xi, li) = rows(&x, &labels, &[i]);
        let each = per_sample_grads(&model, model.params(), &CrossEntropy, &xi, &li);
        let got = flat(&clipped_sum(&each, c).unwrap().sum);
        assert!(
            norm(&got) <= c * (1.0 + 1e-12),
            "example {i}: contribution of norm {} above C = {c}",
            norm(&got)
        );
        if norms[i] <= c {
            assert!(rel(&got, g) <= 1e-12, "example {i} below C was changed");
        }
    }

    // The batch's clipped sum against one computed here from the single passes.
    let mut want = vec![0.0; singles[0].len()];
    for (g, &n) in singles.iter().zip(&norms) {
        let scale = if n > c { c / n } else { 1.0 };
        for (w, v) in want.iter_mut().zip(g) {
            *w += scale * v;
        }
    }
    let each = per_sample_grads(&model, model.params(), &CrossEntropy, &x, &labels);
    let sum = clipped_sum(&each, c).unwrap();
    let r = rel(&flat(&sum.sum), &want);
    assert!(r <= 1e-12, "clipped sum off by {r:e}");
    assert_eq!(sum.clipped(), norms.iter().filter(|&&n| n > c).count());
    for (got, want) in sum.norms.iter().zip(&mut norms) {
        assert!((got - *want).abs() <= 1e-12 * *want);
    }
}

#[test]
fn replacing_one_example_moves_the_clipped_sum_by_at_most_2c() {
    let model = model();
    let (x, labels) = batch(16, 2);
    let each = per_sample_grads(&model, model.params(), &CrossEntropy, &x, &labels);
    let c = {
        let mut s = each.norms();
        s.sort_by(f64::total_cmp);
        s[8]
    };
    let (mut x2, mut labels2) = (x.clone(), labels.clone());
    make_outlier(&mut x2, &mut labels2, 5);
    let each2 = per_sample_grads(&model, model.params(), &CrossEntropy, &x2, &labels2);

    let moved = |bound: f64| {
        let a = flat(&clipped_sum(&each, bound).unwrap().sum);
        let b = flat(&clipped_sum(&each2, bound).unwrap().sum);
        let d: Vec<f64> = a.iter().zip(&b).map(|(p, q)| p - q).collect();
        norm(&d)
    };
    let clipped = moved(c);
    let unclipped = moved(f64::MAX);
    eprintln!("C = {c:.4}: clipped sum moved {clipped:.4}, unclipped {unclipped:.4}");
    assert!(clipped <= 2.0 * c * (1.0 + 1e-12), "moved {clipped} > 2C");
    assert!(
        unclipped > 20.0 * c,
        "the outlier must matter without clipping"
    );
}

/// With σ = 0 and a C no example reaches, a DP-SGD step is the wrapped optimizer's step
/// on the batch gradient.
fn same_as_plain_step(make: impl Fn() -> Box<dyn Optimizer<f64>>) {
    let model = model();
    let (x, labels) = batch(10, 3);
    let mut dp = DpSgd::new(make(), 1e300, 0.0, 9);
    let mut plain = make();
    let mut ours = model.params().clone();
    let mut theirs = model.params().clone();
    for _ in 0..2 {
        let mut m = self::model();
        m.params_mut().assign_from(ours.clone()).unwrap();
        let each = per_sample_grads(&m, m.params(), &CrossEntropy, &x, &labels);
        let step = dp.step(&mut ours, &each).unwrap();
        assert_eq!(step.clipped, 0);

        m.params_mut().assign_from(theirs.clone()).unwrap();
        plain
            .step(&mut theirs, &batch_grads(&m, &x, &labels))
            .unwrap();
    }
    let r = rel(&flat_params(&ours), &flat_params(&theirs));
    assert!(r <= 1e-12, "DP-SGD without clipping or noise off by {r:e}");
}

#[test]
fn without_clipping_or_noise_a_step_is_the_inner_optimizers() {
    same_as_plain_step(|| Box::new(Sgd::new(0.3).with_momentum(0.9)));
    same_as_plain_step(|| Box::new(Adam::new(0.01)));
}

/// The noise one step added to the mean gradient: the difference between a noisy and a
/// noiseless step with plain SGD at learning rate 1, from the same parameters.
fn noise_of(
    dp: &mut DpSgd<Sgd<f64>>,
    model: &Model<f64>,
    x: &Tensor<f64>,
    labels: &[usize],
) -> Vec<f64> {
    let each = per_sample_grads(model, model.params(), &CrossEntropy, x, labels);
    let mut noisy = model.params().clone();
    dp.step(&mut noisy, &each).unwrap();
    let mut clean = model.params().clone();
    DpSgd::new(Sgd::new(1.0), dp.max_grad_norm, 0.0, 0)
        .step(&mut clean, &each)
        .unwrap();
    flat_params(&clean)
        .iter()
        .zip(flat_params(&noisy))
        .map(|(a, b)| a - b)
        .collect()
}

#[test]
fn noise_is_seeded_and_has_std_sigma_c_over_n() {
    let model = model();
    let (x, labels) = batch(8, 4);
    let (c, sigma, n) = (0.5, 1.3, 8.0);
    let each = per_sample_grads(&model, model.params(), &CrossEntropy, &x, &labels);
    let after = |seed: u64| {
        let mut p = model.params().clone();
        let step = DpSgd::new(Sgd::new(1.0), c, sigma, seed)
            .step(&mut p, &each)
            .unwrap();
        assert_eq!(step.noise_std, sigma * c / n);
        flat_params(&p)
    };
    assert_eq!(after(11), after(11), "same seed, same parameters");
    assert_ne!(after(11), after(12), "another seed, other parameters");

    let mut dp = DpSgd::new(Sgd::new(1.0), c, sigma, 11);
    let first = noise_of(&mut dp, &model, &x, &labels);
    let second = noise_of(&mut dp, &model, &x, &labels);
    let count = first.len() as f64;
    let mean = first.iter().sum::<f64>() / count;
    let std = (first.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt();
    let want = sigma * c / n;
    eprintln!("{count} coordinates: noise mean {mean:.2e}, std {std:.5} (σC/n = {want:.5})");
    assert!((std / want - 1.0).abs() < 0.03, "std {std}, wanted {want}");
    assert!(mean.abs() < 4.0 * want / count.sqrt(), "mean {mean}");
    // The next step draws other noise: uncorrelated with the first.
    let corr =
        first.iter().zip(&second).map(|(a, b)| a * b).sum::<f64>() / (norm(&first) * norm(&second));
    assert!(
        corr.abs() < 0.05,
        "consecutive steps' noise correlates: {corr}"
    );
}

#[test]
fn bad_settings_and_batches_are_refused_and_change_nothing() {
    let model = model();
    let (x, labels) = batch(4, 5);
    let each = per_sample_grads(&model, model.params(), &CrossEntropy, &x, &labels);
    let refused = |dp: &mut DpSgd<Sgd<f64>>, each: &nn::PerSampleGrads<f64>, why: &str| {
        let mut params = model.params().clone();
        let err = dp.step(&mut params, each).unwrap_err().to_string();
        assert!(err.contains(why), "{why:?} not in {err:?}");
        assert_eq!(&params, model.params(), "{err}: parameters changed");
        assert_eq!(dp.steps(), 0, "{err}: counted as a step");
    };
    for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        refused(
            &mut DpSgd::new(Sgd::new(1.0), c, 1.0, 0),
            &each,
            "clipping norm C",
        );
        assert!(clipped_sum(&each, c).is_err());
    }
    for sigma in [-0.1, f64::NAN, f64::INFINITY] {
        refused(
            &mut DpSgd::new(Sgd::new(1.0), 1.0, sigma, 0),
            &each,
            "noise multiplier",
        );
    }
    let mut dp = DpSgd::new(Sgd::new(1.0), 1.0, 1.0, 0);

    let empty = per_sample_grads(
        &model,
        model.params(),
        &CrossEntropy,
        &Tensor::zeros([0, PIXELS]),
        &Vec::new(),
    );
    refused(&mut dp, &empty, "empty");

    let mut bad = x.clone();
    bad.data_mut()[2 * PIXELS + 17] = f64::NAN;
    let nan = per_sample_grads(&model, model.params(), &CrossEntropy, &bad, &labels);
    refused(&mut dp, &nan, "example 2");

    // Gradients of another model: the wrapped optimizer refuses them before any update.
    let other = Model::<f64>::new(
        &[PIXELS, 8, 10],
        Activation::Relu,
        Activation::Identity,
        Init::He,
        1,
    );
    let foreign = per_sample_grads(&other, other.params(), &CrossEntropy, &x, &labels);
    refused(&mut dp, &foreign, "shape");

    // And the same wrapper still steps on a good batch afterwards.
    let mut params = model.params().clone();
    dp.step(&mut params, &each).unwrap();
    assert_eq!(dp.steps(), 1);
    assert_ne!(&params, model.params());
}
