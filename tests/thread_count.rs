//! Convolution and pooling split the batch in a fixed partition and run the products
//! inside a part unsplit, so their values and gradients are the same, bit for bit, on
//! one thread and on several.
//!
//! The thread count is a scope of the calling thread (`with_threads`), so tests that
//! run at the same time as these (in this binary or any other) cannot change the count
//! a run computes with; each run also asserts the count it saw.

use autodiff::{threads, Conv2dOptions, Tape, Tensor};
use std::thread;

/// `work()` run with `n` threads, after checking that it sees that count.
fn with_threads<R>(n: usize, work: fn() -> R) -> R {
    autodiff::with_threads(n, || {
        assert_eq!(threads(), n, "the scope's thread count");
        work()
    })
}
use rand::rngs::StdRng;
use rand::SeedableRng;

fn uniform(shape: &[usize], seed: u64) -> Tensor<f32> {
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut StdRng::seed_from_u64(seed))
}

/// The output and the gradients of the input, weights and bias of LeNet's first block
/// (conv 5x5 padding 2, bias, max pool 2x2, ReLU) with a second conv after it.
fn lenet_block() -> Vec<Vec<u32>> {
    let tape = Tape::new();
    let x = tape.param(uniform(&[32, 1, 28, 28], 1));
    let w1 = tape.param(uniform(&[6, 1, 5, 5], 2));
    let b1 = tape.param(uniform(&[6], 3));
    let w2 = tape.param(uniform(&[16, 6, 5, 5], 4));
    let h = x
        .conv2d_bias(w1, b1, Conv2dOptions::new(1, 2))
        .max_pool2d(2, 2, 0)
        .relu();
    let y = h.conv2d(w2, Conv2dOptions::new(1, 0));
    let grads = y.square().sum().backward();
    let bits = |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect();
    vec![
        bits(&y.value()),
        bits(&grads[x]),
        bits(&grads[w1]),
        bits(&grads[b1]),
        bits(&grads[w2]),
    ]
}

#[test]
fn convolutions_do_not_depend_on_the_thread_count() {
    let one = with_threads(1, lenet_block);
    let two = with_threads(2, lenet_block);
    let four = with_threads(4, lenet_block);
    for (name, k) in ["output", "dx", "dw1", "db1", "dw2"].iter().zip(0..) {
        assert!(one[k] == two[k], "{name} differs between 1 and 2 threads");
        assert!(one[k] == four[k], "{name} differs between 1 and 4 threads");
    }
}

/// The gradients of a layer whose `dx` and `dw` are computed side by side on two
/// threads (each product whole on its thread): the values of a one-thread run.
fn relu_layer_grads() -> Vec<Vec<u32>> {
    let tape = Tape::new();
    let x = tape.param(uniform(&[128, 96], 5));
    let w = tape.param(uniform(&[96, 40], 6));
    let b = tape.param(uniform(&[40], 7));
    let y = x.linear_relu(w, b);
    let grads = (y * tape.constant(uniform(&[128, 40], 8))).sum().backward();
    let bits = |t: &Tensor<f32>| t.data().iter().map(|v| v.to_bits()).collect();
    vec![bits(&grads[x]), bits(&grads[w]), bits(&grads[b])]
}

#[test]
fn side_by_side_layer_gradients_are_those_of_one_thread() {
    let one = with_threads(1, relu_layer_grads);
    let two = with_threads(2, relu_layer_grads);
    for (name, k) in ["dx", "dw", "db"].iter().zip(0..) {
        assert!(one[k] == two[k], "{name} differs between 1 and 2 threads");
    }
}

/// A scope entered on another thread, even while a run is in progress on this one,
/// leaves this thread's count alone: the runs above cannot be disturbed that way.
#[test]
fn another_threads_scope_does_not_change_this_ones() {
    autodiff::with_threads(2, || {
        let other = thread::spawn(|| autodiff::with_threads(1, || (threads(), relu_layer_grads())));
        let here = relu_layer_grads();
        let (other_count, other_grads) = other.join().expect("other thread");
        assert_eq!(other_count, 1);
        assert_eq!(threads(), 2);
        assert!(here == other_grads, "the two runs' gradients differ");
    });
}
