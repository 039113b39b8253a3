//! `Var::backward_releasing`: the same gradients as `backward`, bit for bit, with each
//! op result's value dropped once the sweep has passed it; reading a dropped value
//! panics and names the releasing sweep.

use autodiff::{Conv2dOptions, Gradients, Tape, Tensor, Var};

/// Deterministic values in about [-1, 1], different for each `seed`.
fn filled(shape: &[usize], seed: usize) -> Tensor<f32> {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| (((i * 7 + seed * 13) as f32) * 0.377).sin())
        .collect();
    Tensor::from_vec(data, shape)
}

const BATCH: usize = 6;
const LABELS: [usize; BATCH] = [0, 3, 1, 2, 3, 0];

fn mlp_params() -> Vec<Tensor<f32>> {
    vec![
        filled(&[10, 16], 1),
        filled(&[16], 2),
        filled(&[16, 12], 3),
        filled(&[12], 4),
        filled(&[12, 4], 5),
        filled(&[4], 6),
    ]
}

fn hidden<'s>(_: &'s Tape<f32>, p: &[Var<'s, f32>]) -> Var<'s, f32> {
    let h = (p[0].matmul(p[1]) + p[2]).tanh();
    (h.matmul(p[3]) + p[4]).relu()
}

/// A three-layer perceptron's cross-entropy; with `recompute`, its two hidden layers
/// are one recomputed block.
fn mlp_cost<'t>(tape: &'t Tape<f32>, p: &[Var<'t, f32>], recompute: bool) -> Var<'t, f32> {
    let x = tape.constant(filled(&[BATCH, 10], 7));
    let inputs = [x, p[0], p[1], p[2], p[3]];
    let h = if recompute {
        tape.recompute(hidden, &inputs)
    } else {
        hidden(tape, &inputs)
    };
    (h.matmul(p[4]) + p[5]).cross_entropy(&LABELS)
}

fn conv_params() -> Vec<Tensor<f32>> {
    vec![
        filled(&[4, 1, 3, 3], 1),
        filled(&[4], 2),
        filled(&[5, 4, 3, 3], 3),
        filled(&[5], 4),
        filled(&[5, 4], 5),
        filled(&[4], 6),
    ]
}

/// Convolution, ReLU, max pooling, convolution, ReLU, a linear layer: a small LeNet.
fn conv_cost<'t>(tape: &'t Tape<f32>, p: &[Var<'t, f32>]) -> Var<'t, f32> {
    let x = tape.constant(filled(&[BATCH, 1, 8, 8], 7));
    let same = Conv2dOptions {
        padding: [1, 1],
        ..Conv2dOptions::default()
    };
    let a = x.conv2d_bias(p[0], p[1], same).relu().max_pool2d(2, 2, 0);
    let b = a
        .conv2d_bias(p[2], p[3], Conv2dOptions::default())
        .relu()
        .max_pool2d(2, 2, 0)
        .flatten();
    (b.matmul(p[4]) + p[5]).cross_entropy(&LABELS)
}

/// Each parameter's gradient as bits, in order.
fn bits(grads: &Gradients<f32>, params: &[Var<'_, f32>]) -> Vec<Vec<u32>> {
    params
        .iter()
        .map(|&p| grads[p].data().iter().map(|g| g.to_bits()).collect())
        .collect()
}

/// Gradients of `cost` at `values` by `backward` and by `backward_releasing`, each on
/// its own tape.
fn both_ways(
    values: &[Tensor<f32>],
    cost: impl for<'t> Fn(&'t Tape<f32>, &[Var<'t, f32>]) -> Var<'t, f32>,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let kept = Tape::new();
    let p: Vec<_> = values.iter().map(|v| kept.param(v)).collect();
    let plain = bits(&cost(&kept, &p).backward(), &p);
    let released = Tape::new();
    let p: Vec<_> = values.iter().map(|v| released.param(v)).collect();
    let releasing = bits(&cost(&released, &p).backward_releasing(), &p);
    (plain, releasing)
}

#[test]
fn mlp_gradients_are_the_same_bits_as_backward() {
    let (plain, releasing) = both_ways(&mlp_params(), |t, p| mlp_cost(t, p, false));
    assert_eq!(plain, releasing);
}

#[test]
fn conv_net_gradients_are_the_same_bits_as_backward() {
    let (plain, releasing) = both_ways(&conv_params(), conv_cost);
    assert_eq!(plain, releasing);
}

#[test]
fn recomputed_block_gradients_are_the_same_bits_as_backward() {
    let (plain, releasing) = both_ways(&mlp_params(), |t, p| mlp_cost(t, p, true));
    assert_eq!(plain, releasing);
    // And the same as the block recorded directly (its inputs are read once each).
    let (direct, _) = both_ways(&mlp_params(), |t, p| mlp_cost(t, p, false));
    assert_eq!(direct, releasing);
}

#[test]
fn only_the_leaves_values_are_left_on_the_tape() {
    for recompute in [false, true] {
        let values = mlp_params();
        let tape = Tape::new();
        let p: Vec<_> = values.iter().map(|v| tape.param(v)).collect();
        let cost = mlp_cost(&tape, &p, recompute);
        let input_bytes = BATCH * 10 * 4;
        let leaf_bytes: usize = values.iter().map(|v| v.numel() * 4).sum::<usize>() + input_bytes;
        assert!(tape.value_bytes() > leaf_bytes);
        let _ = cost.backward_releasing();
        assert_eq!(tape.value_bytes(), leaf_bytes, "recompute: {recompute}");
    }
}

#[test]
fn leaves_and_later_values_stay_readable() {
    let values = mlp_params();
    let tape = Tape::new();
    let p: Vec<_> = values.iter().map(|v| tape.param(v)).collect();
    let cost = mlp_cost(&tape, &p, false);
    let later = (p[5] * 2.0).sum();
    let _ = cost.backward_releasing();
    for (var, value) in p.iter().zip(&values) {
        assert_eq!(var.value().data(), value.data());
    }
    // Recorded after the output: not part of the sweep, so kept and usable.
    let expected: f32 = values[5].data().iter().map(|v| v * 2.0).sum();
    assert_eq!(later.item(), expected);
    assert_eq!(later.backward()[p[5]].data(), &[2.0; 4]);
}

#[test]
fn retained_gradients_are_returned() {
    let values = mlp_params();
    let retained = |release: bool| {
        let tape = Tape::new();
        let p: Vec<_> = values.iter().map(|v| tape.param(v)).collect();
        let x = tape.constant(filled(&[BATCH, 10], 7));
        let h = (x.matmul(p[0]) + p[1]).tanh();
        h.retain_grad();
        let cost = h.matmul(p[2]).sum();
        let grads = if release {
            cost.backward_releasing()
        } else {
            cost.backward()
        };
        grads[h].data().to_vec()
    };
    assert_eq!(retained(false), retained(true));
}

/// A tape swept by `backward_releasing`, with its cost and a hidden value.
fn released<R>(f: impl for<'t> FnOnce(&'t Tape<f32>, Var<'t, f32>, Var<'t, f32>) -> R) -> R {
    let values = mlp_params();
    let tape = Tape::new();
    let p: Vec<_> = values.iter().map(|v| tape.param(v)).collect();
    let x = tape.constant(filled(&[BATCH, 10], 7));
    let h = (x.matmul(p[0]) + p[1]).tanh();
    let cost = (h.matmul(p[2]) + p[3]).sum();
    let _ = cost.backward_releasing();
    f(&tape, cost, h)
}

const RELEASED: &str = "its value was released by backward_releasing";

#[test]
#[should_panic(expected = "its value was released by backward_releasing")]
fn reading_a_released_value_panics() {
    released(|_, _, h| h.value());
}

#[test]
#[should_panic(expected = "its value was released by backward_releasing")]
fn reading_a_released_cost_panics() {
    released(|_, cost, _| cost.item());
}

#[test]
#[should_panic(expected = "its value was released by backward_releasing")]
fn with_value_on_a_released_value_panics() {
    released(|_, _, h| h.with_value(|v| v.numel()));
}

#[test]
#[should_panic(expected = "its value was released by backward_releasing")]
fn a_second_backward_panics() {
    released(|_, cost, _| cost.backward());
}

#[test]
#[should_panic(expected = "its value was released by backward_releasing")]
fn a_recorded_gradient_after_release_panics() {
    released(|tape, cost, _| {
        let w = tape.param(Tensor::<f32>::ones([1]));
        let _ = cost.grad(&[w]);
    });
}

#[test]
#[should_panic(expected = "its value was released by backward_releasing")]
fn recording_an_op_on_a_released_value_panics() {
    released(|_, _, h| {
        let _ = h.relu();
    });
}

#[test]
fn a_sweep_through_released_values_panics_with_the_message() {
    // `later` was recorded before the release, so only the sweep itself can notice
    // that its input's value is gone.
    let message = std::panic::catch_unwind(|| {
        let tape = Tape::<f32>::new();
        let w = tape.param(Tensor::from_vec(vec![0.5, 2.0], [2]));
        let cost = (w * w).sum();
        let later = cost * 2.0;
        let _ = cost.backward_releasing();
        let _ = later.backward();
    })
    .expect_err("must panic");
    let text = message
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or("");
    assert!(text.contains(RELEASED), "{text}");
    assert!(text.contains("node #"), "{text}");
}

#[test]
fn recomputed_block_under_anomaly_detection_gives_the_same_bits() {
    // With anomaly detection on, the block's vjp reads its output and adjoint by
    // reference instead of taking them over: the other path through the sweep.
    let values = mlp_params();
    let run = |release: bool| {
        let tape = Tape::new();
        tape.detect_anomaly(true);
        let p: Vec<_> = values.iter().map(|v| tape.param(v)).collect();
        let cost = mlp_cost(&tape, &p, true);
        let grads = if release {
            cost.backward_releasing()
        } else {
            cost.backward()
        };
        assert!(tape.anomaly().is_none());
        bits(&grads, &p)
    };
    assert_eq!(run(false), run(true));
}
