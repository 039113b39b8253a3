//! The training loop, generic over the model, cost and optimizer: bind the parameters
//! to a fresh tape, run forward, backward, and hand the gradients to the optimizer.
//! Each epoch's batch order comes from (seed, epoch) alone, and each step's dropout
//! masks from (seed, step), so a run resumed from a checkpoint sees exactly the batches
//! and masks an uninterrupted run would.

use crate::checkpoint::Checkpoint;
use crate::data::{Batch, Dataset};
use crate::error::NnError;
use crate::loss::Cost;
use crate::metrics::ConfusionMatrix;
use crate::model::Model;
use crate::module::Module;
use crate::optim::Optimizer;
use crate::params::Bound;
use crate::recipe::{Network, Recipe};
use crate::schedule::Schedule;
use autodiff::{Tape, Var};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// What one epoch of training measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Which epoch (1-based) just finished.
    pub epoch: usize,
    /// Mean training cost over the epoch's batches.
    pub mean_cost: f64,
}

/// A model with its optimizer, cost and position in training.
pub struct Trainer {
    /// The recipe it was built from.
    pub recipe: Recipe,
    /// The network.
    pub model: Model<f32>,
    /// Its optimizer.
    pub optimizer: Box<dyn Optimizer<f32>>,
    cost: Box<dyn Cost<f32>>,
    /// Seed of the initialisation and of every epoch's shuffle.
    pub seed: u64,
    /// Epochs completed so far.
    pub epoch: usize,
    /// Check every op for NaN/infinity and stop at the first (slower).
    pub detect_anomaly: bool,
    /// The [`data_identity`] of the training set, saved in checkpoints as `info.data` so
    /// that a checkpoint says what it learned from. Set it before training; hashing the
    /// data is left to the caller so that no epoch pays for it.
    pub trained_on: Option<String>,
}

/// An identity of a data set's contents: `sha256:` and the hex SHA-256 of its shape,
/// pixels and labels. Two data sets share it only if they hold the same examples in the
/// same order.
pub fn data_identity(data: &Dataset) -> String {
    let mut hash = Sha256::new();
    hash.update((data.len() as u64).to_le_bytes());
    hash.update((data.features() as u64).to_le_bytes());
    hash.update(data.pixels());
    for &label in &data.labels {
        hash.update((label as u64).to_le_bytes());
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The generator that draws epoch `epoch`'s augmentation (a stream apart from the
/// batch order's, so that augmenting does not change which batches a seed gives).
pub fn augment_rng(seed: u64, epoch: usize) -> StdRng {
    epoch_rng(seed ^ 0xA96A_96A9_6A96_A96A, epoch)
}

/// The generator that orders epoch `epoch`'s batches.
pub fn epoch_rng(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The seed of training step `step` (counted over the whole run from 0), from which its
/// dropout masks are drawn ([`crate::Mode::Train`]): a resumed run draws the masks the
/// uninterrupted one would have.
pub fn step_seed(seed: u64, step: usize) -> u64 {
    let mixed = seed ^ 0xD50F_D50F_D50F_D50F ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    StdRng::seed_from_u64(mixed).next_u64()
}

impl Trainer {
    /// A freshly initialised network following `recipe`.
    pub fn new(recipe: Recipe, seed: u64) -> Self {
        let model = recipe.model(seed);
        Trainer {
            optimizer: recipe.optimizer(),
            cost: recipe.cost(),
            model,
            recipe,
            seed,
            epoch: 0,
            detect_anomaly: false,
            trained_on: None,
        }
    }

    /// Trains one epoch over `data`; `on_batch(done, total, cost)` after each batch.
    /// Each step is a training pass ([`crate::Mode::Train`], seeded by [`step_seed`]),
    /// whose buffer writes (batch norm's running statistics) are kept; [`Trainer::evaluate`]
    /// evaluates. A non-finite cost stops training with an error naming the epoch and batch.
    /// Data the model cannot read panics at the caller's line, naming the layer.
    #[track_caller]
    pub fn train_epoch(
        &mut self,
        data: &Dataset,
        mut on_batch: impl FnMut(usize, usize, f64),
    ) -> Result<EpochStats, NnError> {
        let total = data.num_batches(self.recipe.batch);
        let augmented;
        let data = if self.recipe.shift > 0 {
            let f = data.features();
            let width = (f as f64).sqrt().round() as usize;
            assert!(
                width * width == f,
                "shift augmentation needs square images, not rows of {f} pixels"
            );
            let mut rng = augment_rng(self.seed, self.epoch);
            augmented = data.shifted(width, self.recipe.shift, &mut rng);
            &augmented
        } else {
            data
        };
        let mut rng = epoch_rng(self.seed, self.epoch);
        let mut sum = 0.0;
        for (i, batch) in data.batches(self.recipe.batch, &mut rng).enumerate() {
            if self.recipe.schedule != Schedule::Constant {
                // The schedule spans the recipe's epochs at this data set's batches per
                // epoch.
                let step = self.epoch * total + i;
                let factor = self.recipe.schedule.factor(step, total, self.recipe.epochs);
                self.optimizer.set_learning_rate(self.recipe.lr * factor);
            }
            // The tape (sharing the parameters' storage) is dropped before the update,
            // so the optimizer writes the parameters in place instead of copying them.
            let (value, grads) = {
                let tape = Tape::new();
                tape.detect_anomaly(self.detect_anomaly);
                let step_seed = step_seed(self.seed, self.epoch * total + i);
                let (bound, cost) = self.record_cost(&tape, &batch, step_seed);
                let value = cost.item() as f64;
                let gradients = value.is_finite().then(|| cost.backward());
                let gradients = match gradients {
                    Some(g) if tape.anomaly().is_none() => g,
                    _ => {
                        let anomaly = (tape.anomaly()).or_else(|| self.diagnose(&batch, step_seed));
                        return Err(NnError::Diverged {
                            epoch: self.epoch + 1,
                            batch: i + 1,
                            cost: value,
                            anomaly: anomaly.map(|a| self.describe(&a)),
                        });
                    }
                };
                self.model.params_mut().update_buffers(&bound);
                (value, bound.grads(gradients)?)
            };
            self.optimizer.step(self.model.params_mut(), &grads)?;
            sum += value;
            on_batch(i + 1, total, value);
        }
        self.epoch += 1;
        Ok(EpochStats {
            epoch: self.epoch,
            mean_cost: sum / total.max(1) as f64,
        })
    }

    /// Binds the parameters to `tape` for a training pass seeded `seed` and records the
    /// model's cost on `batch`.
    #[track_caller]
    fn record_cost<'t>(
        &self,
        tape: &'t Tape<f32>,
        batch: &Batch,
        seed: u64,
    ) -> (Bound<'t, f32>, Var<'t, f32>) {
        let bound = self.model.params().bind(tape).train(seed);
        let out = self
            .model
            .forward(&bound, tape.constant(batch.images.clone()));
        let cost = self.cost.cost(out, &batch.labels);
        (bound, cost)
    }

    /// Replays one batch's forward and backward pass with anomaly detection on, to name
    /// the first op that produced a NaN or infinity.
    fn diagnose(&self, batch: &Batch, seed: u64) -> Option<autodiff::Anomaly> {
        let tape = Tape::new();
        tape.detect_anomaly(true);
        let (_, cost) = self.record_cost(&tape, batch, seed);
        if tape.anomaly().is_none() {
            let _ = cost.backward();
        }
        tape.anomaly()
    }

    /// Names the parameter when the anomaly is a parameter leaf (they are the first
    /// nodes of every training tape, in store order).
    fn describe(&self, anomaly: &autodiff::Anomaly) -> String {
        let param = self
            .model
            .params()
            .iter()
            .nth(anomaly.node as usize)
            .map(|(name, _)| name);
        match (anomaly.op.as_str(), param) {
            ("param", Some(name)) => format!(
                "parameter {name:?}, which holds {} non-finite value(s): the previous update (learning rate {}) overflowed it",
                anomaly.count, self.recipe.lr
            ),
            _ => anomaly.to_string(),
        }
    }

    /// Test accuracy and the confusion matrix over `data`, in chunks.
    #[track_caller]
    pub fn evaluate(&self, data: &Dataset) -> (f64, ConfusionMatrix) {
        let classes = self.model.outputs();
        let mut confusion = ConfusionMatrix::new(classes);
        let chunk = 1000;
        let mut start = 0;
        while start < data.len() {
            let batch = data.slice(start, start + chunk);
            confusion.add(&self.model.predict(&batch.images), &batch.labels);
            start += chunk;
        }
        (confusion.accuracy(), confusion)
    }

    /// The model, optimizer state and training position as a checkpoint.
    pub fn checkpoint(&self) -> Checkpoint<f32> {
        let mut c = Checkpoint::new(self.model.params().clone());
        c.optimizer = Some(self.optimizer.state());
        c.info
            .insert("network".into(), self.recipe.network.to_string());
        c.info.insert("epoch".into(), self.epoch.to_string());
        c.info.insert("seed".into(), self.seed.to_string());
        c.info.insert("lr".into(), format!("{:?}", self.recipe.lr));
        c.info.insert("batch".into(), self.recipe.batch.to_string());
        c.info.insert("init".into(), self.recipe.init.to_string());
        c.info
            .insert("epochs".into(), self.recipe.epochs.to_string());
        c.info
            .insert("hidden".into(), self.recipe.hidden.to_string());
        c.info
            .insert("schedule".into(), self.recipe.schedule.to_string());
        c.info.insert(
            "weight_decay".into(),
            format!("{:?}", self.recipe.weight_decay),
        );
        c.info.insert("shift".into(), self.recipe.shift.to_string());
        if let Some(data) = &self.trained_on {
            c.info.insert("data".into(), data.clone());
        }
        c
    }

    /// Rebuilds a trainer from a checkpoint written by [`Trainer::checkpoint`]: same
    /// network, parameters, optimizer state, seed and epoch. Errors name the file the
    /// checkpoint was read from.
    pub fn from_checkpoint(checkpoint: Checkpoint<f32>) -> Result<Self, NnError> {
        let source = checkpoint.source().map(|p| p.to_path_buf());
        let bad = |message: String| NnError::Checkpoint {
            path: source.clone(),
            message,
        };
        let info = |k: &str| {
            checkpoint
                .info
                .get(k)
                .cloned()
                .ok_or_else(|| bad(format!("metadata lacks info.{k}")))
        };
        let network: Network = info("network")?.parse().map_err(bad)?;
        let mut recipe = network.recipe();
        recipe.lr = info("lr")?
            .parse()
            .map_err(|_| bad("info.lr is not a number".into()))?;
        recipe.batch = info("batch")?
            .parse()
            .map_err(|_| bad("info.batch is not a number".into()))?;
        recipe.init = info("init")?.parse().map_err(bad)?;
        // Older checkpoints lack these and trained on their network's defaults.
        let optional = |k: &str| checkpoint.info.get(k);
        if let Some(epochs) = optional("epochs") {
            recipe.epochs = epochs
                .parse()
                .map_err(|_| bad("info.epochs is not a number".into()))?;
        }
        if let Some(hidden) = optional("hidden") {
            recipe.hidden = hidden.parse().map_err(bad)?;
        }
        if let Some(schedule) = optional("schedule") {
            recipe.schedule = schedule.parse().map_err(bad)?;
        }
        if let Some(wd) = optional("weight_decay") {
            recipe.weight_decay = wd
                .parse()
                .map_err(|_| bad("info.weight_decay is not a number".into()))?;
        }
        if let Some(shift) = optional("shift") {
            recipe.shift = shift
                .parse()
                .map_err(|_| bad("info.shift is not a number".into()))?;
        }
        let seed = info("seed")?
            .parse()
            .map_err(|_| bad("info.seed is not a number".into()))?;
        let epoch = info("epoch")?
            .parse()
            .map_err(|_| bad("info.epoch is not a number".into()))?;
        let mut trainer = Trainer::new(recipe, seed);
        checkpoint.restore_params(trainer.model.params_mut())?;
        if let Some(state) = checkpoint.optimizer {
            trainer
                .optimizer
                .load_state(state)
                .map_err(|e| bad(e.to_string()))?;
        }
        trainer.epoch = epoch;
        // Checkpoints from before data identities were recorded have none.
        trainer.trained_on = checkpoint.info.get("data").cloned();
        Ok(trainer)
    }
}

#[cfg(test)]
mod wrong_data_tests {
    use super::*;

    #[test]
    #[should_panic(
        expected = "layers.0 (linear 784 -> 16): input [2, 10] has 10 features, expected 784"
    )]
    fn training_on_rows_of_the_wrong_width_names_the_layer() {
        let data = Dataset::from_bytes(vec![0; 20], 10, vec![3, 4]);
        let _ = Trainer::new(Network::A.recipe(), 1).train_epoch(&data, |_, _, _| {});
    }
}
