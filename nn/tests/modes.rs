//! Train and eval modes, and the layers that differ between them: Dropout and
//! BatchNorm against values computed here from their definitions, their derivatives
//! (gradcheck, gradgradcheck, forward mode) in f64, BatchNorm's buffers through a
//! checkpoint and a resumed training loop, and the per-parameter gradient hooks.

use autodiff::func::{jvp, per_sample, PerSamplePath};
use autodiff::{gradcheck, gradgradcheck, GradcheckOptions, Tape, Tensor, Var};
use nn::{
    Activation, BatchNorm, Checkpoint, Cost, CrossEntropy, Dropout, Init, Linear, Mode, Module,
    Optimizer, ParamStore, Sequential, Sgd,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::cell::RefCell;
use std::rc::Rc;
use std::slice::from_ref;

/// Deterministic values in about [-3, 3].
fn values(shape: &[usize], seed: f64) -> Tensor<f64> {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|i| 3.0 * (i as f64 * 0.731 + seed).sin())
        .collect();
    Tensor::from_vec(data, shape)
}

/// Channel `ch`'s values of a `[n, c, rest..]` tensor.
fn channel(x: &Tensor<f64>, ch: usize) -> Vec<f64> {
    let (c, rest) = (x.shape()[1], x.shape()[2..].iter().product::<usize>());
    x.data()
        .chunks(rest)
        .enumerate()
        .filter(|(k, _)| k % c == ch)
        .flat_map(|(_, r)| r.iter().copied())
        .collect()
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let m = v.len() as f64;
    let mean = v.iter().sum::<f64>() / m;
    (mean, v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / m)
}

/// Three training passes of a `[4, 3, 2, 2]` batch norm: the running statistics after
/// each equal PyTorch's update computed here (momentum 0.1, the unbiased variance), the
/// training output uses the batch's statistics, and the eval output the running ones,
/// scaled and shifted by the weight and bias.
#[test]
fn batch_norm_running_statistics_and_outputs_follow_their_definitions() {
    let mut store = ParamStore::<f64>::new();
    let bn = BatchNorm::new(&mut store, "bn", 3);
    let (w, b) = ([1.5, -0.5, 2.0], [0.1, 0.2, -0.3]);
    *store.get_mut("bn.weight").unwrap() = Tensor::from_vec(w.to_vec(), [3]);
    *store.get_mut("bn.bias").unwrap() = Tensor::from_vec(b.to_vec(), [3]);
    let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
    for step in 0..3 {
        let x = values(&[4, 3, 2, 2], step as f64);
        let tape = Tape::new();
        let bound = store.bind(&tape).train(step);
        let y = bn.forward(&bound, tape.constant(&x)).value();
        store.update_buffers(&bound);
        for ch in 0..3 {
            let xs = channel(&x, ch);
            let (mean, var) = mean_var(&xs);
            for (got, v) in channel(&y, ch).iter().zip(&xs) {
                let want = (v - mean) / (var + 1e-5).sqrt() * w[ch] + b[ch];
                assert!((got - want).abs() < 1e-13, "step {step}, channel {ch}");
            }
            let m = xs.len() as f64;
            rm[ch] = 0.9 * rm[ch] + 0.1 * mean;
            rv[ch] = 0.9 * rv[ch] + 0.1 * var * m / (m - 1.0);
        }
        let (got_m, got_v) = (
            store.buffer("bn.running_mean").unwrap(),
            store.buffer("bn.running_var").unwrap(),
        );
        for ch in 0..3 {
            assert!((got_m.data()[ch] - rm[ch]).abs() < 1e-15, "step {step}");
            assert!((got_v.data()[ch] - rv[ch]).abs() < 1e-15, "step {step}");
        }
    }
    // Evaluation: the running statistics, and nothing written.
    let x = values(&[2, 3, 2, 2], 9.0);
    let tape = Tape::new();
    let bound = store.bind_constants(&tape);
    let y = bn.forward(&bound, tape.constant(&x)).value();
    let before = store.clone();
    store.update_buffers(&bound);
    assert_eq!(store, before);
    for ch in 0..3 {
        for (got, v) in channel(&y, ch).iter().zip(channel(&x, ch)) {
            let want = (v - rm[ch]) / (rv[ch] + 1e-5).sqrt() * w[ch] + b[ch];
            assert!((got - want).abs() < 1e-13);
        }
    }
}

/// The layer (weight, bias and input all differentiated) in training mode, where the
/// batch statistics make every output depend on every input.
#[test]
fn batch_norm_layer_passes_gradcheck_gradgradcheck_and_jvp() {
    for shape in [vec![5, 2], vec![3, 2, 4]] {
        let mut store = ParamStore::<f64>::new();
        let bn = BatchNorm::new(&mut store, "bn", 2);
        let f = autodiff::func::function(|_, p| {
            let bound = store.bind_vars(&p[1..]).train(0);
            bn.forward(&bound, p[0]).tanh()
        });
        let inputs = [values(&shape, 0.3), values(&[2], 1.0), values(&[2], 2.0)];
        gradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
        gradgradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
        let tangents = [values(&shape, 1.1), values(&[2], 0.4), values(&[2], 0.8)];
        let (_, t) = jvp(f, &inputs, &tangents);
        // Against central differences along the tangents.
        let at = |h: f64| {
            let tape = Tape::new();
            let ps: Vec<Var<'_, f64>> = inputs
                .iter()
                .zip(&tangents)
                .map(|(x, v)| {
                    tape.param(Tensor::from_vec(
                        x.data()
                            .iter()
                            .zip(v.data())
                            .map(|(a, b)| a + h * b)
                            .collect(),
                        x.shape(),
                    ))
                })
                .collect();
            f(&tape, &ps).value()
        };
        let (up, down) = (at(1e-6), at(-1e-6));
        for ((g, u), d) in t.data().iter().zip(up.data()).zip(down.data()) {
            assert!((g - (u - d) / 2e-6).abs() < 1e-6, "{shape:?}");
        }
    }
}

#[test]
#[should_panic(expected = "bn (batch norm, 3 channels): input [4, 2] is not [batch, 3, ..]")]
fn batch_norm_names_itself_for_the_wrong_channels() {
    let mut store = ParamStore::<f32>::new();
    let bn = BatchNorm::new(&mut store, "bn", 3);
    let tape = Tape::new();
    bn.forward(
        &store.bind(&tape).train(0),
        tape.constant(Tensor::zeros([4, 2])),
    );
}

/// A small batch-normalised classifier's training loop, stopped after two steps,
/// checkpointed (parameters, buffers and optimizer state) and resumed, ends bit for bit
/// where four uninterrupted steps do; the buffers are in the checkpoint as buffers, and
/// the optimizer never sees them.
#[test]
fn batch_norm_buffers_survive_a_checkpoint_and_a_resumed_loop_bit_identically() {
    let build = || {
        let mut rng = StdRng::seed_from_u64(3);
        let mut store = ParamStore::<f32>::new();
        let mut net = Sequential::new();
        net.push(Linear::new(&mut store, "fc1", 6, 5, Init::He, &mut rng));
        net.push(BatchNorm::new(&mut store, "bn1", 5));
        net.push(Activation::Relu);
        net.push(Dropout::new("drop", 0.3));
        net.push(Linear::new(&mut store, "fc2", 5, 3, Init::He, &mut rng));
        (store, net)
    };
    let batch = |step: usize| {
        let x: Vec<f32> = (0..8 * 6)
            .map(|i| ((i * 13 + step * 7) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let labels: Vec<usize> = (0..8).map(|i| (i + step) % 3).collect();
        (Tensor::from_vec(x, [8, 6]), labels)
    };
    let train = |store: &mut ParamStore<f32>,
                 net: &Sequential<f32>,
                 opt: &mut Sgd,
                 steps: std::ops::Range<usize>| {
        for step in steps {
            let (x, labels) = batch(step);
            let tape = Tape::new();
            let bound = store.bind(&tape).train(nn::step_seed(1, step));
            let cost = CrossEntropy.cost(net.forward(&bound, tape.constant(x)), &labels);
            let grads = bound.grads(cost.backward()).unwrap();
            store.update_buffers(&bound);
            opt.step(store, &grads).unwrap();
        }
    };
    let (mut straight, net) = build();
    let mut opt = Sgd::new(0.1).with_momentum(0.9);
    train(&mut straight, &net, &mut opt, 0..4);

    let (mut first, _) = build();
    let mut opt1 = Sgd::new(0.1).with_momentum(0.9);
    train(&mut first, &net, &mut opt1, 0..2);
    let mut checkpoint = Checkpoint::new(first.clone());
    checkpoint.optimizer = Some(opt1.state());
    let bytes = checkpoint.to_bytes().unwrap();
    let loaded =
        Checkpoint::<f32>::from_bytes(&bytes, std::path::Path::new("bn.safetensors")).unwrap();
    assert_eq!(
        loaded.params.buffer("bn1.running_mean"),
        first.buffer("bn1.running_mean")
    );
    assert!(loaded
        .params
        .iter()
        .all(|(name, _)| !name.contains("running")));
    let (mut resumed, _) = build();
    loaded.restore_params(&mut resumed).unwrap();
    assert_eq!(resumed, first);
    let mut opt2 = Sgd::new(0.1).with_momentum(0.9);
    opt2.load_state(loaded.optimizer.clone().unwrap()).unwrap();
    train(&mut resumed, &net, &mut opt2, 2..4);
    assert_eq!(resumed, straight, "parameters and buffers, bit for bit");
    assert_ne!(
        resumed.buffer("bn1.running_var"),
        build().0.buffer("bn1.running_var")
    );
}

/// A checkpoint without the model's buffers is refused, naming them.
#[test]
fn restoring_a_checkpoint_without_the_buffers_names_them() {
    let mut with = ParamStore::<f32>::new();
    BatchNorm::new(&mut with, "bn", 2);
    let mut without = ParamStore::<f32>::new();
    without.insert("bn.weight", Tensor::ones([2]));
    without.insert("bn.bias", Tensor::zeros([2]));
    let err = Checkpoint::new(without)
        .restore_params(&mut with)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing buffer \"bn.running_mean\""), "{err}");
}

/// Dropout's mask is a constant: gradients through it are the mask's, to every order,
/// and per-sample gradients take the batched path through it.
#[test]
fn dropout_passes_gradcheck_gradgradcheck_jvp_and_per_sample() {
    let drop = Dropout::new("drop", 0.5);
    let store = ParamStore::<f64>::new();
    let f = autodiff::func::function(|tape, p| {
        let bound = store.bind(tape).train(11);
        drop.forward(&bound, p[0]).sin() * p[0]
    });
    let x = values(&[3, 4], 0.2);
    gradcheck(f, from_ref(&x), GradcheckOptions::default()).unwrap();
    gradgradcheck(f, from_ref(&x), GradcheckOptions::default()).unwrap();
    let mask = drop.mask::<f64>(11, &[3, 4]);
    let v = values(&[3, 4], 1.3);
    let (_, t) = jvp(f, from_ref(&x), from_ref(&v));
    for i in 0..12 {
        let (a, m, dv) = (x.data()[i], mask.data()[i], v.data()[i]);
        let want = ((a * m).cos() * m * a + (a * m).sin()) * dv;
        assert!((t.data()[i] - want).abs() < 1e-14);
    }
    // Per-sample: a linear layer through dropout, each example's gradient against one
    // pass over that example with its row of the mask.
    let losses = autodiff::func::batch_function(|tape, p, b| {
        let bound = store.bind(tape).train(5);
        drop.forward(&bound, b[0].matmul(p[0]))
            .square()
            .sum_axes(&[1], false)
    });
    let (w, xb) = (values(&[4, 3], 0.5), values(&[6, 4], 0.9));
    let each = per_sample(losses, from_ref(&w), from_ref(&xb), PerSamplePath::Auto);
    assert!(each.batched, "{:?}", each.why_loop);
    let mask = drop.mask::<f64>(5, &[6, 3]);
    for i in 0..6 {
        let tape = Tape::new();
        let p = tape.param(&w);
        let row = tape.constant(Tensor::from_vec(xb.data()[i * 4..][..4].to_vec(), [1, 4]));
        let m = tape.constant(Tensor::from_vec(mask.data()[i * 3..][..3].to_vec(), [1, 3]));
        let g = (row.matmul(p) * m).square().sum().backward();
        let got = &each.grads[0].data()[i * 12..][..12];
        for (a, b) in got.iter().zip(g[p].data()) {
            assert!((a - b).abs() < 1e-13, "example {i}");
        }
    }
}

/// Parameter hooks run once each gradient is complete, in reverse store order (the
/// last layer's parameters first), and a replaced gradient is what the optimizer
/// reads.
#[test]
fn parameter_hooks_run_in_reverse_store_order_and_may_replace_the_gradient() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut store = ParamStore::<f64>::new();
    let mut net = Sequential::new();
    net.push(
        Linear::new(&mut store, "fc1", 3, 4, Init::He, &mut rng).with_activation(Activation::Tanh),
    );
    net.push(Linear::new(&mut store, "fc2", 4, 2, Init::He, &mut rng));
    let x = values(&[5, 3], 0.7);
    let grads_with = |hooks: bool| {
        let tape = Tape::new();
        let bound = store.bind(&tape).with_mode(Mode::Eval);
        let order = Rc::new(RefCell::new(Vec::new()));
        if hooks {
            for (name, _) in store.iter() {
                let (order, name) = (Rc::clone(&order), name.to_string());
                let scale = name == "fc1.weight";
                bound.register_hook(&name.clone(), move |g| {
                    order.borrow_mut().push(name.clone());
                    scale.then(|| g.map(|v| v * 3.0))
                });
            }
        }
        let cost = CrossEntropy.cost(net.forward(&bound, tape.constant(&x)), &[0, 1, 1, 0, 1]);
        let grads = bound.grads(cost.backward()).unwrap();
        let order = order.borrow().clone();
        (grads, order)
    };
    let (plain, _) = grads_with(false);
    let (hooked, order) = grads_with(true);
    assert_eq!(order, ["fc2.bias", "fc2.weight", "fc1.bias", "fc1.weight"]);
    for (name, g) in plain.iter() {
        let scale = if name == "fc1.weight" { 3.0 } else { 1.0 };
        let h = hooked.get(name).unwrap();
        for (a, b) in g.data().iter().zip(h.data()) {
            assert_eq!(a * scale, *b, "{name}");
        }
    }
}
