//! The training benchmark: trains the networks of docs/networks.md on MNIST and prints, per
//! network, samples/s, the median epoch time, peak resident memory and the final test
//! accuracy (so a speed-up can never hide a broken result).
//!
//! cargo run --release --example bench -- --net all --epochs 3
//!
//! Each network's last line is machine-readable (`RESULT impl=backprop net=a ...`);
//! `bench/compare.sh` reads it beside the PyTorch reference's.

use clap::Parser;
use nn::{Mnist, Network, NnError, Trainer};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;

#[derive(Parser, Debug)]
#[command(about = "Time training epochs of the standard MNIST networks")]
struct Args {
    /// a, b, c, d or all.
    #[arg(long, default_value = "all")]
    net: String,
    /// Epochs per network (the median epoch time is reported).
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Threads for large matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed for initialisation and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Directory holding the MNIST files (default: $MNIST_DIR or the cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the directory the data would be read from (fetching it if needed), then exit.
    #[arg(long)]
    locate_data: bool,
}

/// Peak resident set size in MiB since the last reset, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak-RSS counter so each network is measured on its own (Linux >= 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), NnError> {
    if args.locate_data {
        println!("{}", Mnist::locate(args.data_dir.as_deref())?.display());
        return Ok(());
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    autodiff::with_threads(threads, || train_all(&args, threads))
}

fn train_all(args: &Args, threads: usize) -> Result<(), NnError> {
    let networks: Vec<Network> = match args.net.as_str() {
        "all" => vec![Network::A, Network::B, Network::C, Network::D],
        one => vec![one.parse().map_err(NnError::Data)?],
    };
    let data = Mnist::load(args.data_dir.as_deref())?;
    let dataset_mib = ((data.train.len() + data.test.len()) * data.train.features()) as f64 * 4.0
        / (1024.0 * 1024.0);
    println!(
        "MNIST as f32: {dataset_mib:.1} MiB; {threads} thread(s); {} epoch(s) per network",
        args.epochs
    );
    for network in networks {
        reset_peak_rss();
        let mut trainer = Trainer::new(network.recipe(), args.seed);
        let mut times = Vec::new();
        for _ in 0..args.epochs.max(1) {
            let start = Instant::now();
            let stats = trainer.train_epoch(&data.train, |_, _, _| {})?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "net {network} epoch {} {:.3}s cost {:.5}",
                stats.epoch, secs, stats.mean_cost
            );
            times.push(secs);
        }
        let (accuracy, _) = trainer.evaluate(&data.test);
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let samples_per_s = data.train.len() as f64 / median;
        let rss = peak_rss_mib().unwrap_or(f64::NAN);
        println!(
            "RESULT impl=backprop net={network} threads={threads} epochs={} samples_per_s={samples_per_s:.0} median_epoch_s={median:.4} peak_rss_mib={rss:.1} accuracy={:.4}",
            times.len(),
            accuracy
        );
    }
    Ok(())
}
