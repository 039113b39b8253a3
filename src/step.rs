//! "Learn this example", explained: one gradient step on one drawing and its label, what
//! it did to each output and to the cost, and each output's slope σ'(z). With the
//! quadratic cost an output's pull on its levers is (y − a)·σ'(z), so a saturated output
//! (σ'(z) near 0) barely moves however wrong it is: the video's point about why that
//! cost learns slowly. The report says so in a sentence the page shows.

use crate::notation::{signed_three_digits, three_digits};
use crate::nudges::{learn, nudges, Nudges};
use nn::{Model, NnError};

/// An output whose σ'(z) is below this (its largest value is 0.25) is saturated.
pub const SATURATED: f32 = 0.01;
/// An output this far from its target (`|y − a|`) is on the wrong side of 0.5.
pub const FAR: f32 = 0.5;

/// One output's part in a step.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputStep {
    /// The activation before the step.
    pub before: f32,
    /// The activation after the step.
    pub after: f32,
    /// Its desired nudge `-dC/da` before the step.
    pub nudge: f32,
    /// σ'(z) before the step (`None` when its nudge is exactly 0, as for an output
    /// that sits on its target).
    pub slope: Option<f32>,
}

impl OutputStep {
    /// `after − before`, exactly.
    pub fn change(&self) -> f64 {
        f64::from(self.after) - f64::from(self.before)
    }

    /// Far from its target with a saturated sigmoid: it can barely move.
    pub fn stuck(&self) -> bool {
        barely_moves(self.nudge, self.slope)
    }
}

/// What one step on one example did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// The digit it was told.
    pub label: usize,
    /// The learning rate.
    pub lr: f64,
    /// The quadratic cost on this example before the step.
    pub cost_before: f32,
    /// And after it.
    pub cost_after: f32,
    /// Every output, digit by digit.
    pub outputs: Vec<OutputStep>,
}

/// Whether an output with desired nudge `nudge` and σ'(z) `slope` is far from its
/// target (more than [`FAR`]) with a saturated sigmoid (σ'(z) below [`SATURATED`]), so
/// that a step can barely move it.
pub fn barely_moves(nudge: f32, slope: Option<f32>) -> bool {
    nudge.abs() > FAR && slope.is_some_and(|s| s < SATURATED)
}

/// Each output's σ'(z) for one example, read from the tape: `dC/dz ÷ dC/da`, the
/// bias lever over the desired nudge (`None` where the nudge is exactly 0).
pub fn output_slopes(n: &Nudges) -> Vec<Option<f32>> {
    let (Some(nudge), Some(bias)) = (n.nudges.last(), n.bias_nudges.last()) else {
        return Vec::new();
    };
    nudge
        .iter()
        .zip(bias)
        .map(|(&da, &dz)| (da != 0.0).then(|| dz / da))
        .collect()
}

/// Takes one plain gradient step on `input` told it is `label` (learning rate `lr`)
/// and reports what it did.
pub fn learn_step(
    model: &mut Model<f32>,
    input: &[f32],
    label: usize,
    lr: f64,
) -> Result<StepReport, NnError> {
    let before = nudges(model, input, &[label]);
    learn(model, input, &[label], lr)?;
    let after = nudges(model, input, &[label]);
    let empty = Vec::new();
    let outputs = before
        .activations
        .last()
        .unwrap_or(&empty)
        .iter()
        .zip(after.activations.last().unwrap_or(&empty))
        .zip(before.nudges.last().unwrap_or(&empty))
        .zip(output_slopes(&before))
        .map(|(((&before, &after), &nudge), slope)| OutputStep {
            before,
            after,
            nudge,
            slope,
        })
        .collect();
    Ok(StepReport {
        label,
        lr,
        cost_before: before.cost,
        cost_after: after.cost,
        outputs,
    })
}

fn direction(v: f64) -> &'static str {
    if v >= 0.0 {
        "up"
    } else {
        "down"
    }
}

impl StepReport {
    /// `cost_after − cost_before`, exactly.
    pub fn cost_change(&self) -> f64 {
        f64::from(self.cost_after) - f64::from(self.cost_before)
    }

    /// The page's sentences on the outputs that could barely move (none when every
    /// output could), ending with the cost that does not have the problem.
    pub fn explanation(&self) -> Vec<String> {
        let mut sentences = Vec::new();
        for (d, o) in self.outputs.iter().enumerate() {
            let Some(slope) = o.slope.filter(|_| o.stuck()) else {
                continue;
            };
            let pull = f64::from(o.nudge) * f64::from(slope);
            sentences.push(format!(
                "Output {d} barely moves because σ'(z) is tiny ({}; it is at most 0.250): \
                 its sigmoid is saturated, and with the quadratic cost its levers are pulled \
                 by (y − a) × σ'(z) = {} × {} = {}, small however wrong the output is.",
                three_digits(f64::from(slope)),
                signed_three_digits(f64::from(o.nudge)),
                three_digits(f64::from(slope)),
                signed_three_digits(pull),
            ));
            let wanted = f64::from(o.nudge);
            if o.change() != 0.0 && direction(o.change()) != direction(wanted) {
                sentences.push(format!(
                    "The step even moved it {} ({}): its own pull is so weak that what the \
                     other outputs asked of the shared hidden layers decides where it goes.",
                    direction(o.change()),
                    signed_three_digits(o.change()),
                ));
            }
        }
        if !sentences.is_empty() {
            sentences.push(
                "This is why the quadratic cost learns slowly on a confident mistake; \
                 cross-entropy (network a96) does not have this problem: its pull on an \
                 output's levers is y − a itself, with no σ'(z)."
                    .into(),
            );
        }
        sentences
    }

    /// The JSON the page reads: every output's numbers, its change and the cost's as
    /// printed (three significant digits), and the explanation.
    pub fn to_json(&self) -> String {
        let number = |v: f32| {
            if v.is_finite() {
                format!("{v:e}")
            } else {
                "null".into()
            }
        };
        let text = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let outputs: Vec<String> = self
            .outputs
            .iter()
            .map(|o| {
                format!(
                    "{{\"before\":{},\"after\":{},\"change\":{},\"nudge\":{},\"slope\":{},\"slope_text\":{},\"stuck\":{}}}",
                    number(o.before),
                    number(o.after),
                    text(&signed_three_digits(o.change())),
                    number(o.nudge),
                    o.slope.map_or("null".into(), number),
                    o.slope.map_or("null".into(), |s| text(&three_digits(f64::from(s)))),
                    o.stuck()
                )
            })
            .collect();
        let explanation: Vec<String> = self.explanation().iter().map(|s| text(s)).collect();
        format!(
            "{{\"label\":{},\"lr\":{},\"cost_before\":{},\"cost_after\":{},\"cost_change\":{},\"outputs\":[{}],\"explanation\":[{}]}}",
            self.label,
            self.lr,
            number(self.cost_before),
            number(self.cost_after),
            text(&signed_three_digits(self.cost_change())),
            outputs.join(","),
            explanation.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(before: f32, after: f32, nudge: f32, slope: f32) -> OutputStep {
        OutputStep {
            before,
            after,
            nudge,
            slope: Some(slope),
        }
    }

    #[test]
    fn only_a_saturated_output_far_from_its_target_is_explained() {
        let report = StepReport {
            label: 9,
            lr: 3.0,
            cost_before: 0.9,
            cost_after: 0.8,
            outputs: vec![
                // Saturated but already right: nothing to explain.
                output(0.0024, 0.0023, -0.0024, 0.0024),
                // The label, saturated and wrong, and moved down.
                output(0.0024, 0.0004, 0.9976, 0.0024),
                // Wrong but not saturated.
                output(0.917, 0.5, -0.917, 0.076),
            ],
        };
        let stuck: Vec<bool> = report.outputs.iter().map(OutputStep::stuck).collect();
        assert_eq!(stuck, [false, true, false]);
        let text = report.explanation().join(" ");
        assert!(
            text.contains("Output 1 barely moves because σ'(z) is tiny (2.40e-3"),
            "{text}"
        );
        assert!(text.contains("= +0.998 × 2.40e-3 = +2.39e-3"), "{text}");
        assert!(text.contains("moved it down (-2.00e-3)"), "{text}");
        assert!(text.contains("cross-entropy (network a96)"), "{text}");
        assert!(
            !text.contains("Output 0") && !text.contains("Output 2"),
            "{text}"
        );
        let json = report.to_json();
        assert!(json.contains("\"cost_change\":\"-0.100\""), "{json}");
        assert!(json.contains("\"change\":\"-2.00e-3\""), "{json}");

        let calm = StepReport {
            outputs: vec![output(0.3, 0.35, 0.7, 0.21)],
            ..report
        };
        assert!(calm.explanation().is_empty());
    }
}
