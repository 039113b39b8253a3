//! Draw a digit in the browser and watch network A's outputs and hidden activations
//! update as you draw. The model comes from a checkpoint written by the mnist example.
//!
//! cargo run --release --example mnist     # once, to write the checkpoint
//! cargo run --release --example draw      # then open the printed address

use backprop::draw::DrawServer;
use clap::Parser;
use nn::{Checkpoint, NnError, Trainer};
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
    let trainer = Trainer::from_checkpoint(Checkpoint::load(&args.checkpoint)?)?;
    if trainer.model.sizes()[0] != 784 {
        return Err(NnError::Data(format!(
            "{} is not a 28x28-input network",
            args.checkpoint.display()
        )));
    }
    let server = DrawServer::bind(args.port, trainer.model)?;
    println!("draw a digit at {} (Ctrl-C to stop)", server.url());
    server.serve_until(&AtomicBool::new(false));
    Ok(())
}
