//! Command-line value parsers and the peak-memory reading the examples share (a module
//! they include, not an example of its own). Each parser refuses, with a message, what
//! the flag cannot mean.
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
