//! Gradient hooks (`Var::register_hook`): when they run in the reverse sweep, what they
//! see, how a replacement flows on, and what the recorded sweep (`grad`) and per-sample
//! gradients do with them.

use autodiff::func::{batch_function, per_sample, PerSamplePath};
use autodiff::{CustomOp, Tape, Tensor};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// `y = 2 Σ inputs`, whose vjp writes "vjp NAME" to a log: the order of rules and hooks.
struct Logged {
    name: &'static str,
    log: Log,
}

impl CustomOp<f64> for Logged {
    fn name(&self) -> &str {
        self.name
    }
    fn forward(&self, inputs: &[&Tensor<f64>]) -> Tensor<f64> {
        let mut sum = inputs[0].clone();
        for x in &inputs[1..] {
            sum = &sum + *x;
        }
        &sum * 2.0
    }
    fn vjp(
        &self,
        inputs: &[&Tensor<f64>],
        _: &Tensor<f64>,
        grad: &Tensor<f64>,
    ) -> Vec<Tensor<f64>> {
        self.log.borrow_mut().push(format!("vjp {}", self.name));
        inputs.iter().map(|_| grad * 2.0).collect()
    }
}

/// A hook that writes "hook NAME" to `log` and keeps the gradient.
fn mark(log: &Log, name: &'static str) -> impl Fn(&Tensor<f64>) -> Option<Tensor<f64>> {
    let log = Rc::clone(log);
    move |_| {
        log.borrow_mut().push(format!("hook {name}"));
        None
    }
}

fn v(data: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), [data.len()])
}

#[test]
fn hooks_run_in_reverse_creation_order_each_after_all_its_consumers_rules() {
    let log = log();
    let op = |name| Logged {
        name,
        log: Rc::clone(&log),
    };
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&[1.0, 2.0]));
    let a = tape.custom(op("f"), &[x]);
    let b = tape.custom(op("g"), &[a]);
    let c = tape.custom(op("h"), &[a, b]); // a has two consumers, g and h
    let loss = c.sum();
    for (var, name) in [(x, "x"), (a, "a"), (b, "b"), (c, "c"), (loss, "loss")] {
        var.register_hook(mark(&log, name));
    }
    let grads = loss.backward();
    let expected = [
        "hook loss",
        "hook c",
        "vjp h",
        "hook b",
        "vjp g",
        "hook a", // after both of its consumers' rules, before its own
        "vjp f",
        "hook x",
    ];
    assert_eq!(*log.borrow(), expected);
    // dloss/dc = 1, dc/da = 2 + 2·2 (directly and through b), da/dx = 2.
    assert_eq!(grads[x].data(), &[12.0, 12.0]);

    // The same order in the other fast sweeps: with a seed, and releasing.
    log.borrow_mut().clear();
    loss.backward_with(Tensor::ones(loss.shape()));
    assert_eq!(*log.borrow(), expected);
    log.borrow_mut().clear();
    assert_eq!(loss.backward_releasing()[x].data(), &[12.0, 12.0]);
    assert_eq!(*log.borrow(), expected);
}

#[test]
fn a_replaced_gradient_flows_on_to_the_inputs() {
    let x0 = [1.0, -2.0, 0.5];
    let run = |hook: fn(&Tensor<f64>) -> Option<Tensor<f64>>, release: bool| {
        let tape = Tape::<f64>::new();
        let x = tape.param(v(&x0));
        let h = x.square();
        h.register_hook(hook);
        let loss = (h * 3.0).sum(); // dloss/dh = 3
        let grads = if release {
            loss.backward_releasing()
        } else {
            loss.backward()
        };
        grads[x].data().to_vec()
    };
    for release in [false, true] {
        // Kept: dloss/dx = 3 · 2x.
        let kept = run(|_| None, release);
        assert_eq!(kept, x0.map(|x| 6.0 * x));
        // Doubled at h: 2 · 3 · 2x.
        let doubled = run(|g| Some(g * 2.0), release);
        assert_eq!(doubled, x0.map(|x| 12.0 * x));
        // Zeroed at h: nothing reaches x.
        let zeroed = run(|g| Some(Tensor::zeros(g.shape())), release);
        assert_eq!(zeroed, [0.0; 3]);
    }

    // backward_with: the seed is what the hook on the output sees and replaces.
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&x0));
    let y = x * 5.0;
    let seen = log();
    let s = Rc::clone(&seen);
    y.register_hook(move |g| {
        s.borrow_mut().push(format!("{:?}", g.data()));
        Some(g * -1.0)
    });
    let grads = y.backward_with(v(&[1.0, 2.0, 3.0]));
    assert_eq!(*seen.borrow(), ["[1.0, 2.0, 3.0]"]);
    assert_eq!(grads[x].data(), &[-5.0, -10.0, -15.0]);
}

#[test]
fn a_leaf_hook_sees_the_complete_gradient_of_a_leaf_used_twice() {
    let x0 = [1.5, -0.5];
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&x0));
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = Rc::clone(&calls);
    x.register_hook(move |g| {
        c.borrow_mut().push(g.data().to_vec());
        Some(g + &Tensor::ones(g.shape())) // what backward returns for x
    });
    let retained = x.exp();
    retained.retain_grad();
    let loss = (x * x).sum() + (retained * 3.0).sum(); // x in two ops, twice in one
    let grads = loss.backward();
    // Called once, with 2x + 3 eˣ: every contribution summed.
    let complete: Vec<f64> = x0.iter().map(|x| 2.0 * x + 3.0 * x.exp()).collect();
    assert_eq!(*calls.borrow(), std::slice::from_ref(&complete));
    let replaced: Vec<f64> = complete.iter().map(|g| g + 1.0).collect();
    assert_eq!(grads[x].data(), &replaced[..]);
    assert_eq!(grads[retained].data(), &[3.0, 3.0]);

    // A retained value keeps its replaced gradient.
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&x0));
    let h = x * 2.0;
    h.retain_grad();
    h.register_hook(|g| Some(g * 10.0));
    let grads = h.sum().backward();
    assert_eq!(grads[h].data(), &[10.0, 10.0]);
    assert_eq!(grads[x].data(), &[20.0, 20.0]);
}

#[test]
fn two_hooks_on_one_value_chain_in_registration_order() {
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&[1.0, 2.0]));
    let h = x * 3.0;
    let seen = log();
    let (s1, s2, s3) = (Rc::clone(&seen), Rc::clone(&seen), Rc::clone(&seen));
    h.register_hook(move |g| {
        s1.borrow_mut().push(format!("first {:?}", g.data()));
        Some(g * 2.0)
    });
    h.register_hook(move |g| {
        s2.borrow_mut().push(format!("second {:?}", g.data()));
        None // keeps what the first left
    });
    h.register_hook(move |g| {
        s3.borrow_mut().push(format!("third {:?}", g.data()));
        Some(g + &Tensor::ones(g.shape()))
    });
    let grads = (h * h).sum().backward(); // dC/dh = 2h = [6, 12]
    assert_eq!(
        *seen.borrow(),
        [
            "first [6.0, 12.0]",
            "second [12.0, 24.0]",
            "third [12.0, 24.0]"
        ]
    );
    assert_eq!(grads[x].data(), &[39.0, 75.0]); // 3 · (2 · 2h + 1)
}

fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_wrong_shaped_replacement_panics_naming_the_shapes_and_the_registering_line() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::zeros([2, 3]));
    let h = x.exp();
    let line = line!() + 1;
    h.register_hook(|_| Some(Tensor::zeros([3])));
    let msg = panic_message(|| {
        h.sum().backward();
    });
    assert!(msg.contains("[3]") && msg.contains("[2, 3]"), "{msg}");
    assert!(msg.contains(&format!("{}:{line}:", file!())), "{msg}");
    assert!(msg.contains("node #1 (exp)"), "{msg}");

    // The recorded sweep checks the same.
    let msg = panic_message(|| {
        h.sum().grad(&[x]);
    });
    assert!(msg.contains("[3]") && msg.contains("[2, 3]"), "{msg}");

    // No gradient reaches a constant: registering there is refused at once.
    let c = tape.constant(Tensor::zeros([2]));
    let msg = panic_message(|| (c * 2.0).register_hook(|_| None));
    assert!(msg.contains("needs no gradient"), "{msg}");
}

#[test]
fn the_recorded_sweep_runs_hooks_and_a_replacement_is_a_constant() {
    let x0 = [0.5, 2.0];

    // A hook that keeps the gradient (None) leaves it differentiable: g = 3x², then
    // d/dx Σ g = 6x. The second sweep reaches x again, so the hook runs twice.
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&x0));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = Rc::clone(&seen);
    x.register_hook(move |g| {
        s.borrow_mut().push(g.data().to_vec());
        None
    });
    let g = x.powi(3).sum().grad(&[x])[0];
    assert_eq!(g.value().data(), &[0.75, 12.0]);
    let h = g.sum().grad(&[x])[0];
    assert_eq!(h.value().data(), &[3.0, 12.0]);
    assert_eq!(*seen.borrow(), [vec![0.75, 12.0], vec![3.0, 12.0]]);

    // A replacement is the gradient returned, as a constant: its own gradient with
    // respect to x is zero.
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&x0));
    x.register_hook(|g| Some(g * 2.0));
    let g = x.powi(3).sum().grad(&[x])[0];
    assert_eq!(g.value().data(), &[1.5, 24.0]); // 2 · 3x²
    assert!(!g.requires_grad());
    let h = g.sum().grad(&[x])[0];
    assert_eq!(h.value().data(), &[0.0, 0.0]);

    // backward agrees with grad's first order.
    assert_eq!(x.powi(3).sum().backward()[x].data(), &[1.5, 24.0]);

    // An intermediate's replacement cuts only the derivative through that gradient:
    // p = x³ gets adjoint 2 (a constant, as the seed was), x gets 2 · 3x², and that
    // still depends on x through p's rule: d/dx Σ 6x² = 12x.
    let tape = Tape::<f64>::new();
    let x = tape.param(v(&x0));
    let p = x.powi(3);
    p.register_hook(|g| Some(g * 2.0));
    let g = p.sum().grad(&[x])[0];
    assert_eq!(g.value().data(), &[1.5, 24.0]);
    let h = g.sum().grad(&[x])[0];
    assert_eq!(h.value().data(), &[6.0, 24.0]);
}

#[test]
fn per_sample_gradients_take_the_loop_so_a_hook_sees_one_example() {
    let w = Tensor::from_vec(vec![0.5, -1.0], [2, 1]);
    let xs = Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5, 3.0, 1.0], [3, 2]);
    let plain = batch_function(|_, p, batch| batch[0].matmul(p[0]).square().sum_axes(&[1], false));
    let hooked = batch_function(|_, p, batch| {
        let h = batch[0].matmul(p[0]);
        h.register_hook(|g| {
            assert_eq!(g.shape(), &[1, 1], "one example's gradient");
            Some(g * 2.0)
        });
        h.square().sum_axes(&[1], false)
    });
    let (w, xs) = (std::slice::from_ref(&w), std::slice::from_ref(&xs));
    let base = per_sample(plain, w, xs, PerSamplePath::Auto);
    assert!(base.batched);
    let with_hook = per_sample(hooked, w, xs, PerSamplePath::Auto);
    assert!(!with_hook.batched);
    let why = with_hook.why_loop.unwrap_or_default();
    assert!(why.contains("register_hook"), "{why}");
    for (hooked, plain) in with_hook.grads[0].data().iter().zip(base.grads[0].data()) {
        assert!(
            f64::abs(hooked - 2.0 * plain) < 1e-12,
            "{hooked} vs 2 · {plain}"
        );
    }
}
