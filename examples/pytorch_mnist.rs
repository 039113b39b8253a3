//! PyTorch's own MNIST example (pytorch/examples, `mnist/main.py`) in this crate:
//! network E of docs/networks.md (two 3x3 convolutions, max-pooling, dropout 0.25 and
//! 0.5, 9216-128-10, log-softmax with the negative log-likelihood) trained with its
//! recipe (Adadelta at 1.0, StepLR with step 1 and gamma 0.7, batch 64, inputs
//! standardised by 0.1307 and 0.3081, 14 epochs). The demo's program with another
//! default network: the same flags, checkpoints and `--resume`.
//!
//! cargo run --release --example pytorch_mnist -- --help

#[path = "common/demo.rs"]
mod demo;

fn main() -> std::process::ExitCode {
    demo::main(nn::Network::E)
}
