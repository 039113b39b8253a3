//! Where a tape's time goes, op by op: [`Tape::set_profiling`] times each recorded op's
//! forward computation and each vjp of [`crate::Var::backward`], and [`Tape::profile`]
//! sums them by op name, with the products' flops beside them. PyTorch's profiler
//! (`torch.profiler`, its table of "self CPU time" by operator) is the model.

use crate::float::Float;
use crate::tape::Tape;
use std::fmt;
use std::time::Duration;

/// The time of every op of one name on a tape ([`Profile`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpTime {
    /// The op's name, as `to_dot` and error messages show it (`matmul`, `conv2d`,
    /// `linear+relu`, `mul`, ...).
    pub op: String,
    /// How many were recorded.
    pub calls: usize,
    /// Their forward computations.
    pub forward: Duration,
    /// Their vjps in the backward passes timed.
    pub backward: Duration,
    /// Their flops, forward and backward ([`crate::Flops`]; nonzero for products).
    pub flops: u64,
}

impl OpTime {
    /// Forward and backward together.
    pub fn total(&self) -> Duration {
        self.forward + self.backward
    }
}

/// A tape's time by op ([`Tape::profile`]), longest total first. Printing it gives a
/// table: op, calls, forward and backward milliseconds, share of the ops' time, and the
/// arithmetic rate of the products.
///
/// ```
/// use autodiff::{Tape, Tensor};
///
/// let tape = Tape::<f32>::new();
/// tape.set_profiling(true);
/// let x = tape.constant(Tensor::ones([64, 784]));
/// let w = tape.param(Tensor::full([784, 16], 0.01));
/// let loss = x.matmul(w).sigmoid().sum();
/// loss.backward();
/// let profile = tape.profile();
/// let ops: Vec<&str> = profile.ops().iter().map(|t| t.op.as_str()).collect();
/// assert!(ops.contains(&"matmul") && ops.contains(&"sigmoid") && ops.contains(&"sum"));
/// let matmul = profile.ops().iter().find(|t| t.op == "matmul").unwrap();
/// assert_eq!((matmul.calls, matmul.flops), (1, 4 * 64 * 784 * 16));
/// println!("{profile}");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    ops: Vec<OpTime>,
}

impl Profile {
    /// One row per op name, longest total first.
    pub fn ops(&self) -> &[OpTime] {
        &self.ops
    }

    /// The time of every op, forward and backward.
    pub fn total(&self) -> Duration {
        self.ops.iter().map(OpTime::total).sum()
    }

    /// Adds `other`'s rows into this one's (the steps of a benchmark, each on its own
    /// tape), by op name.
    pub fn merge(&mut self, other: &Profile) {
        for row in &other.ops {
            let mine = self.row(&row.op);
            mine.calls += row.calls;
            mine.forward += row.forward;
            mine.backward += row.backward;
            mine.flops += row.flops;
        }
        self.sort();
    }

    fn row(&mut self, op: &str) -> &mut OpTime {
        let at = match self.ops.iter().position(|r| r.op == op) {
            Some(at) => at,
            None => {
                self.ops.push(OpTime {
                    op: op.to_string(),
                    ..OpTime::default()
                });
                self.ops.len() - 1
            }
        };
        &mut self.ops[at]
    }

    fn sort(&mut self) {
        self.ops
            .sort_by(|a, b| b.total().cmp(&a.total()).then(a.op.cmp(&b.op)));
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total().as_secs_f64().max(f64::MIN_POSITIVE);
        writeln!(
            f,
            "{:<24}{:>8}{:>14}{:>14}{:>8}{:>10}",
            "op", "calls", "forward ms", "backward ms", "share", "GFLOP/s"
        )?;
        for r in &self.ops {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let rate = if r.flops > 0 {
                format!("{:.1}", r.flops as f64 / r.total().as_secs_f64() / 1e9)
            } else {
                String::new()
            };
            writeln!(
                f,
                "{:<24}{:>8}{:>14.3}{:>14.3}{:>7.1}%{:>10}",
                r.op,
                r.calls,
                ms(r.forward),
                ms(r.backward),
                100.0 * r.total().as_secs_f64() / total,
                rate
            )?;
        }
        Ok(())
    }
}

/// Which half of an op's work a time belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Phase {
    Forward,
    Backward,
}

impl<T: Float> Tape<T> {
    /// Turns per-op timing on or off ([`Tape::profile`]). Off by default: it reads the
    /// clock twice per op.
    pub fn set_profiling(&self, on: bool) {
        self.profiling.set(on);
    }

    /// The time spent so far in each op's forward computation and in each vjp of
    /// [`crate::Var::backward`] (and its releasing and seeded forms) while profiling was
    /// on ([`Tape::set_profiling`]), by op name. The recorded derivatives of
    /// [`crate::Var::grad`] are ops on the tape like any other and are timed as such.
    pub fn profile(&self) -> Profile {
        let mut p = self.times.borrow().clone();
        p.sort();
        p
    }

    /// Adds `time` (and `flops`) to op `name`'s row.
    pub(crate) fn add_time(&self, name: &str, phase: Phase, time: Duration, flops: u64) {
        let mut times = self.times.borrow_mut();
        let row = times.row(name);
        match phase {
            Phase::Forward => {
                row.calls += 1;
                row.forward += time;
            }
            Phase::Backward => row.backward += time,
        }
        row.flops += flops;
    }
}
