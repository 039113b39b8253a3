//! The tape's flop count (`Tape::flops`) against multiply-adds counted by hand.

use autodiff::{Conv2dOptions, Flops, Tape, Tensor};

#[test]
fn products_count_and_the_rest_do_not() {
    let tape = Tape::<f64>::new();
    // A convolution on data (no input gradient), 1 -> 6 channels, 5x5, 28x28 -> 24x24.
    let x = tape.constant(Tensor::ones([2, 1, 28, 28]));
    let w = tape.param(Tensor::ones([6, 1, 5, 5]));
    let b = tape.param(Tensor::zeros([6]));
    let conv = 2 * 6 * 24 * 24 * 25;
    let h = x.conv2d_bias(w, b, Conv2dOptions::default()).relu();
    assert_eq!(
        tape.flops(),
        Flops {
            forward: 2 * conv,
            backward: 2 * conv
        }
    );
    // A linear layer after it: both operands need gradients, the bias adds nothing.
    let h = h.reshape([2, 6 * 24 * 24]);
    let w2 = tape.param(Tensor::ones([6 * 24 * 24, 10]));
    let b2 = tape.param(Tensor::zeros([10]));
    let y = h.linear(w2, b2).sigmoid();
    let linear = 2 * 6 * 24 * 24 * 10;
    // A batched product of two values that both need gradients.
    let q = y.reshape([2, 5, 2]);
    let scores = q.matmul(q.transpose(1, 2));
    let batched = 2 * 5 * 2 * 5;
    let _ = scores.sum();
    let expected = Flops {
        forward: 2 * (conv + linear + batched),
        backward: 2 * (conv + 2 * linear + 2 * batched),
    };
    assert_eq!(tape.flops(), expected);
    assert_eq!(expected.total(), expected.forward + expected.backward);
}

#[test]
fn the_profile_times_every_op_and_counts_the_same_flops() {
    let tape = Tape::<f32>::new();
    tape.set_profiling(true);
    let x = tape.constant(Tensor::ones([8, 1, 12, 12]));
    let w = tape.param(Tensor::full([4, 1, 3, 3], 0.1));
    let b = tape.param(Tensor::zeros([4]));
    let h = x.conv2d_bias(w, b, Conv2dOptions::default()).relu();
    let w2 = tape.param(Tensor::full([4 * 10 * 10, 3], 0.01));
    let b2 = tape.param(Tensor::zeros([3]));
    let loss = h.reshape([8, 400]).linear(w2, b2).tanh().sum();
    loss.backward();
    let profile = tape.profile();
    let calls: usize = profile.ops().iter().map(|r| r.calls).sum();
    // Every recorded op is timed once forward; leaves are not ops.
    assert_eq!(calls, tape.len() - 5);
    let flops: u64 = profile.ops().iter().map(|r| r.flops).sum();
    assert_eq!(flops, tape.flops().total());
    let row = |op: &str| profile.ops().iter().find(|r| r.op == op).cloned().unwrap();
    assert_eq!(row("conv2d").calls, 1);
    assert!(row("conv2d").backward > std::time::Duration::ZERO);
    // Longest first.
    assert!(profile
        .ops()
        .windows(2)
        .all(|p| p[0].total() >= p[1].total()));
    // Off: nothing more is timed.
    tape.set_profiling(false);
    let _ = loss * 2.0;
    assert_eq!(tape.profile(), profile);
}
