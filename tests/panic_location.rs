//! Shape panics name the caller's line, not a line inside `autodiff`. One test in a
//! binary of its own: it replaces the process-wide panic hook, which no other test may
//! race on.

use autodiff::{Conv2dOptions, CustomOp, Tape, Tensor, Var};
use nn::{Activation, Init, Model, Module};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

struct Identity;
impl CustomOp<f32> for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn forward(&self, inputs: &[&Tensor<f32>]) -> Tensor<f32> {
        inputs[0].clone()
    }
    fn vjp(&self, _: &[&Tensor<f32>], _: &Tensor<f32>, grad: &Tensor<f32>) -> Vec<Tensor<f32>> {
        vec![grad.clone()]
    }
}

/// A vjp that returns a gradient of the wrong shape.
struct WrongGradShape;
impl CustomOp<f32> for WrongGradShape {
    fn name(&self) -> &str {
        "wrong_grad_shape"
    }
    fn forward(&self, inputs: &[&Tensor<f32>]) -> Tensor<f32> {
        inputs[0].clone()
    }
    fn vjp(&self, _: &[&Tensor<f32>], _: &Tensor<f32>, _: &Tensor<f32>) -> Vec<Tensor<f32>> {
        vec![Tensor::zeros([1])]
    }
}

#[test]
fn shape_panics_report_the_callers_file_and_line() {
    let seen: Arc<Mutex<Option<(String, u32, String)>>> = Arc::default();
    let hook_seen = Arc::clone(&seen);
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| (l.file().to_string(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        if let Some((file, line)) = location {
            *hook_seen.lock().unwrap() = Some((file, line, message));
        }
    }));

    // Runs `f`, which must panic in this file, on a line of this test after `from`.
    let failures = Mutex::new(Vec::new());
    let from = line!();
    let expect_here = |what: &str, f: &dyn Fn()| {
        *seen.lock().unwrap() = None;
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        let report = match (result.is_err(), seen.lock().unwrap().take()) {
            (false, _) => Some(format!("{what} did not panic")),
            (true, None) => Some(format!("{what}: the hook saw no panic")),
            (true, Some((file, at, message))) => (file != file!() || at <= from)
                .then(|| format!("{what} panicked at {file}:{at}: {message}")),
        };
        failures.lock().unwrap().extend(report);
    };

    let tape = Tape::<f32>::new();
    let other = Tape::<f32>::new();
    let m23 = tape.param(Tensor::zeros([2, 3]));
    let m43 = tape.param(Tensor::zeros([4, 3]));
    let v4 = tape.param(Tensor::zeros([4]));
    let image = tape.constant(Tensor::zeros([1, 3, 5, 5]));
    let kernel = tape.param(Tensor::zeros([4, 2, 3, 3]));

    expect_here("add", &|| {
        let _ = m23 + v4;
    });
    expect_here("matmul", &|| {
        let _ = m23.matmul(m43);
    });
    expect_here("linear", &|| {
        let _ = m23.linear_relu(m43, v4);
    });
    expect_here("reshape", &|| {
        let _ = m23.reshape([5]);
    });
    expect_here("concat", &|| {
        let _ = Var::concat(&[m23, m43], 1);
    });
    expect_here("index_select", &|| {
        let _ = m23.select_rows(&[7]);
    });
    expect_here("conv2d", &|| {
        let _ = image.conv2d(kernel, Conv2dOptions::default());
    });
    expect_here("max_pool2d", &|| {
        let _ = m23.max_pool2d(2, 2, 0);
    });
    expect_here("cross_entropy", &|| {
        let _ = m43.cross_entropy(&[0]);
    });
    expect_here("embedding", &|| {
        let _ = m43.embedding(&[0, 4]);
    });
    expect_here("embedding_of", &|| {
        let _ = m43.embedding_of(tape.constant(Tensor::from_vec(vec![1.5], [1])));
    });
    expect_here("layer_norm", &|| {
        let _ = m23.layer_norm(3, 1e-5);
    });
    expect_here("batch_norm", &|| {
        let _ = tape.constant(Tensor::zeros([1, 3])).batch_norm(1e-5);
    });
    expect_here("masked_fill", &|| {
        let _ = m23.masked_fill(&[true; 4], 0.0);
    });
    expect_here("sum_axes", &|| {
        let _ = m23.sum_axes(&[3], false);
    });
    expect_here("backward", &|| {
        let _ = m23.backward();
    });
    let foreign = other.param(Tensor::zeros([2, 3]));
    expect_here("mixed tapes", &|| {
        let _ = m23 - foreign;
    });
    expect_here("custom", &|| {
        let _ = tape.custom(Identity, &[foreign]);
    });
    let grads = m23.sum().backward();
    expect_here("gradients index", &|| {
        let _ = grads[image].clone();
    });
    expect_here("tensor add", &|| {
        let _ = &Tensor::<f32>::zeros([2]) + &Tensor::zeros([3]);
    });
    expect_here("item", &|| {
        let _ = m23.item();
    });
    expect_here("from_vec", &|| {
        let _ = Tensor::from_vec(vec![1.0f32; 5], [2, 3]);
    });
    expect_here("sub_scaled", &|| {
        Tensor::<f32>::zeros([2]).sub_scaled(&Tensor::zeros([3]), 1.0)
    });
    expect_here("tensor -=", &|| {
        let mut row = Tensor::<f32>::zeros([3]);
        row -= &Tensor::zeros([2, 3]);
    });
    let scalar = autodiff::scalar::Tape::new();
    let scalar_other = autodiff::scalar::Tape::new();
    let (x, y) = (scalar.var(1.0), scalar_other.var(2.0));
    expect_here("scalar mixed tapes", &|| {
        let _ = x * y;
    });
    // Through the model's chain of boxed layers to the one that cannot read the input.
    let model = Model::new(&[3, 4, 2], Activation::Relu, Activation::Relu, Init::He, 1);
    let bound = model.params().bind(&tape);
    expect_here("model forward, wrong width", &|| {
        let _ = model.forward(&bound, tape.constant(Tensor::zeros([2, 2])));
    });

    // A custom op whose vjp breaks its contract panics inside the engine, at the sweep;
    // the message names the op and the line that applied it.
    let applied = line!() + 1;
    let y = tape.custom(WrongGradShape, &[m23]);
    *seen.lock().unwrap() = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| y.sum().backward()));
    let message = seen
        .lock()
        .unwrap()
        .take()
        .map(|(_, _, m)| m)
        .unwrap_or_default();
    let expected = format!(
        "custom op `wrong_grad_shape` (applied at {}:{applied}:",
        file!()
    );
    if result.is_ok()
        || !message.contains(&expected)
        || !message.contains("[1] for input 0, of shape [2, 3]")
    {
        failures
            .lock()
            .unwrap()
            .push(format!("custom vjp of the wrong shape: {message:?}"));
    }

    panic::set_hook(previous);
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "panics outside the caller's file:\n{}",
        failures.join("\n")
    );
}
