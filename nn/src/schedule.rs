//! Learning-rate schedules: the factor by which a recipe's peak learning rate is
//! multiplied at each optimizer step. The trainer sets the optimizer's rate from it
//! before every step ([`crate::Optimizer::set_learning_rate`]).
//!
//! ```
//! use nn::Schedule;
//!
//! // PyTorch's OneCycleLR defaults over 10 epochs of 100 steps: 30% warm-up from
//! // lr/25, then down to lr/25e4.
//! let s = Schedule::one_cycle();
//! assert!((s.factor(0, 100, 10) - 1.0 / 25.0).abs() < 1e-12);
//! assert!((s.factor(299, 100, 10) - 1.0).abs() < 1e-12);
//! assert!((s.factor(999, 100, 10) - 1.0 / 25e4).abs() < 1e-12);
//!
//! // PyTorch's StepLR(step_size=1, gamma=0.7), stepped once an epoch: 0.7^epoch.
//! let s: Schedule = "step:1:0.7".parse().unwrap();
//! assert_eq!(s.factor(99, 100, 10), 1.0);
//! assert!((s.factor(250, 100, 10) - 0.49).abs() < 1e-12);
//! ```

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// How the learning rate moves over a run of `total` optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The recipe's learning rate throughout.
    Constant,
    /// Cosine decay from the peak at the first step to 0 after the last:
    /// `(1 + cos(π s / total)) / 2`.
    Cosine,
    /// The one-cycle policy as PyTorch's `OneCycleLR` computes it (with
    /// `anneal_strategy="cos"`, `three_phase=False`): the first `warmup` fraction of the
    /// steps rises on a cosine from `1/div` of the peak to the peak (reached at step
    /// `warmup * total - 1`), the rest falls on a cosine to `1/(div * final_div)` of it
    /// (reached at the last step).
    OneCycle {
        /// Fraction of the steps spent rising (PyTorch's `pct_start`, default 0.3).
        warmup: f64,
        /// Peak over starting rate (PyTorch's `div_factor`, default 25).
        div: f64,
        /// Starting over final rate (PyTorch's `final_div_factor`, default 1e4).
        final_div: f64,
    },
    /// PyTorch's `StepLR` stepped once an epoch: the rate is multiplied by `gamma` every
    /// `step_size` epochs, `gamma^⌊epoch / step_size⌋` (epochs from 0). It needs no span
    /// and keeps decaying past the planned epochs, as PyTorch's does.
    Step {
        /// Epochs between decays (at least 1; 0 is taken as 1).
        step_size: usize,
        /// Factor of each decay (finite, above 0).
        gamma: f64,
    },
    /// PyTorch's `ExponentialLR` stepped once an epoch: `gamma^epoch` (the same as
    /// `Step` with `step_size` 1). It keeps decaying past the planned epochs.
    Exponential {
        /// Factor per epoch (finite, above 0).
        gamma: f64,
    },
}

impl Schedule {
    /// [`Schedule::OneCycle`] with PyTorch's defaults: warm-up 0.3, div 25, final div 1e4.
    pub fn one_cycle() -> Self {
        Schedule::OneCycle {
            warmup: 0.3,
            div: 25.0,
            final_div: 1e4,
        }
    }

    /// The multiplier of the peak learning rate for optimizer step `step` (0-based) of
    /// a run of `epochs` epochs of `steps_per_epoch` steps. The schedules that span the
    /// run (cosine, one-cycle) keep their last step's factor past its end; the
    /// per-epoch decays keep decaying.
    pub fn factor(&self, step: usize, steps_per_epoch: usize, epochs: usize) -> f64 {
        let epoch = step / steps_per_epoch.max(1);
        let total = (steps_per_epoch * epochs).max(1);
        let step = step.min(total - 1);
        match *self {
            Schedule::Step { step_size, gamma } => gamma.powf((epoch / step_size.max(1)) as f64),
            Schedule::Exponential { gamma } => gamma.powf(epoch as f64),
            Schedule::Constant => 1.0,
            Schedule::Cosine => 0.5 * (1.0 + (PI * step as f64 / total as f64).cos()),
            Schedule::OneCycle {
                warmup,
                div,
                final_div,
            } => {
                // PyTorch: the phases end at steps pct_start * total - 1 and total - 1.
                let (start, peak, end) = (1.0 / div, 1.0, 1.0 / (div * final_div));
                let rise_end = warmup * total as f64 - 1.0;
                let fall_end = total as f64 - 1.0;
                let cos = |from: f64, to: f64, pct: f64| {
                    to + (from - to) / 2.0 * (1.0 + (PI * pct.clamp(0.0, 1.0)).cos())
                };
                let s = step as f64;
                if s <= rise_end {
                    if rise_end <= 0.0 {
                        peak
                    } else {
                        cos(start, peak, s / rise_end)
                    }
                } else if fall_end > rise_end {
                    cos(peak, end, (s - rise_end) / (fall_end - rise_end))
                } else {
                    peak
                }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Cosine => f.write_str("cosine"),
            Schedule::Step { step_size, gamma } => write!(f, "step:{step_size}:{gamma}"),
            Schedule::Exponential { gamma } => write!(f, "exponential:{gamma}"),
            Schedule::OneCycle {
                warmup,
                div,
                final_div,
            } => {
                if *self == Schedule::one_cycle() {
                    f.write_str("one-cycle")
                } else {
                    write!(f, "one-cycle:{warmup}:{div}:{final_div}")
                }
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    /// `constant`, `cosine`, `one-cycle` (PyTorch's defaults),
    /// `one-cycle:WARMUP:DIV:FINAL_DIV`, `step:STEP_SIZE:GAMMA` or `exponential:GAMMA`;
    /// what [`Schedule`]'s `Display` writes.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || {
            format!("unknown schedule {s:?} (expected constant, cosine, one-cycle, one-cycle:WARMUP:DIV:FINAL_DIV, step:STEP_SIZE:GAMMA or exponential:GAMMA)")
        };
        match lower.as_str() {
            "constant" => return Ok(Schedule::Constant),
            "cosine" => return Ok(Schedule::Cosine),
            "one-cycle" | "onecycle" => return Ok(Schedule::one_cycle()),
            _ => {}
        }
        let gamma = |g: &str| match g.parse::<f64>() {
            Ok(g) if g.is_finite() && g > 0.0 => Ok(g),
            _ => Err(format!(
                "{s:?}: the decay factor gamma must be a finite number above 0, not {g:?}"
            )),
        };
        if let Some(rest) = lower.strip_prefix("step:") {
            let (step_size, g) = rest.split_once(':').ok_or_else(bad)?;
            let step_size = match step_size.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "{s:?}: the step size is a whole number of epochs, at least 1, not {step_size:?}"
                    ))
                }
            };
            return Ok(Schedule::Step {
                step_size,
                gamma: gamma(g)?,
            });
        }
        if let Some(g) = lower.strip_prefix("exponential:") {
            return Ok(Schedule::Exponential { gamma: gamma(g)? });
        }
        let rest = lower
            .strip_prefix("one-cycle:")
            .or_else(|| lower.strip_prefix("onecycle:"))
            .ok_or_else(bad)?;
        let parts: Vec<f64> = rest
            .split(':')
            .map(|p| p.parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [warmup, div, final_div]
                if (0.0..=1.0).contains(&warmup) && div >= 1.0 && final_div >= 1.0 =>
            {
                Ok(Schedule::OneCycle {
                    warmup,
                    div,
                    final_div,
                })
            }
            _ => Err(format!(
                "{s:?}: a one-cycle schedule needs a warm-up fraction in [0, 1] and divisors of at least 1"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_one_everywhere() {
        for s in [0, 5, 99, 1000] {
            assert_eq!(Schedule::Constant.factor(s, 10, 10), 1.0);
        }
    }

    #[test]
    fn cosine_falls_from_one_towards_zero() {
        let c = Schedule::Cosine;
        assert_eq!(c.factor(0, 10, 10), 1.0);
        assert!((c.factor(50, 10, 10) - 0.5).abs() < 1e-12);
        assert!(c.factor(99, 10, 10) > 0.0 && c.factor(99, 10, 10) < 1e-3);
        let f: Vec<f64> = (0..100).map(|s| c.factor(s, 10, 10)).collect();
        assert!(f.windows(2).all(|w| w[1] < w[0]));
    }

    /// Values printed by `torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0,
    /// total_steps=100)` (defaults otherwise) at steps 0, 1, 10, 28, 29, 30, 50, 98, 99.
    #[test]
    fn one_cycle_matches_pytorchs_one_cycle_lr() {
        let s = Schedule::one_cycle();
        let torch = [
            (0, 0.040_000_000_000_000_036),
            (1, 0.042_813_780_565_907_456),
            (10, 0.295_163_948_464_100_77),
            (28, 0.997_186_219_434_092_6),
            (29, 1.0),
            (30, 0.999_496_535_284_524_3),
            (50, 0.793_893_450_575_732),
            (98, 0.000_507_464_715_475_787_9),
            (99, 4e-6),
        ];
        for (step, want) in torch {
            let got = s.factor(step, 10, 10);
            assert!(
                (got - want).abs() < 1e-12,
                "step {step}: {got} against PyTorch's {want}"
            );
        }
    }

    #[test]
    fn one_cycle_rises_then_falls() {
        let s = Schedule::one_cycle();
        let f: Vec<f64> = (0..1000).map(|i| s.factor(i, 100, 10)).collect();
        assert!(f[..300].windows(2).all(|w| w[1] > w[0]));
        assert!(f[299..].windows(2).all(|w| w[1] < w[0]));
        assert_eq!(s.factor(5000, 100, 10), f[999]);
    }

    /// PyTorch: `StepLR(opt, step_size=2, gamma=0.5)` and `ExponentialLR(opt,
    /// gamma=0.7)`, `scheduler.step()` after each epoch: the rate of epoch e is
    /// `lr * 0.5^(e // 2)` and `lr * 0.7^e`, whatever the step within the epoch.
    #[test]
    fn step_and_exponential_decay_once_an_epoch_as_pytorchs_schedulers() {
        let step = Schedule::Step {
            step_size: 2,
            gamma: 0.5,
        };
        let exponential = Schedule::Exponential { gamma: 0.7 };
        let per_epoch = 7;
        for epoch in 0..12 {
            for within in [0, 3, 6] {
                let s = epoch * per_epoch + within;
                assert_eq!(step.factor(s, per_epoch, 5), 0.5f64.powi(epoch as i32 / 2));
                let want = 0.7f64.powi(epoch as i32);
                let got = exponential.factor(s, per_epoch, 5);
                assert!(
                    (got - want).abs() <= 1e-15 * want,
                    "epoch {epoch}: {got} {want}"
                );
            }
        }
        // PyTorch's MNIST example: StepLR(step_size=1, gamma=0.7) over 14 epochs.
        let mnist: Schedule = "step:1:0.7".parse().unwrap();
        let lr: Vec<f64> = (0..14).map(|e| mnist.factor(e * 938, 938, 14)).collect();
        assert_eq!(lr[0], 1.0);
        assert!((lr[13] - 0.7f64.powi(13)).abs() < 1e-15);
    }

    #[test]
    fn schedules_print_and_parse_back() {
        for s in [
            Schedule::Constant,
            Schedule::Cosine,
            Schedule::one_cycle(),
            Schedule::OneCycle {
                warmup: 0.25,
                div: 10.0,
                final_div: 100.0,
            },
            Schedule::Step {
                step_size: 3,
                gamma: 0.1,
            },
            Schedule::Exponential { gamma: 0.95 },
        ] {
            assert_eq!(s.to_string().parse::<Schedule>(), Ok(s));
        }
        assert!("linear".parse::<Schedule>().is_err());
        assert!("one-cycle:2:25:1e4".parse::<Schedule>().is_err());
        assert!("one-cycle:0.3:25".parse::<Schedule>().is_err());
        for (bad, says) in [
            ("step:0:0.7", "at least 1, not \"0\""),
            ("step:1.5:0.7", "not \"1.5\""),
            ("step:1:-0.7", "above 0, not \"-0.7\""),
            ("step:1", "unknown schedule"),
            ("exponential:0", "above 0, not \"0\""),
            ("exponential:inf", "finite"),
        ] {
            let err = bad.parse::<Schedule>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
