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
