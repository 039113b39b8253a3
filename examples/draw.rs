//! Draw a digit in the browser, watch network A read it, then say which digit it is
//! and see what backprop wants of every neuron, one neuron's levers, one learning step
//! and a minibatch's drunk walk. The model comes from a checkpoint written by the mnist
//! example; without one, network A is trained briefly first.
//!
//! cargo run --release --example mnist     # once, to write the checkpoint
//! cargo run --release --example draw      # then open the printed address

use backprop::draw::DrawServer;
use clap::Parser;
use nn::{Checkpoint, Mnist, Network, NnError, Trainer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

#[derive(Parser, Debug)]
#[command(about = "Serve a page on 127.0.0.1 where you draw a digit for the network")]
struct Args {
    /// A checkpoint of a network with 784 inputs (network a by default).
    #[arg(long, default_value = "checkpoints/mnist-a.safetensors")]
    checkpoint: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Directory holding the MNIST files (default: $MNIST_DIR or the cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), NnError> {
    // The minibatch view needs training examples; the page works without them.
    let data = match Mnist::load(args.data_dir.as_deref()) {
        Ok(data) => Some(data),
        Err(e) => {
            eprintln!("note: no MNIST ({e}); the minibatch view is off");
            None
        }
    };
    let trainer = if args.checkpoint.exists() {
        let checkpoint = Checkpoint::load(&args.checkpoint)?;
        println!(
            "checkpoint {}: {}",
            args.checkpoint.display(),
            checkpoint.summary()
        );
        Trainer::from_checkpoint(checkpoint)?
    } else {
        let Some(data) = &data else {
            return Err(NnError::Data(format!(
                "{} does not exist and MNIST is not available to train on: run \
                 `cargo run --release --example mnist` first, or give --checkpoint",
                args.checkpoint.display()
            )));
        };
        eprintln!(
            "{} does not exist (`cargo run --release --example mnist` writes it); \
             training network A for 2 epochs instead (a few seconds)",
            args.checkpoint.display()
        );
        let mut trainer = Trainer::new(Network::A.recipe(), 1);
        for _ in 0..2 {
            trainer.train_epoch(&data.train, |_, _, _| {})?;
        }
        let (accuracy, _) = trainer.evaluate(&data.test);
        eprintln!("test accuracy {:.2}%", accuracy * 100.0);
        trainer
    };
    if trainer.model.inputs() != 784 {
        return Err(NnError::Data(format!(
            "{} is not a 28x28-input network",
            args.checkpoint.display()
        )));
    }
    let mut server = DrawServer::bind(args.port, trainer.model)?;
    if let Some(data) = data {
        server = server.with_training_data(data.train);
    }
    println!("draw a digit at {} (Ctrl-C to stop)", server.url());
    server.serve_until(&AtomicBool::new(false));
    Ok(())
}
