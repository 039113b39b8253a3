//! The MNIST demo: trains the 3Blue1Brown digit network (784-16-16-10, sigmoid,
//! quadratic cost, SGD) or one of the larger networks (`--net`), with a progress bar per
//! epoch, then reports test accuracy and the confusion matrix and writes a checkpoint.
//!
//! cargo run --release --example mnist -- --help

#[path = "common/demo.rs"]
mod demo;

fn main() -> std::process::ExitCode {
    demo::main(nn::Network::A)
}
