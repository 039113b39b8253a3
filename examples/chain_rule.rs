//! The calculus of one weight: the chain rule that the tape multiplies, written out by
//! hand for one test image and a trained network A, beside the tape's own gradient.
//!
//! 3Blue1Brown's backpropagation video ends "I will explain the calculus behind all
//! this in the next video". This example is that chapter, checked by the engine:
//!
//! - for one weight of the last layer, the three factors `dz/dw = a_prev`,
//!   `da/dz = σ'(z)` and `dC/da = (a - y)/n`, their product, and the gradient
//!   `backward()` finds for the same weight;
//! - for one weight of the first layer, the sum over all 16 x 10 paths by which it
//!   reaches the cost (through each hidden-2 neuron and each output neuron), as a table
//!   of every path's contribution, their sum, and the tape's gradient.
//!
//! Everything is computed in f64 from the checkpoint's f32 parameters; the products
//! and the tape agree to 1e-12 (tests/chain_rule.rs asserts it).
//!
//! cargo run --release --example mnist                      # writes the checkpoint
//! cargo run --release --example chain_rule -- --index 0    # then this

use autodiff::{Tape, Tensor};
use clap::Parser;
use nn::{Checkpoint, Cost, Mnist, Model, Network, NnError, Quadratic, Trainer};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    about = "The chain rule for one weight of network A, written out by hand beside the tape's gradient",
    long_about = "For one MNIST test image and a trained network A (784-16-16-10, sigmoid, quadratic \
                  cost), prints the chain-rule factors of one last-layer weight and the 16 x 10 paths \
                  of one first-layer weight, their products and sums, and the gradient the autodiff \
                  tape computes for the same weights, all in f64."
)]
pub struct Args {
    /// A network A checkpoint written by the mnist example.
    #[arg(long, default_value = "checkpoints/mnist-a.safetensors")]
    pub checkpoint: PathBuf,
    /// Which MNIST test image (0 is the first).
    #[arg(long, default_value_t = 0, value_parser = count, allow_negative_numbers = true)]
    pub index: usize,
    /// The last-layer weight as K,M: from hidden-2 neuron K (0-15) to output neuron M
    /// (0-9). Default: into the image's true digit, from the hidden-2 neuron whose
    /// weight there has the largest gradient (the most active one).
    #[arg(long, value_name = "K,M", value_parser = pair, allow_hyphen_values = true)]
    pub layer3_weight: Option<(usize, usize)>,
    /// The first-layer weight as I,J: from input pixel I (0-783, row-major: row I / 28,
    /// column I % 28) to hidden-1 neuron J (0-15). Default: from the brightest pixel
    /// nearest the centre, to the hidden-1 neuron where that weight's gradient is
    /// largest.
    #[arg(long, value_name = "I,J", value_parser = pair, allow_hyphen_values = true)]
    pub layer1_weight: Option<(usize, usize)>,
    /// Directory holding the four MNIST IDX files (raw or .gz); default $MNIST_DIR or the cache.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// A count that may be 0: an image index.
fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 0 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Ok(n) => Err(format!("{n} is not a count (0 or more)")),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// Two counts separated by a comma: a weight's (from, to) neurons.
fn pair(s: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 2 {
        return Err(format!(
            "{s:?} is not two numbers FROM,TO (a weight joins two neurons; for example 3,7)"
        ));
    }
    Ok((count(parts[0])?, count(parts[1])?))
}

/// Relative agreement the example promises between the hand products and the tape.
pub const TOLERANCE: f64 = 1e-12;

/// The logistic function σ(z) = 1 / (1 + e^-z).
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Its slope σ'(z) = σ(z) (1 - σ(z)).
pub fn sigmoid_prime(z: f64) -> f64 {
    let s = sigmoid(z);
    s * (1.0 - s)
}

/// A three-layer perceptron's parameters as plain numbers: `w[l][from * out + to]`
/// (stored `[inputs, outputs]`, as `nn::Linear` keeps them) and `b[l][to]`, layer `l`
/// 0, 1, 2 being the video's first, second and last layer of weights.
pub struct Layers {
    /// Input width, the two hidden widths, the number of outputs.
    pub sizes: [usize; 4],
    /// Weights per layer.
    pub w: [Vec<f64>; 3],
    /// Biases per layer.
    pub b: [Vec<f64>; 3],
}

impl Layers {
    /// The parameters of `model`, which must be a perceptron with three layers.
    pub fn of(model: &Model<f64>) -> Result<Self, String> {
        let sizes: [usize; 4] = model
            .sizes()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| match model.sizes() {
                Some(sizes) => format!(
                    "a network of layer sizes {sizes:?}; the chain rule is written out for three layers of weights"
                ),
                None => "LeNet; the chain rule is written out for a perceptron".to_string(),
            })?;
        let get = |name: String, len: usize| -> Result<Vec<f64>, String> {
            let t = model
                .params()
                .get(&name)
                .ok_or_else(|| format!("the model has no parameter {name:?}"))?;
            if t.numel() != len {
                return Err(format!("{name:?} has {} values, not {len}", t.numel()));
            }
            Ok(t.data().to_vec())
        };
        let w = |l: usize| get(format!("layers.{l}.weight"), sizes[l] * sizes[l + 1]);
        let b = |l: usize| get(format!("layers.{l}.bias"), sizes[l + 1]);
        Ok(Layers {
            sizes,
            w: [w(0)?, w(1)?, w(2)?],
            b: [b(0)?, b(1)?, b(2)?],
        })
    }

    /// The weight of layer `l` from neuron `from` to neuron `to`.
    pub fn weight(&self, l: usize, from: usize, to: usize) -> f64 {
        self.w[l][from * self.sizes[l + 1] + to]
    }
}

/// The forward pass by hand: every neuron's input `z` and activation `a = σ(z)`.
pub struct Forward {
    /// The image's pixels, in [0, 1].
    pub x: Vec<f64>,
    /// The true digit.
    pub label: usize,
    /// Weighted inputs `z = Σ w a_prev + b` per layer (hidden 1, hidden 2, output).
    pub z: [Vec<f64>; 3],
    /// Activations `a = σ(z)` per layer.
    pub a: [Vec<f64>; 3],
    /// The target: 1 for the true digit, 0 for the others.
    pub y: Vec<f64>,
    /// Images the cost averages over (one here).
    pub n: f64,
    /// The cost `1/(2n) Σ_m (a_m - y_m)²`.
    pub cost: f64,
}

impl Forward {
    /// The activations feeding layer `l` (the image for `l = 0`).
    pub fn input_of(&self, l: usize) -> &[f64] {
        if l == 0 {
            &self.x
        } else {
            &self.a[l - 1]
        }
    }

    /// `dC/da_m = (a_m - y_m)/n` for output neuron `m`: the derivative of
    /// `1/(2n) (a_m - y_m)²`, whose 2 cancels the cost's 1/2.
    pub fn dc_da(&self, m: usize) -> f64 {
        (self.a[2][m] - self.y[m]) / self.n
    }

    /// `σ'(z)` of neuron `j` of layer `l`.
    pub fn slope(&self, l: usize, j: usize) -> f64 {
        sigmoid_prime(self.z[l][j])
    }
}

/// Runs the network on one image in plain f64 arithmetic, sigmoid after every layer
/// (network A), and the quadratic cost against the one-hot `label`.
pub fn forward_by_hand(layers: &Layers, x: &[f64], label: usize) -> Forward {
    assert_eq!(x.len(), layers.sizes[0], "forward_by_hand: image size");
    assert!(
        label < layers.sizes[3],
        "forward_by_hand: label out of range"
    );
    let mut z: [Vec<f64>; 3] = Default::default();
    let mut a: [Vec<f64>; 3] = Default::default();
    for l in 0..3 {
        let input = if l == 0 { x } else { &a[l - 1] };
        let zl: Vec<f64> = (0..layers.sizes[l + 1])
            .map(|j| {
                input
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * layers.weight(l, i, j))
                    .sum::<f64>()
                    + layers.b[l][j]
            })
            .collect();
        a[l] = zl.iter().map(|&v| sigmoid(v)).collect();
        z[l] = zl;
    }
    let y: Vec<f64> = (0..layers.sizes[3])
        .map(|m| f64::from(u8::from(m == label)))
        .collect();
    let n = 1.0;
    let cost = a[2]
        .iter()
        .zip(&y)
        .map(|(a, y)| (a - y) * (a - y))
        .sum::<f64>()
        / (2.0 * n);
    Forward {
        x: x.to_vec(),
        label,
        z,
        a,
        y,
        n,
        cost,
    }
}

/// What the tape computes for the same image: the model's own forward pass
/// (`Model::activations`, the layers training runs) and `backward()`.
pub struct TapeGradients {
    /// The cost.
    pub cost: f64,
    /// The output activations.
    pub output: Vec<f64>,
    /// `dC/dW` per layer, `[inputs, outputs]` row-major.
    pub w: [Vec<f64>; 3],
    /// `dC/db` per layer.
    pub b: [Vec<f64>; 3],
    /// `dC/da` per layer (hidden 1, hidden 2, output), kept with `retain_grad`.
    pub a: [Vec<f64>; 3],
}

/// Records `model` and the quadratic cost for one image on a tape and backpropagates.
pub fn tape_gradients(
    model: &Model<f64>,
    x: &[f64],
    label: usize,
) -> Result<TapeGradients, NnError> {
    let tape = Tape::<f64>::new();
    let bound = model.params().bind(&tape);
    let input = tape.constant(Tensor::from_vec(x.to_vec(), [1, x.len()]));
    let activations = model.activations(&bound, input);
    for a in &activations {
        a.retain_grad();
    }
    let output = *activations.last().expect("a network has an output layer");
    let cost = Quadratic.cost(output, &[label][..]);
    let grads = cost.backward();
    let mut a: [Vec<f64>; 3] = Default::default();
    for (slot, var) in a.iter_mut().zip(&activations) {
        *slot = grads
            .get(*var)
            .map_or_else(|| vec![0.0; var.shape()[1]], |g| g.data().to_vec());
    }
    let params = bound.grads(grads)?;
    let grad = |name: String| -> Result<Vec<f64>, NnError> {
        params
            .get(&name)
            .map(|g| g.data().to_vec())
            .ok_or_else(|| NnError::MissingGradient(vec![name]))
    };
    let w = |l: usize| grad(format!("layers.{l}.weight"));
    let b = |l: usize| grad(format!("layers.{l}.bias"));
    Ok(TapeGradients {
        cost: cost.item(),
        output: output.value().into_vec(),
        w: [w(0)?, w(1)?, w(2)?],
        b: [b(0)?, b(1)?, b(2)?],
        a,
    })
}

/// `|hand - tape| / |tape|`, 0 when both are the same number (0 included), and
/// infinite when the tape says 0 and the hand computation does not.
pub fn relative_difference(hand: f64, tape: f64) -> f64 {
    if hand == tape {
        0.0
    } else {
        (hand - tape).abs() / tape.abs()
    }
}

/// The chain rule for the last-layer weight `w3[k, m]`, from hidden-2 neuron `k` to
/// output neuron `m`, and for the same output neuron's two other levers.
pub struct LastLayerWeight {
    /// The hidden-2 neuron the weight comes from.
    pub k: usize,
    /// The output neuron it goes to.
    pub m: usize,
    /// The weight's value.
    pub weight: f64,
    /// The output neuron's weighted input `z3_m`.
    pub z: f64,
    /// Its activation `a3_m = σ(z3_m)`.
    pub a: f64,
    /// Its target `y_m`.
    pub y: f64,
    /// `dz/dw = a2_k`: the previous neuron's activation.
    pub dz_dw: f64,
    /// `da/dz = σ'(z3_m)`.
    pub da_dz: f64,
    /// `dC/da = (a3_m - y_m)/n`.
    pub dc_da: f64,
    /// `dz/dw · da/dz · dC/da`.
    pub product: f64,
    /// The tape's `dC/dw3[k, m]`.
    pub tape: f64,
    /// `dC/db3_m = 1 · σ'(z3_m) · (a3_m - y_m)/n`.
    pub bias_product: f64,
    /// The tape's `dC/db3_m`.
    pub bias_tape: f64,
    /// What output `m` alone asks of hidden-2 neuron `k`: `w3[k, m] σ'(z3_m) (a3_m - y_m)/n`.
    pub wish_of_m: f64,
    /// `dC/da2_k`: the wishes of all the outputs added, `Σ_m w3[k, m] σ'(z3_m) (a3_m - y_m)/n`.
    pub wishes: f64,
    /// The tape's `dC/da2_k`.
    pub wishes_tape: f64,
}

impl LastLayerWeight {
    /// The worst relative difference between a hand product and the tape's value.
    pub fn worst(&self) -> f64 {
        [
            relative_difference(self.product, self.tape),
            relative_difference(self.bias_product, self.bias_tape),
            relative_difference(self.wishes, self.wishes_tape),
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }
}

/// The factors of `dC/dw3[k, m]`, multiplied by hand, beside the tape's values.
pub fn last_layer_weight(
    layers: &Layers,
    f: &Forward,
    tape: &TapeGradients,
    k: usize,
    m: usize,
) -> LastLayerWeight {
    let outputs = layers.sizes[3];
    // The weight moves z = Σ_k w3[k,m] a2_k + b3_m at the rate a2_k ...
    let dz_dw = f.a[1][k];
    // ... z moves a = σ(z) at the rate σ'(z) ...
    let da_dz = f.slope(2, m);
    // ... and a moves C = 1/(2n) Σ (a - y)² at the rate (a - y)/n.
    let dc_da = f.dc_da(m);
    let wishes = (0..outputs)
        .map(|mm| layers.weight(2, k, mm) * f.slope(2, mm) * f.dc_da(mm))
        .sum();
    LastLayerWeight {
        k,
        m,
        weight: layers.weight(2, k, m),
        z: f.z[2][m],
        a: f.a[2][m],
        y: f.y[m],
        dz_dw,
        da_dz,
        dc_da,
        product: dz_dw * da_dz * dc_da,
        tape: tape.w[2][k * outputs + m],
        bias_product: 1.0 * da_dz * dc_da,
        bias_tape: tape.b[2][m],
        wish_of_m: layers.weight(2, k, m) * da_dz * dc_da,
        wishes,
        wishes_tape: tape.a[1][k],
    }
}

/// The chain rule for the first-layer weight `w1[i, j]`, from pixel `i` to hidden-1
/// neuron `j`, as a sum over every path to the cost.
pub struct FirstLayerWeight {
    /// The input pixel.
    pub i: usize,
    /// The hidden-1 neuron.
    pub j: usize,
    /// `dz1_j/dw = x_i`: the pixel's brightness.
    pub x_i: f64,
    /// `da1_j/dz1_j = σ'(z1_j)`.
    pub da_dz: f64,
    /// `paths[k][m]`: the path through hidden-2 neuron `k` and output `m`,
    /// `x_i σ'(z1_j) w2[j,k] σ'(z2_k) w3[k,m] σ'(z3_m) (a3_m - y_m)/n`.
    pub paths: Vec<Vec<f64>>,
    /// The paths added up, row by row.
    pub total: f64,
    /// The tape's `dC/dw1[i, j]`.
    pub tape: f64,
}

impl FirstLayerWeight {
    /// Each row's sum: the paths through one hidden-2 neuron.
    pub fn row_sums(&self) -> Vec<f64> {
        self.paths.iter().map(|row| row.iter().sum()).collect()
    }

    /// Each column's sum: the paths into one output neuron.
    pub fn column_sums(&self) -> Vec<f64> {
        let columns = self.paths.first().map_or(0, Vec::len);
        (0..columns)
            .map(|m| self.paths.iter().map(|row| row[m]).sum())
            .collect()
    }
}

/// Every path's product for `dC/dw1[i, j]`, their sum, and the tape's value.
pub fn first_layer_weight(
    layers: &Layers,
    f: &Forward,
    tape: &TapeGradients,
    i: usize,
    j: usize,
) -> FirstLayerWeight {
    let [_, _, hidden2, outputs] = layers.sizes;
    let x_i = f.x[i];
    let da_dz = f.slope(0, j);
    let paths: Vec<Vec<f64>> = (0..hidden2)
        .map(|k| {
            (0..outputs)
                .map(|m| {
                    x_i // dz1_j / dw1[i,j]
                        * da_dz // da1_j / dz1_j
                        * layers.weight(1, j, k) // dz2_k / da1_j
                        * f.slope(1, k) // da2_k / dz2_k
                        * layers.weight(2, k, m) // dz3_m / da2_k
                        * f.slope(2, m) // da3_m / dz3_m
                        * f.dc_da(m) // dC / da3_m
                })
                .collect()
        })
        .collect();
    let total = paths.iter().flatten().sum();
    FirstLayerWeight {
        i,
        j,
        x_i,
        da_dz,
        paths,
        total,
        tape: tape.w[0][i * layers.sizes[1] + j],
    }
}

/// The worst relative difference between the hand chain rule and the tape over every
/// weight of the last layer (three factors each) and of the first (every path each).
pub fn worst_over_all_weights(layers: &Layers, f: &Forward, tape: &TapeGradients) -> f64 {
    let [inputs, hidden1, hidden2, outputs] = layers.sizes;
    let mut worst = 0.0f64;
    for k in 0..hidden2 {
        for m in 0..outputs {
            worst = worst.max(last_layer_weight(layers, f, tape, k, m).worst());
        }
    }
    for i in 0..inputs {
        for j in 0..hidden1 {
            let w = first_layer_weight(layers, f, tape, i, j);
            worst = worst.max(relative_difference(w.total, w.tape));
        }
    }
    worst
}

/// The default last-layer weight: into the true digit's neuron, from the hidden-2
/// neuron with the largest activation (the three factors differ only in `a2_k`, so its
/// weight has the largest gradient of the sixteen).
pub fn default_last_weight(f: &Forward) -> (usize, usize) {
    let k = argmax(&f.a[1], |a| a.abs());
    (k, f.label)
}

/// The default first-layer weight: from the brightest pixel (nearest the centre among
/// equals), to the hidden-1 neuron where its gradient is largest.
pub fn default_first_weight(layers: &Layers, f: &Forward, tape: &TapeGradients) -> (usize, usize) {
    let side = (layers.sizes[0] as f64).sqrt().round() as usize;
    let centre = (side as f64 - 1.0) / 2.0;
    let brightest = f.x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let i = (0..f.x.len())
        .filter(|&i| f.x[i] == brightest)
        .min_by(|&p, &q| {
            let d = |i: usize| {
                let (r, c) = ((i / side.max(1)) as f64, (i % side.max(1)) as f64);
                (r - centre).powi(2) + (c - centre).powi(2)
            };
            d(p).total_cmp(&d(q))
        })
        .unwrap_or(0);
    let totals: Vec<f64> = (0..layers.sizes[1])
        .map(|j| first_layer_weight(layers, f, tape, i, j).total)
        .collect();
    (i, argmax(&totals, f64::abs))
}

/// The index of the largest `key(v)` (the first among equals).
fn argmax(values: &[f64], key: impl Fn(f64) -> f64) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if key(v) > key(values[best]) {
            best = i;
        }
    }
    best
}

/// How to get a checkpoint this example can read.
const TRAIN_ONE: &str =
    "train one with `cargo run --release --example mnist` (network a, the default)";

/// Reads a network A checkpoint into an f64 model, refusing anything else with a
/// message that names the file and says how to write one; also returns one line about
/// the checkpoint (epochs, test accuracy, data: [`Checkpoint::summary`]).
pub fn load_network_a(path: &Path) -> Result<(Model<f64>, String), Box<dyn Error>> {
    if !path.exists() {
        return Err(format!(
            "no checkpoint at {}: {TRAIN_ONE}, or pass --checkpoint PATH",
            path.display()
        )
        .into());
    }
    if path.is_dir() {
        return Err(format!(
            "--checkpoint {} is a directory; give the .safetensors file the mnist example wrote",
            path.display()
        )
        .into());
    }
    let explain = |e: NnError| {
        format!("{e}\n(this example reads the checkpoints the mnist example writes: {TRAIN_ONE})")
    };
    let checkpoint = Checkpoint::<f32>::load(path).map_err(explain)?;
    let about = checkpoint.summary();
    let trainer = Trainer::from_checkpoint(checkpoint).map_err(explain)?;
    let recipe = &trainer.recipe;
    if recipe.network != Network::A {
        return Err(format!(
            "{} holds network {}; this example writes out the chain rule for network a \
             (784-16-16-10, sigmoid everywhere, quadratic cost): {TRAIN_ONE}",
            path.display(),
            recipe.network
        )
        .into());
    }
    let mut model = Model::<f64>::new(&recipe.sizes, recipe.hidden, recipe.output, recipe.init, 0);
    let mut store = nn::ParamStore::new();
    for (name, value) in trainer.model.params().iter() {
        store.insert(name, value.cast::<f64>());
    }
    model
        .params_mut()
        .assign_from(store)
        .map_err(|m| format!("{}: does not fit network a: {m}", path.display()))?;
    Ok((model, about))
}

/// Refuses weights outside network A before anything is read.
fn check_args(args: &Args) -> Result<(), String> {
    let sizes = Network::A.recipe().sizes;
    if let Some((k, m)) = args.layer3_weight {
        if k >= sizes[2] {
            return Err(format!(
                "--layer3-weight {k},{m}: hidden layer 2 has neurons 0-{}, not {k}",
                sizes[2] - 1
            ));
        }
        if m >= sizes[3] {
            return Err(format!(
                "--layer3-weight {k},{m}: the output neurons are 0-{} (one per digit), not {m}",
                sizes[3] - 1
            ));
        }
    }
    if let Some((i, j)) = args.layer1_weight {
        if i >= sizes[0] {
            return Err(format!(
                "--layer1-weight {i},{j}: the input pixels are 0-{} (row * 28 + column), not {i}",
                sizes[0] - 1
            ));
        }
        if j >= sizes[1] {
            return Err(format!(
                "--layer1-weight {i},{j}: hidden layer 1 has neurons 0-{}, not {j}",
                sizes[1] - 1
            ));
        }
    }
    Ok(())
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

/// A factor with 6 significant digits, fixed-point where that reads well.
fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&x.abs()) {
        format!("{x:.6}")
    } else {
        format!("{x:.5e}")
    }
}

/// A value compared with the tape, with every digit an f64 holds.
fn exact(x: f64) -> String {
    format!("{x:+.15e}")
}

/// A table cell: 3 significant digits.
fn cell(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x:+.2e}")
    }
}

/// A factor inside a written-out product: negative ones in parentheses.
fn factor(x: f64) -> String {
    if x < 0.0 {
        format!("({})", num(x))
    } else {
        num(x)
    }
}

/// One line of a derivation: what, and its value, the values aligned.
fn row(what: &str, value: String) {
    println!("     {what:<34} = {value}");
}

/// The agreement of a hand value with the tape's, in words.
fn agreement(hand: f64, tape: f64) -> String {
    let r = relative_difference(hand, tape);
    let verdict = if r <= TOLERANCE {
        "agree to 1e-12"
    } else {
        "DISAGREE beyond 1e-12"
    };
    if hand == tape {
        format!("identical ({verdict})")
    } else {
        format!("{r:.1e} ({verdict})")
    }
}

pub fn run(args: Args) -> Result<(), Box<dyn Error>> {
    check_args(&args)?;
    let (model, about) = load_network_a(&args.checkpoint)?;
    let layers = Layers::of(&model)?;
    let data = Mnist::load(args.data_dir.as_deref())?;
    if data.test.features() != layers.sizes[0] {
        return Err(format!(
            "{} holds images of {} pixels, but network a reads {}",
            data.dir.display(),
            data.test.features(),
            layers.sizes[0]
        )
        .into());
    }
    if args.index >= data.test.len() {
        return Err(format!(
            "--index {} is past the {} test images in {} (the first is 0)",
            args.index,
            data.test.len(),
            data.dir.display()
        )
        .into());
    }
    let image = data.test.slice(args.index, args.index + 1);
    let x: Vec<f64> = image.images.cast::<f64>().into_vec();
    let label = image.labels[0];

    let f = forward_by_hand(&layers, &x, label);
    let tape = tape_gradients(&model, &x, label)?;
    let [inputs, hidden1, hidden2, outputs] = layers.sizes;
    let side = (inputs as f64).sqrt().round() as usize;
    let guess = argmax(&f.a[2], |a| a);

    println!("checkpoint {}: {about}", args.checkpoint.display());
    println!("network a {:?}, parameters cast to f64", layers.sizes);
    println!(
        "test image {} of {} (MNIST from {}): a {label}; the network reads it as {guess} ({:.3})",
        args.index,
        data.test.len(),
        data.dir.display(),
        f.a[2][guess]
    );
    println!(
        "cost of this one image: C = 1/(2n) Σ_m (a_m - y_m)² with n = 1 and y the one-hot target = {}",
        num(f.cost)
    );
    println!(
        "  (the same forward pass on the tape: C = {}, outputs within {:.1e} of these)",
        num(tape.cost),
        f.a[2]
            .iter()
            .zip(&tape.output)
            .map(|(h, t)| (h - t).abs())
            .fold(0.0, f64::max)
    );
    print!("  output a3:");
    for (m, a) in f.a[2].iter().enumerate() {
        print!("  {m}: {a:.3}");
    }
    println!("\n  target y :  1 for the {label}, 0 for the other nine");

    // 1. A weight of the last layer.
    let (k, m) = args
        .layer3_weight
        .unwrap_or_else(|| default_last_weight(&f));
    let w = last_layer_weight(&layers, &f, &tape, k, m);
    println!();
    println!("1. The last layer: the weight w3[{k},{m}] from hidden-2 neuron {k} to output neuron {m} (the {m}'s neuron)");
    if args.layer3_weight.is_none() {
        println!("   (chosen: into the true digit's neuron, from the most active hidden-2 neuron: of its 16 incoming");
        println!(
            "   weights this one has the largest gradient; pick another with --layer3-weight K,M)"
        );
    }
    println!(
        "   The weight (now {}) acts on the cost through one neuron, in three steps:",
        num(w.weight)
    );
    println!(
        "     z = Σ_k w3[k,{m}]·a2_k + b3_{m} = {}   the output neuron's weighted input",
        num(w.z)
    );
    println!(
        "     a = σ(z)                    = {}   its activation",
        num(w.a)
    );
    println!(
        "     C = 1/(2n) Σ_m (a_m - y_m)², here with y_{m} = {}",
        w.y
    );
    println!("   so by the chain rule dC/dw = dz/dw · da/dz · dC/da:");
    row(&format!("dz/dw = a2_{k}"), num(w.dz_dw));
    println!("         how much the neuron's input moves with the weight: the previous neuron's activation");
    println!(
        "         (weights from bright neurons matter most; a dark neuron's weights barely learn)"
    );
    row("da/dz = σ'(z) = a(1 - a)", num(w.da_dz));
    println!(
        "         how much the neuron's activation moves with its input: the sigmoid's slope at z"
    );
    println!("         (near 0 when the neuron is saturated, 0.25 at most)");
    row("dC/da = (a - y)/n", num(w.dc_da));
    println!(
        "         how sensitive the cost is to this output: how far it is from its target; the"
    );
    println!("         square's 2 cancels the cost's 1/2, and n = 1 image");
    row("their product", exact(w.product));
    row("the tape's dC/dw (backward)", exact(w.tape));
    row("relative difference", agreement(w.product, w.tape));
    println!("   The same neuron's other two levers:");
    println!(
        "     its bias: dC/db3_{m} = dz/db · da/dz · dC/da = 1 · {} · {} = {}",
        factor(w.da_dz),
        factor(w.dc_da),
        exact(w.bias_product)
    );
    println!(
        "       tape {}, relative difference {}",
        exact(w.bias_tape),
        agreement(w.bias_product, w.bias_tape)
    );
    println!(
        "     the previous activation: output {m} alone asks dC/da2_{k} = w3[{k},{m}]·σ'(z)·(a - y)/n = {}",
        num(w.wish_of_m)
    );
    println!(
        "       but neuron {k} feeds all {outputs} outputs, and their wishes add up: Σ_m w3[{k},m]·σ'(z3_m)·(a3_m - y_m)/n"
    );
    println!(
        "       = {}; the tape's dC/da2_{k} {}, relative difference {}",
        exact(w.wishes),
        exact(w.wishes_tape),
        agreement(w.wishes, w.wishes_tape)
    );
    println!("       (that sum is backpropagation: the next layer back is treated the same way)");

    // 2. A weight of the first layer.
    let (i, j) = args
        .layer1_weight
        .unwrap_or_else(|| default_first_weight(&layers, &f, &tape));
    let p = first_layer_weight(&layers, &f, &tape, i, j);
    println!();
    println!(
        "2. The first layer: the weight w1[{i},{j}] from pixel {i} (row {}, column {}) to hidden-1 neuron {j}",
        i / side,
        i % side
    );
    if args.layer1_weight.is_none() {
        println!("   (chosen: the brightest pixel nearest the centre, and the hidden-1 neuron where that pixel's");
        println!("   weight has the largest gradient; pick another with --layer1-weight I,J)");
    }
    println!(
        "   This weight moves z1_{j}, hence a1_{j}; a1_{j} feeds all {hidden2} neurons of hidden layer 2, and each"
    );
    println!(
        "   of them feeds all {outputs} outputs: {hidden2} x {outputs} = {} paths from the weight to the cost. Along a path",
        hidden2 * outputs
    );
    println!("   the chain rule multiplies the rates of its links; the paths' effects add up:");
    println!("     dC/dw1[{i},{j}] = Σ_k Σ_m x_{i} · σ'(z1_{j}) · w2[{j},k]·σ'(z2_k) · w3[k,m]·σ'(z3_m) · (a3_m - y_m)/n");
    println!(
        "     x_{i} = dz1/dw = {}   the pixel's brightness (a black pixel's weights do not learn from this image)",
        num(p.x_i)
    );
    println!(
        "     σ'(z1_{j}) = da1/dz1 = {}   how much hidden-1 neuron {j} moves with its input",
        num(p.da_dz)
    );
    println!("     w2[{j},k]·σ'(z2_k): how much hidden-2 neuron k moves with a1_{j}");
    println!("     w3[k,m]·σ'(z3_m): how much output m moves with a2_k");
    println!("     (a3_m - y_m)/n:   how sensitive the cost is to output m");
    println!();
    println!("   Each path's product (rows: hidden-2 neuron k; columns: output neuron m; the true digit is {label}):");
    let width = 10;
    print!("   {:>4}", "k\\m");
    for m in 0..outputs {
        let head = if m == label {
            format!("{m}*")
        } else {
            m.to_string()
        };
        print!("{head:>width$}");
    }
    println!("{:>12}", "row sum");
    let rows = p.row_sums();
    for (k, row) in p.paths.iter().enumerate() {
        print!("   {k:>4}");
        for &v in row {
            print!("{:>width$}", cell(v));
        }
        println!("{:>12}", cell(rows[k]));
    }
    print!("   {:>4}", "sum");
    for v in p.column_sums() {
        print!("{:>width$}", cell(v));
    }
    println!("{:>12}", cell(p.total));
    println!();
    row(
        &format!("sum of the {} paths", hidden2 * outputs),
        exact(p.total),
    );
    row("the tape's dC/dw (backward)", exact(p.tape));
    row("relative difference", agreement(p.total, p.tape));
    let mut order: Vec<(usize, usize)> = (0..hidden2)
        .flat_map(|k| (0..outputs).map(move |m| (k, m)))
        .collect();
    order.sort_by(|&(k1, m1), &(k2, m2)| p.paths[k2][m2].abs().total_cmp(&p.paths[k1][m1].abs()));
    if p.total != 0.0 {
        let (k1, m1) = order[0];
        let top10: f64 = order[..10].iter().map(|&(k, m)| p.paths[k][m]).sum();
        println!(
            "   The strongest path runs through hidden-2 neuron {k1} to output {m1} ({}); the 10 strongest add up to {:.0}% of the total.",
            cell(p.paths[k1][m1]),
            100.0 * top10 / p.total
        );
    } else if p.x_i == 0.0 {
        println!("   Every path is 0 here: the pixel is black, so this weight does not change the cost for this image.");
    } else {
        println!("   Every path is 0 here: some factor shared by all of them is 0.");
    }
    println!("   Column m adds up the paths into output m: outputs far from their target (large |a - y|) and not");
    println!("   saturated (large σ') carry most of the weight's effect; row k adds up those through hidden-2 neuron k.");
    println!("   Backprop never lists the paths. Row k's sum is x_{i}·σ'(z1_{j})·w2[{j},k]·dC/dz2_k, where");
    println!("   dC/dz2_k = σ'(z2_k)·Σ_m w3[k,m]·dC/dz3_m is computed once per neuron and shared by every weight");
    println!("   before it: the backward pass adds each layer's wishes into the layer before, one layer at a time.");
    println!();
    let worst = worst_over_all_weights(&layers, &f, &tape);
    println!(
        "Over all {} last-layer weights (and their biases and dC/da2) and all {} first-layer weights (every path",
        hidden2 * outputs,
        inputs * hidden1
    );
    println!(
        "of each), the chain rule by hand and the tape differ by at most {worst:.1e} relative ({}).",
        if worst <= TOLERANCE {
            "within 1e-12"
        } else {
            "MORE than 1e-12"
        }
    );
    if guess == label {
        let predictions = model.predict(&data.test.images().cast::<f64>());
        let wrong = (0..data.test.len())
            .map(|n| (n + args.index) % data.test.len())
            .find(|&n| {
                let row = &predictions.data()[n * outputs..(n + 1) * outputs];
                argmax(row, |a| a) != data.test.labels[n]
            });
        if let Some(n) = wrong {
            let row = &predictions.data()[n * outputs..(n + 1) * outputs];
            println!(
                "tip: a misclassified image asks for larger changes: test image {n} is a {} read as {}; try --index {n}",
                data.test.labels[n],
                argmax(row, |a| a)
            );
        }
    }
    if worst > TOLERANCE {
        return Err(format!("the chain rule and the tape disagree by {worst:.1e}").into());
    }
    Ok(())
}
