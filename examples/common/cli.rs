//! Command-line value parsers and the measurements (peak memory, the roofline) the
//! examples share (a module they include, not an example of its own). Each parser
//! refuses, with a message, what the flag cannot mean.
#![allow(dead_code)] // each example uses some of them

/// A count where 0 would mean nothing: batch size, thread count, iterations.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 1 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!("{n} is not a count of at least 1")),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// A finite number.
fn finite(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("{x} is not finite"))
    }
}

/// A finite number of at least 0: a weight decay, a final learning rate.
pub fn non_negative(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(format!("{x} must be a finite number of at least 0"))
    }
}

/// A finite number above 0: a learning rate, a temperature.
pub fn positive(s: &str) -> Result<f64, String> {
    let x = finite(s)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(format!("{x} must be a finite number above 0"))
    }
}

/// A probability that leaves something: in [0, 1) (a dropout rate).
pub fn probability(s: &str) -> Result<f64, String> {
    let x = finite(s)?;
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} must be in [0, 1)"))
    }
}

/// The process's peak resident memory in MiB (`VmHWM` of /proc/self/status, Linux;
/// `None` elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// This machine's f32 multiply-add peak at `threads` threads, measured now and printed.
pub fn measure_peak(threads: usize) -> f64 {
    let peak = autodiff::peak_gflops();
    println!("f32 FMA peak, {threads} thread(s): {peak:.1} GFLOP/s (measured now)");
    peak
}

/// The roofline fields of a `RESULT` line: the arithmetic rate of training (`flops` of
/// one example or step, counted on the tape, times their number per second) and its
/// share of this machine's peak.
pub fn roofline(flops: autodiff::Flops, per_second: f64, peak: f64) -> String {
    let gflops = flops.total() as f64 * per_second / 1e9;
    format!(
        "gflops={gflops:.1} peak_gflops={peak:.1} peak_share={:.3}",
        gflops / peak
    )
}

/// The table of a `--profile` run: each op's time ([`autodiff::Profile`]) over `count`
/// calls (training steps, or HVPs: `what` names them) that took `total_s` seconds, then
/// the optimizer's share, if a step has one, and the rest (the tape's bookkeeping,
/// gradient accumulation, the batch's constant).
pub fn print_profile(
    profile: &autodiff::Profile,
    optimizer_s: Option<f64>,
    total_s: f64,
    (count, what): (usize, &str),
) {
    let ops_s = profile.total().as_secs_f64();
    println!(
        "{count} {what}s: {:.2} ms each",
        1e3 * total_s / count.max(1) as f64
    );
    print!("{profile}");
    let share = |s: f64| 100.0 * s / total_s;
    let optimizer = optimizer_s.map_or(String::new(), |s| format!(", optimizer {:.1}%", share(s)));
    println!(
        "ops {:.1}% of the time{optimizer}, the rest {:.1}%",
        share(ops_s),
        share(total_s - ops_s - optimizer_s.unwrap_or(0.0))
    );
}
