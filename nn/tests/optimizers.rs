//! The optimizers through nn's public API: AdamW, RMSprop (plain, centred, with
//! momentum), Adagrad and Adadelta follow their published update rules (PyTorch's
//! `torch.optim` docs), recomputed here element by element in f64; their state goes
//! through a checkpoint and the run resumes bit for bit; hyper-parameters out of range
//! are refused with the optimizer's name and the value.

use autodiff::{Tape, Tensor};
use nn::{
    Adadelta, Adagrad, Adam, Checkpoint, Grads, Optimizer, OptimizerState, ParamStore, RmsProp,
    Schedule, Sgd,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Two parameters and the coefficients of the cost `Σ c w²`, whose gradient is `2 c w`:
/// each element's gradient depends on where the previous steps left it.
fn problem() -> (ParamStore<f64>, Vec<(&'static str, Vec<f64>)>) {
    let mut params = ParamStore::new();
    params.insert("w", Tensor::from_vec(vec![1.0, -2.0, 0.5, 3.0], [2, 2]));
    params.insert("b", Tensor::from_vec(vec![-0.25, 1.5], [2]));
    let coefficients = vec![("w", vec![0.5, 1.0, 2.0, 0.1]), ("b", vec![3.0, 0.2])];
    (params, coefficients)
}

fn grads(params: &ParamStore<f64>, coefficients: &[(&str, Vec<f64>)]) -> Grads<f64> {
    let tape = Tape::new();
    let bound = params.bind(&tape);
    let mut cost = tape.constant(Tensor::scalar(0.0));
    for (name, c) in coefficients {
        let w = bound.get(name);
        let c = tape.constant(Tensor::from_vec(c.clone(), w.value().shape()));
        cost = cost + (c * w * w).sum();
    }
    bound
        .grads(cost.backward())
        .expect("every parameter has a gradient")
}

/// Runs `steps` steps of `opt` on [`problem`] and compares every element with
/// `reference(w0, c, steps)`, the same steps recomputed from the published rule.
fn follows_the_rule(
    what: &str,
    opt: &mut dyn Optimizer<f64>,
    steps: usize,
    reference: impl Fn(f64, f64, usize) -> f64,
) {
    let (mut params, coefficients) = problem();
    let start = params.clone();
    for _ in 0..steps {
        let g = grads(&params, &coefficients);
        opt.step(&mut params, &g).expect("step");
    }
    for (name, c) in &coefficients {
        let got = params.get(name).expect("stored").data();
        let w0 = start.get(name).expect("stored").data();
        for i in 0..c.len() {
            let want = reference(w0[i], c[i], steps);
            assert!(
                (got[i] - want).abs() <= 1e-13 * want.abs().max(1.0),
                "{what}: {name}[{i}] after {steps} steps is {}, the rule gives {want}",
                got[i]
            );
            assert_ne!(got[i], w0[i], "{what}: {name}[{i}] did not move");
        }
    }
}

/// PyTorch's AdamW: `p *= 1 - lr λ`, then the Adam step with the plain gradient.
fn adamw_rule(lr: f64, wd: f64, (b1, b2, eps): (f64, f64, f64)) -> impl Fn(f64, f64, usize) -> f64 {
    move |mut p, c, steps| {
        let (mut m, mut v) = (0.0, 0.0);
        for t in 1..=steps as i32 {
            let g = 2.0 * c * p;
            p *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let m_hat = m / (1.0 - b1.powi(t));
            let v_hat = v / (1.0 - b2.powi(t));
            p -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        p
    }
}

#[test]
fn adamw_follows_its_update_rule_and_differs_from_adam_with_l2() {
    let rule = adamw_rule(0.05, 0.3, (0.9, 0.999, 1e-8));
    follows_the_rule("AdamW", &mut Adam::adamw(0.05, 0.3), 5, &rule);
    let mut other_betas = Adam::adamw(0.02, 0.01);
    (other_betas.beta1, other_betas.beta2, other_betas.eps) = (0.8, 0.99, 1e-3);
    follows_the_rule(
        "AdamW with other betas",
        &mut other_betas,
        4,
        adamw_rule(0.02, 0.01, (0.8, 0.99, 1e-3)),
    );
    // Adam's L2 decay goes through the moments: after one step its move is lr·sign(g)
    // whatever λ, AdamW's is that plus lr λ p.
    let (mut params, coefficients) = problem();
    let mut l2 = Adam::new(0.05);
    l2.weight_decay = 0.3;
    let g = grads(&params, &coefficients);
    l2.step(&mut params, &g).expect("step");
    let w = params.get("w").expect("w").data()[0];
    assert!((w - (1.0 - 0.05)).abs() < 1e-9, "{w}");
    assert!((rule(1.0, 0.5, 1) - (1.0 - 0.05 * 0.3 - 0.05)).abs() < 1e-9);
}

/// PyTorch's RMSprop, with `g += λ p`, optionally centred and with momentum.
fn rmsprop_rule(
    lr: f64,
    alpha: f64,
    eps: f64,
    wd: f64,
    momentum: f64,
    centered: bool,
) -> impl Fn(f64, f64, usize) -> f64 {
    move |mut p, c, steps| {
        let (mut square_avg, mut grad_avg, mut buf) = (0.0, 0.0, 0.0);
        for _ in 0..steps {
            let g = 2.0 * c * p + wd * p;
            square_avg = alpha * square_avg + (1.0 - alpha) * g * g;
            let avg = if centered {
                grad_avg = alpha * grad_avg + (1.0 - alpha) * g;
                (square_avg - grad_avg * grad_avg).sqrt() + eps
            } else {
                square_avg.sqrt() + eps
            };
            if momentum > 0.0 {
                buf = momentum * buf + g / avg;
                p -= lr * buf;
            } else {
                p -= lr * g / avg;
            }
        }
        p
    }
}

#[test]
fn rmsprop_follows_its_update_rule_in_all_four_variants() {
    for centered in [false, true] {
        for momentum in [0.0, 0.9] {
            let mut opt = RmsProp::new(0.01)
                .with_alpha(0.9)
                .with_momentum(momentum)
                .with_weight_decay(0.1);
            opt.centered = centered;
            follows_the_rule(
                &format!("RMSprop (centred {centered}, momentum {momentum})"),
                &mut opt,
                5,
                rmsprop_rule(0.01, 0.9, 1e-8, 0.1, momentum, centered),
            );
        }
    }
    // PyTorch's defaults: alpha 0.99, eps 1e-8, no momentum, not centred.
    follows_the_rule(
        "RMSprop with the defaults",
        &mut RmsProp::new(0.003),
        3,
        rmsprop_rule(0.003, 0.99, 1e-8, 0.0, 0.0, false),
    );
}

/// PyTorch's Adagrad: `clr = lr / (1 + (t - 1) lr_decay)`, `s += g²`,
/// `p -= clr g / (√s + ε)`.
fn adagrad_rule(
    lr: f64,
    lr_decay: f64,
    wd: f64,
    initial: f64,
    eps: f64,
) -> impl Fn(f64, f64, usize) -> f64 {
    move |mut p, c, steps| {
        let mut sum = initial;
        for t in 1..=steps {
            let g = 2.0 * c * p + wd * p;
            let clr = lr / (1.0 + (t - 1) as f64 * lr_decay);
            sum += g * g;
            p -= clr * g / (sum.sqrt() + eps);
        }
        p
    }
}

#[test]
fn adagrad_follows_its_update_rule() {
    follows_the_rule(
        "Adagrad with the defaults",
        &mut Adagrad::new(0.01),
        4,
        adagrad_rule(0.01, 0.0, 0.0, 0.0, 1e-10),
    );
    let mut opt = Adagrad::new(0.1)
        .with_lr_decay(0.5)
        .with_weight_decay(0.05)
        .with_initial_accumulator_value(0.2)
        .with_eps(1e-6);
    follows_the_rule(
        "Adagrad with decay and a starting sum",
        &mut opt,
        5,
        adagrad_rule(0.1, 0.5, 0.05, 0.2, 1e-6),
    );
}

/// PyTorch's Adadelta: `s = ρ s + (1-ρ) g²`, `Δ = √(u+ε)/√(s+ε) g`,
/// `u = ρ u + (1-ρ) Δ²`, `p -= lr Δ`.
fn adadelta_rule(lr: f64, rho: f64, eps: f64, wd: f64) -> impl Fn(f64, f64, usize) -> f64 {
    move |mut p, c, steps| {
        let (mut square_avg, mut acc_delta) = (0.0, 0.0);
        for _ in 0..steps {
            let g = 2.0 * c * p + wd * p;
            square_avg = rho * square_avg + (1.0 - rho) * g * g;
            let delta = (acc_delta + eps).sqrt() / (square_avg + eps).sqrt() * g;
            acc_delta = rho * acc_delta + (1.0 - rho) * delta * delta;
            p -= lr * delta;
        }
        p
    }
}

#[test]
fn adadelta_follows_its_update_rule() {
    follows_the_rule(
        "Adadelta with the defaults",
        &mut Adadelta::new(1.0),
        5,
        adadelta_rule(1.0, 0.9, 1e-6, 0.0),
    );
    let mut opt = Adadelta::new(0.7)
        .with_rho(0.5)
        .with_eps(1e-3)
        .with_weight_decay(0.2);
    follows_the_rule(
        "Adadelta with other settings",
        &mut opt,
        4,
        adadelta_rule(0.7, 0.5, 1e-3, 0.2),
    );
}

type MakeOptimizer = fn() -> Box<dyn Optimizer<f32>>;

/// Every optimizer with its state slots in use, and a second instance of the same kind
/// with other settings (which loading the state must replace).
fn every_optimizer() -> Vec<(&'static str, MakeOptimizer, MakeOptimizer)> {
    vec![
        (
            "SGD",
            || Box::new(Sgd::new(0.1).with_momentum(0.9).with_weight_decay(0.01)),
            || Box::new(Sgd::new(3.0)),
        ),
        (
            "Adam",
            || Box::new(Adam::new(0.01)),
            || Box::new(Adam::new(0.5)),
        ),
        (
            "AdamW",
            || Box::new(Adam::adamw(0.01, 0.1)),
            || Box::new(Adam::adamw(0.5, 0.0)),
        ),
        (
            "RMSprop",
            || Box::new(RmsProp::new(0.01).with_momentum(0.5).centered()),
            || Box::new(RmsProp::new(0.5)),
        ),
        (
            "Adagrad",
            || {
                Box::new(
                    Adagrad::new(0.1)
                        .with_lr_decay(0.1)
                        .with_initial_accumulator_value(0.1),
                )
            },
            || Box::new(Adagrad::new(0.5)),
        ),
        (
            "Adadelta",
            || Box::new(Adadelta::new(1.0).with_weight_decay(0.01)),
            || Box::new(Adadelta::new(0.5).with_rho(0.5)),
        ),
    ]
}

fn f32_problem() -> (ParamStore<f32>, Vec<(&'static str, Vec<f32>)>) {
    let (params, coefficients) = problem();
    let mut narrow = ParamStore::new();
    for (name, t) in params.iter() {
        let data = t.data().iter().map(|&x| x as f32).collect();
        narrow.insert(name, Tensor::from_vec(data, t.shape()));
    }
    let coefficients = coefficients
        .into_iter()
        .map(|(n, c)| (n, c.into_iter().map(|x| x as f32).collect()))
        .collect();
    (narrow, coefficients)
}

/// `state` with a tensor `name` that no slot of the optimizer takes: `fresh` refuses to
/// load it, with a message containing `expected`.
fn refuses_stray_tensor(
    mut fresh: impl Optimizer<f32>,
    mut state: OptimizerState<f32>,
    name: &str,
    expected: &str,
) {
    state.tensors.insert(name.into(), Tensor::zeros([2, 2]));
    let err = fresh.load_state(state).expect_err("stray tensor");
    assert!(err.to_string().contains(expected), "{err}");
}

fn f32_step(opt: &mut dyn Optimizer<f32>, params: &mut ParamStore<f32>, c: &[(&str, Vec<f32>)]) {
    let tape = Tape::new();
    let bound = params.bind(&tape);
    let mut cost = tape.constant(Tensor::scalar(0.0));
    for (name, c) in c {
        let w = bound.get(name);
        let c = tape.constant(Tensor::from_vec(c.clone(), w.value().shape()));
        cost = cost + (c * w * w).sum();
    }
    let g = bound.grads(cost.backward()).expect("grads");
    opt.step(params, &g).expect("step");
}

fn bits(params: &ParamStore<f32>) -> Vec<u32> {
    params
        .values()
        .flat_map(|t| t.data().iter().map(|x| x.to_bits()))
        .collect()
}

/// Three steps, a checkpoint (written to bytes and read back), three more steps from
/// the checkpoint in a fresh optimizer of other settings: the same bits as six steps
/// without a break.
#[test]
fn every_optimizer_resumes_bit_identically_from_a_checkpoint() {
    for (what, make, make_other) in every_optimizer() {
        let (start, c) = f32_problem();
        let mut straight = start.clone();
        let mut opt = make();
        for _ in 0..6 {
            f32_step(opt.as_mut(), &mut straight, &c);
        }

        let mut first = start.clone();
        let mut opt = make();
        for _ in 0..3 {
            f32_step(opt.as_mut(), &mut first, &c);
        }
        let mut saved = Checkpoint::new(first.clone());
        saved.optimizer = Some(opt.state());
        let bytes = saved.to_bytes().expect("serialise");
        let loaded = Checkpoint::<f32>::from_bytes(&bytes, Path::new("memory")).expect("parse");
        assert_eq!(loaded, saved, "{what}: the checkpoint changed on the way");
        let state = loaded.optimizer.clone().expect("optimizer state");
        assert!(
            !state.tensors.is_empty() && state.step == 3,
            "{what}: {state:?}"
        );

        let mut resumed = start.clone();
        loaded.restore_params(&mut resumed).expect("restore");
        let mut opt = make_other();
        opt.load_state(state).expect("load state");
        for _ in 0..3 {
            f32_step(opt.as_mut(), &mut resumed, &c);
        }
        assert_eq!(
            bits(&resumed),
            bits(&straight),
            "{what}: the resumed run differs"
        );
        assert_ne!(bits(&straight), bits(&start), "{what}: nothing moved");
    }
}

/// A state of one kind does not load into another.
#[test]
fn a_state_loads_only_into_its_own_kind() {
    let kinds = every_optimizer();
    for (what, make, _) in &kinds {
        for (other, make_other, _) in &kinds {
            if what != other {
                let err = make_other()
                    .load_state(make().state())
                    .expect_err("another kind");
                assert!(err.to_string().contains("optimizer"), "{err}");
            }
        }
    }
}

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("should panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A constructor or setter given a value out of range panics naming the optimizer, the
/// hyper-parameter and the value.
#[test]
fn hyper_parameters_out_of_range_are_refused_by_name() {
    type Construct = Box<dyn FnOnce()>;
    let cases: Vec<(Construct, &str)> = vec![
        (
            Box::new(|| drop(RmsProp::<f32>::new(-1.0))),
            "RMSprop: lr must be finite and at least 0, not -1",
        ),
        (
            Box::new(|| drop(RmsProp::<f32>::new(0.01).with_alpha(1.5))),
            "RMSprop: alpha must be in [0, 1], not 1.5",
        ),
        (
            Box::new(|| drop(RmsProp::<f32>::new(0.01).with_momentum(-0.9))),
            "RMSprop: momentum must be finite and at least 0, not -0.9",
        ),
        (
            Box::new(|| drop(Adagrad::<f32>::new(f64::NAN))),
            "Adagrad: lr must be finite and at least 0, not NaN",
        ),
        (
            Box::new(|| drop(Adagrad::<f32>::new(0.01).with_lr_decay(-0.1))),
            "Adagrad: lr_decay must be finite and at least 0, not -0.1",
        ),
        (
            Box::new(|| drop(Adagrad::<f32>::new(0.01).with_initial_accumulator_value(-1.0))),
            "Adagrad: initial_accumulator_value must be finite and at least 0, not -1",
        ),
        (
            Box::new(|| drop(Adadelta::<f32>::new(1.0).with_rho(1.1))),
            "Adadelta: rho must be in [0, 1], not 1.1",
        ),
        (
            Box::new(|| drop(Adadelta::<f32>::new(1.0).with_eps(-1e-6))),
            "Adadelta: eps must be finite and at least 0, not -0.000001",
        ),
        (
            Box::new(|| drop(Adam::<f32>::adamw(1e-3, -0.01))),
            "AdamW: weight_decay must be finite and at least 0, not -0.01",
        ),
        (
            Box::new(|| drop(Adam::<f32>::adamw(-1e-3, 0.01))),
            "AdamW: lr must be finite and at least 0, not -0.001",
        ),
        (
            Box::new(|| drop(Adam::<f32>::new(-1e-3))),
            "Adam: lr must be finite and at least 0, not -0.001",
        ),
        (
            Box::new(|| drop(Sgd::<f32>::new(0.1).with_momentum(f64::INFINITY))),
            "SGD: momentum must be finite and at least 0, not inf",
        ),
    ];
    for (make, says) in cases {
        let message = panic_message(make);
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }
}

/// A value set through a public field, a learning rate set by hand, or a checkpoint's
/// hyper-parameter out of range is an error at the step or load, and nothing moves.
#[test]
fn out_of_range_fields_and_saved_states_are_errors_and_change_nothing() {
    let (mut params, c) = f32_problem();
    let before = params.clone();
    let tape_grads = {
        let tape = Tape::new();
        let bound = params.bind(&tape);
        let mut cost = tape.constant(Tensor::scalar(0.0f32));
        for (name, c) in &c {
            let w = bound.get(name);
            cost = cost
                + (tape.constant(Tensor::from_vec(c.clone(), w.value().shape())) * w * w).sum();
        }
        bound.grads(cost.backward()).expect("grads")
    };

    let mut adam = Adam::<f32>::new(1e-3);
    adam.beta2 = 1.0;
    let err = adam.step(&mut params, &tape_grads).expect_err("beta2 = 1");
    assert!(
        err.to_string()
            .contains("Adam: beta2 must be in [0, 1), not 1"),
        "{err}"
    );

    let mut rms = RmsProp::<f32>::new(0.01);
    rms.set_learning_rate(-0.5);
    let err = rms.step(&mut params, &tape_grads).expect_err("negative lr");
    assert!(
        err.to_string()
            .contains("RMSprop: lr must be finite and at least 0, not -0.5"),
        "{err}"
    );

    let mut state = Adadelta::<f32>::new(1.0).state();
    state.hyper.insert("rho".into(), -0.5);
    let mut adadelta = Adadelta::<f32>::new(1.0);
    let err = adadelta.load_state(state).expect_err("rho = -0.5");
    assert!(
        err.to_string()
            .contains("Adadelta: rho must be in [0, 1], not -0.5"),
        "{err}"
    );
    assert_eq!(
        adadelta.rho, 0.9,
        "a refused state leaves the optimizer as it was"
    );

    refuses_stray_tensor(
        Adagrad::<f32>::new(0.01),
        Adagrad::<f32>::new(0.01).state(),
        "total.w",
        "unexpected Adagrad state tensor \"total.w\"",
    );
    // SGD too: a tensor of no slot is refused, not dropped.
    let mut sgd = Sgd::<f32>::new(0.1).with_momentum(0.9);
    f32_step(&mut sgd, &mut params.clone(), &c);
    refuses_stray_tensor(
        Sgd::<f32>::new(0.1),
        sgd.state(),
        "speed.w",
        "unexpected SGD state tensor \"speed.w\" (expected velocity.*)",
    );

    assert_eq!(params, before);
}

/// The per-epoch decays as a recipe would run them: PyTorch's MNIST example's
/// `StepLR(step_size=1, gamma=0.7)` sets Adadelta's rate to `0.7^epoch` at every step
/// of the epoch.
#[test]
fn step_decay_sets_the_rate_each_epoch() {
    let schedule: Schedule = "step:1:0.7".parse().expect("parse");
    let mut opt = Adadelta::<f32>::new(1.0);
    for epoch in 0..4 {
        for within in 0..3 {
            opt.set_learning_rate(1.0 * schedule.factor(epoch * 3 + within, 3, 14));
            assert!((opt.learning_rate() - 0.7f64.powi(epoch as i32)).abs() < 1e-15);
        }
    }
}
