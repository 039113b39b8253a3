//! What backprop wants of a perceptron, read from the tape: every neuron's desired nudge
//! `-dC/da` and every parameter's lever, for one example or averaged over a batch, and
//! one plain gradient step. The draw page's views (`draw.rs`, `walk.rs`) are built
//! from these, with the JSON helpers both use.

use autodiff::{Tape, Tensor};
use nn::{Cost, Model, Module, NnError, Optimizer, Quadratic, Sgd};

/// Full precision (Rust's shortest round-trip form), for values the page prints and
/// the tests compare.
pub(crate) fn json_exact(values: &[f32]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| {
            if v.is_finite() {
                format!("{v:e}")
            } else {
                "0".into()
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

pub(crate) fn json_lists(lists: &[Vec<f32>]) -> String {
    let items: Vec<String> = lists.iter().map(|l| json_exact(l)).collect();
    format!("[{}]", items.join(","))
}

/// What the quadratic cost wants of every neuron and parameter, for one example or
/// averaged over a batch, all read from the tape (`retain_grad` on the activations).
#[derive(Clone, Debug, PartialEq)]
pub struct Nudges {
    /// The cost `C` (mean over the examples).
    pub cost: f32,
    /// Per dense layer (first hidden first, output last): mean activations.
    pub activations: Vec<Vec<f32>>,
    /// Per layer: the desired nudge of each neuron, `-dC/da` (summed over the batch's
    /// rows, which is the mean desire since `C` is a mean).
    pub nudges: Vec<Vec<f32>>,
    /// Per layer: `-dC/db`, the bias lever.
    pub bias_nudges: Vec<Vec<f32>>,
    /// Per layer: `-dC/dW`, `[inputs, neurons]` row-major, the weight levers.
    pub weight_nudges: Vec<Vec<f32>>,
    /// Per layer: the weights `W`, `[inputs, neurons]` row-major.
    pub weights: Vec<Vec<f32>>,
    /// Per layer, `[inputs, neurons]`: the nudge neuron `j` asks of input `i` of its
    /// layer, `W[i][j] * -dC/db[j]` (the tape's `-dC/dz_j`, which is `-dC/db_j`,
    /// carried back along one connection). Summed over `j` it is the tape's `-dC/da`
    /// of the layer before.
    pub asks: Vec<Vec<f32>>,
}

/// Runs `model` on `pixels` (`labels.len()` rows of 784) with the quadratic cost
/// against `labels` and reads every gradient from the tape. Needs a perceptron (the
/// parameters `layers.{i}.weight` and `layers.{i}.bias`).
pub fn nudges(model: &Model<f32>, pixels: &[f32], labels: &[usize]) -> Nudges {
    let n = labels.len();
    let tape = Tape::new();
    // The gradient of the network as it stands (no dropout drawn, no batch statistics
    // of a single example): an evaluation-mode pass.
    let bound = model.params().bind(&tape).eval();
    let x = tape.constant(Tensor::from_vec(
        pixels.to_vec(),
        [n, pixels.len() / n.max(1)],
    ));
    let layers = model.activations(&bound, x);
    for a in &layers {
        a.retain_grad();
    }
    let output = *layers.last().expect("a network has layers");
    let cost = Quadratic.cost(output, labels);
    let grads = cost.backward();
    let mut out = Nudges {
        cost: cost.item(),
        activations: Vec::new(),
        nudges: Vec::new(),
        bias_nudges: Vec::new(),
        weight_nudges: Vec::new(),
        weights: Vec::new(),
        asks: Vec::new(),
    };
    let column_sums = |t: &Tensor<f32>, width: usize, scale: f32| -> Vec<f32> {
        (0..width)
            .map(|j| t.data().chunks_exact(width).map(|r| r[j]).sum::<f32>() * scale)
            .collect()
    };
    for (l, a) in layers.iter().enumerate() {
        let width = a.shape()[1];
        out.activations
            .push(column_sums(&a.value(), width, 1.0 / n.max(1) as f32));
        let g = grads
            .get(*a)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros(a.shape()));
        out.nudges.push(column_sums(&g, width, -1.0));
        let w = bound.get(&format!("layers.{l}.weight"));
        let b = bound.get(&format!("layers.{l}.bias"));
        let negate = |t: Option<&Tensor<f32>>| -> Vec<f32> {
            t.map(|t| t.data().iter().map(|g| -g).collect())
                .unwrap_or_default()
        };
        let bias_nudges = negate(grads.get(b));
        let weights = w.value().into_vec();
        let asks = weights
            .chunks_exact(width)
            .flat_map(|row| row.iter().zip(&bias_nudges).map(|(w, d)| w * d))
            .collect();
        out.weight_nudges.push(negate(grads.get(w)));
        out.bias_nudges.push(bias_nudges);
        out.weights.push(weights);
        out.asks.push(asks);
    }
    out
}

impl Nudges {
    /// The JSON the page reads (values at full precision).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"cost\":{},\"activations\":{},\"nudges\":{},\"bias_nudges\":{},\"weight_nudges\":{},\"weights\":{},\"asks\":{}}}",
            if self.cost.is_finite() { format!("{:e}", self.cost) } else { "0".into() },
            json_lists(&self.activations),
            json_lists(&self.nudges),
            json_lists(&self.bias_nudges),
            json_lists(&self.weight_nudges),
            json_lists(&self.weights),
            json_lists(&self.asks),
        )
    }
}

/// One plain gradient step on `pixels` with `labels` (quadratic cost, learning rate
/// `lr`), through the engine's own SGD. Returns the cost before the step.
pub fn learn(
    model: &mut Model<f32>,
    pixels: &[f32],
    labels: &[usize],
    lr: f64,
) -> Result<f32, NnError> {
    let n = labels.len();
    let (cost, grads) = {
        let tape = Tape::new();
        // As in `nudges`: the step the page explains, on the network as it stands.
        let bound = model.params().bind(&tape).eval();
        let x = tape.constant(Tensor::from_vec(
            pixels.to_vec(),
            [n, pixels.len() / n.max(1)],
        ));
        let cost = Quadratic.cost(model.forward(&bound, x), labels);
        (cost.item(), bound.grads(cost.backward())?)
    };
    Sgd::new(lr).step(model.params_mut(), &grads)?;
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asks_of_a_layer_add_up_to_the_tapes_nudges_of_the_layer_before() {
        let model = nn::Network::A.recipe().model(3);
        let input: Vec<f32> = (0..784).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let n = nudges(&model, &input, &[4]);
        for l in 1..n.nudges.len() {
            let width = n.nudges[l].len();
            for (i, want) in n.nudges[l - 1].iter().enumerate() {
                let sum: f32 = n.asks[l][i * width..(i + 1) * width].iter().sum();
                assert!(
                    (sum - want).abs() <= 1e-6 + 1e-4 * want.abs(),
                    "{l} {i}: {sum} vs {want}"
                );
            }
        }
    }
}
