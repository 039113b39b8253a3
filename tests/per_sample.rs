//! Per-sample gradients: each row must equal a backward pass over that example alone
//! (networks A, B and D, f64 and f32), their mean the batch gradient; the loop path and
//! the batched path agree, and the batched path refuses where examples meet.

use autodiff::func::{per_sample, per_sample_grads, PerSamplePath};
use autodiff::{Float, Tape, Tensor, Var};
use nn::{Activation, Cost, CrossEntropy, Init, MeanSquaredError, Model, Module, Quadratic};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn network(name: char) -> Model<f64> {
    match name {
        'a' => Model::new(
            &[784, 16, 16, 10],
            Activation::Sigmoid,
            Activation::Sigmoid,
            Init::ScaledNormal,
            1,
        ),
        'b' => Model::new(
            &[784, 128, 128, 10],
            Activation::Relu,
            Activation::Identity,
            Init::He,
            2,
        ),
        _ => Model::lenet(Init::Xavier, 3),
    }
}

fn cost_of(name: char) -> Box<dyn Cost<f64>> {
    if name == 'a' {
        Box::new(Quadratic)
    } else {
        Box::new(CrossEntropy)
    }
}

/// `n` images with pixels in [0, 1] (a third of them dark, as in MNIST) and labels.
fn batch(n: usize, seed: u64) -> (Tensor<f64>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n * 784)
        .map(|_| {
            if rng.random_bool(0.3) {
                0.0
            } else {
                rng.random::<f64>()
            }
        })
        .collect();
    let labels = (0..n).map(|_| rng.random_range(0..10)).collect();
    (Tensor::from_vec(x, [n, 784]), labels)
}

/// Example `i`'s gradients by its own backward pass (the batch mean over one example is
/// its cost), in store order.
fn single<T: Float>(
    model: &Model<T>,
    cost: &dyn Cost<T>,
    x: &Tensor<T>,
    labels: &[usize],
    i: usize,
) -> Vec<Tensor<T>> {
    let row = Tensor::from_vec(x.data()[i * 784..(i + 1) * 784].to_vec(), [1, 784]);
    let tape = Tape::new();
    let bound = model.params().bind(&tape);
    let out = model.forward(&bound, tape.constant(row));
    let c = cost.cost_of(out, nn::Target::from(&labels[i..i + 1]));
    let grads = bound.grads(c.backward()).unwrap();
    grads.into_values()
}

/// Largest |a - b| over largest |b|.
fn rel<T: Float>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| v.as_f64().abs()).fold(0.0, f64::max);
    let diff = a
        .iter()
        .zip(b)
        .map(|(p, q)| (p.as_f64() - q.as_f64()).abs())
        .fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

fn rows_match_single_passes(name: char, n: usize, tol: f64) {
    let model = network(name);
    let cost = cost_of(name);
    let (x, labels) = batch(n, 10 + name as u64);
    let each = nn::per_sample_grads(&model, model.params(), cost.as_ref(), &x, &labels);
    assert!(each.batched(), "network {name} takes the batched path");
    assert_eq!(each.len(), n);
    let mut worst = 0.0f64;
    for i in 0..n {
        let want = single(&model, cost.as_ref(), &x, &labels, i);
        for ((pname, got), want) in each.iter().zip(&want) {
            let per = got.numel() / n;
            assert_eq!(&got.shape()[1..], want.shape(), "{pname}");
            let r = rel(&got.data()[i * per..(i + 1) * per], want.data());
            assert!(
                r <= tol,
                "network {name}, example {i}, {pname}: relative error {r:e}"
            );
            worst = worst.max(r);
        }
    }
    eprintln!("network {name}: worst relative error {worst:e} over {n} examples");
}

#[test]
fn network_a_rows_are_single_example_gradients() {
    rows_match_single_passes('a', 16, 1e-12);
}

#[test]
fn network_b_rows_are_single_example_gradients() {
    rows_match_single_passes('b', 12, 1e-12);
}

#[test]
fn network_d_rows_are_single_example_gradients() {
    rows_match_single_passes('d', 6, 1e-12);
}

#[test]
fn f32_rows_agree_to_rounding() {
    let model = Model::<f32>::new(
        &[784, 32, 10],
        Activation::Relu,
        Activation::Identity,
        Init::He,
        4,
    );
    let (x, labels) = batch(8, 5);
    let x = x.cast::<f32>();
    let each = nn::per_sample_grads(&model, model.params(), &CrossEntropy, &x, &labels);
    for i in 0..8 {
        let want = single(&model, &CrossEntropy, &x, &labels, i);
        for ((pname, got), want) in each.iter().zip(&want) {
            let per = got.numel() / 8;
            let r = rel(&got.data()[i * per..(i + 1) * per], want.data());
            assert!(r <= 1e-5, "{pname}, example {i}: relative error {r:e}");
        }
    }
}

#[test]
fn the_mean_of_the_rows_is_the_batch_gradient() {
    for name in ['a', 'b', 'd'] {
        let model = network(name);
        let cost = cost_of(name);
        let n = if name == 'd' { 5 } else { 10 };
        let (x, labels) = batch(n, 20);
        let each = nn::per_sample_grads(&model, model.params(), cost.as_ref(), &x, &labels);
        let tape = Tape::new();
        let bound = model.params().bind(&tape);
        let c = cost.cost_of(
            model.forward(&bound, tape.constant(&x)),
            nn::Target::from(&labels),
        );
        let mean_cost = each.costs.data().iter().sum::<f64>() / n as f64;
        assert!((mean_cost - c.item()).abs() <= 1e-12 * c.item().abs());
        let batch_grads = bound.grads(c.backward()).unwrap();
        for ((pname, rows), (_, g)) in each.iter().zip(batch_grads.iter()) {
            let per = g.numel();
            let mean: Vec<f64> = (0..per)
                .map(|j| (0..n).map(|i| rows.data()[i * per + j]).sum::<f64>() / n as f64)
                .collect();
            let r = rel(&mean, g.data());
            assert!(r <= 1e-12, "network {name}, {pname}: mean off by {r:e}");
        }
    }
}

/// A function with a parameter reached through a shared value (`w.t()`), a broadcast
/// product, a bias added by broadcasting, a reshape and a reduction per example.
fn mixed_ops<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
    let h = (b[0].matmul(p[0].t()) * p[1] + p[2]).tanh(); // [n, 3]
    let h = h.reshape([h.shape()[0], 3, 1]).sum_axes(&[2], false); // [n, 3]
    let z = h.log_softmax(1) * b[1]; // b[1]: per-example weights [n, 3]
    z.sum_axes(&[1], false) + (p[1] * p[1]).sum() // a term of the parameters alone
}

fn mixed_params() -> Vec<Tensor<f64>> {
    let mut rng = StdRng::seed_from_u64(7);
    vec![
        Tensor::randn([3, 4], &mut rng),
        Tensor::randn([3], &mut rng),
        Tensor::randn([1, 3], &mut rng),
    ]
}

fn w43() -> Vec<Tensor<f64>> {
    let mut rng = StdRng::seed_from_u64(9);
    vec![Tensor::randn([4, 3], &mut rng)]
}

fn mixed_batch(n: usize) -> Vec<Tensor<f64>> {
    let mut rng = StdRng::seed_from_u64(8);
    vec![
        Tensor::randn([n, 4], &mut rng),
        Tensor::randn([n, 3], &mut rng),
    ]
}

#[test]
fn batched_and_loop_paths_agree_on_shared_values_and_broadcasts() {
    let (params, inputs) = (mixed_params(), mixed_batch(5));
    let fast = per_sample(mixed_ops, &params, &inputs, PerSamplePath::Batched);
    let slow = per_sample(mixed_ops, &params, &inputs, PerSamplePath::Loop);
    assert!(fast.batched && !slow.batched);
    assert!(rel(fast.losses.data(), slow.losses.data()) <= 1e-14);
    for (k, (a, b)) in fast.grads.iter().zip(&slow.grads).enumerate() {
        assert_eq!(a.shape()[0], 5);
        assert_eq!(&a.shape()[1..], params[k].shape());
        assert_eq!(a.shape(), b.shape());
        let r = rel(a.data(), b.data());
        assert!(r <= 1e-13, "parameter {k}: paths differ by {r:e}");
    }
    // The loop itself against finite differences of one example's loss.
    let one: Vec<Tensor<f64>> = inputs
        .iter()
        .map(|x| {
            let len = x.numel() / 5;
            let mut s = x.shape().to_vec();
            s[0] = 1;
            Tensor::from_vec(x.data()[2 * len..3 * len].to_vec(), s)
        })
        .collect();
    let loss = |p: &[Tensor<f64>]| {
        let tape = Tape::new();
        let ps: Vec<_> = p.iter().map(|t| tape.param(t)).collect();
        let xs: Vec<_> = one.iter().map(|t| tape.constant(t)).collect();
        mixed_ops(&tape, &ps, &xs).item()
    };
    let h = 1e-6;
    for k in 0..params.len() {
        for j in 0..params[k].numel() {
            let (mut up, mut down) = (params.clone(), params.clone());
            up[k].data_mut()[j] += h;
            down[k].data_mut()[j] -= h;
            let fd = (loss(&up) - loss(&down)) / (2.0 * h);
            let per = params[k].numel();
            let got = fast.grads[k].data()[2 * per + j];
            assert!((got - fd).abs() < 1e-7, "parameter {k}[{j}]: {got} vs {fd}");
        }
    }
}

/// Examples meet: each is compared with the batch's mean activation.
fn centred<'t>(_: &'t Tape<f64>, p: &[Var<'t, f64>], b: &[Var<'t, f64>]) -> Var<'t, f64> {
    let h = b[0].matmul(p[0]);
    let centre = h.mean_axes(&[0], true);
    (h - centre).square().sum_axes(&[1], false)
}

#[test]
fn where_examples_meet_auto_falls_back_to_the_loop_and_says_why() {
    let params = w43();
    let inputs = vec![mixed_batch(4)[0].clone()];
    let auto = per_sample(centred, &params, &inputs, PerSamplePath::Auto);
    assert!(!auto.batched);
    let why = auto.why_loop.expect("a reason");
    assert!(why.contains("mean"), "{why}");
    let looped = per_sample(centred, &params, &inputs, PerSamplePath::Loop);
    assert_eq!(auto.grads[0].data(), looped.grads[0].data());
    // Each example alone is centred on itself: its loss and gradient are zero.
    assert!(looped.grads[0].data().iter().all(|v| v.abs() < 1e-15));
}

#[test]
#[should_panic(expected = "the batched path does not apply here: mean")]
fn asking_for_the_batched_path_where_examples_meet_panics_saying_why() {
    let params = w43();
    let inputs = vec![mixed_batch(4)[0].clone()];
    per_sample(centred, &params, &inputs, PerSamplePath::Batched);
}

#[test]
#[should_panic(expected = "one loss per example, shape [4]")]
fn a_batch_mean_instead_of_per_example_losses_is_refused() {
    let params = w43();
    let inputs = vec![mixed_batch(4)[0].clone()];
    per_sample_grads(
        |_, p, b| b[0].matmul(p[0]).square().mean(),
        &params,
        &inputs,
    );
}

#[test]
#[should_panic(expected = "input 1 has shape [3, 3] but input 0 has shape [4, 4]")]
fn inputs_of_different_batch_sizes_are_refused() {
    let params = w43();
    let mut rng = StdRng::seed_from_u64(1);
    let inputs = vec![
        Tensor::randn([4, 4], &mut rng),
        Tensor::randn([3, 3], &mut rng),
    ];
    per_sample_grads(
        |_, p, b| b[0].matmul(p[0]).sum_axes(&[1], false),
        &params,
        &inputs,
    );
}

#[test]
fn regression_costs_have_per_example_forms_whose_mean_is_the_cost() {
    let model = Model::<f64>::new(
        &[784, 8, 3],
        Activation::Tanh,
        Activation::Identity,
        Init::He,
        9,
    );
    let (x, _) = batch(6, 3);
    let mut rng = StdRng::seed_from_u64(4);
    let y = Tensor::randn([6, 3], &mut rng);
    for cost in [&MeanSquaredError as &dyn Cost<f64>, &Quadratic] {
        let each = nn::per_sample_grads(&model, model.params(), cost, &x, &y);
        assert!(each.batched());
        let tape = Tape::new();
        let bound = model.params().bind(&tape);
        let c = cost.cost_of(
            model.forward(&bound, tape.constant(&x)),
            nn::Target::from(&y),
        );
        let mean = each.costs.data().iter().sum::<f64>() / 6.0;
        assert!(
            (mean - c.item()).abs() <= 1e-12 * c.item().abs(),
            "{}",
            cost.name()
        );
        let norms = each.norms();
        assert!(norms.iter().all(|v| v.is_finite() && *v > 0.0));
    }
}

#[test]
fn an_empty_batch_gives_empty_gradients() {
    let params = w43();
    let inputs = vec![Tensor::<f64>::zeros([0, 4])];
    let g = per_sample_grads(
        |_, p, b| b[0].matmul(p[0]).sum_axes(&[1], false),
        &params,
        &inputs,
    );
    assert_eq!(g[0].shape(), &[0, 4, 3]);
}
