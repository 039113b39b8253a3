//! Neural networks as autodiff expressions.
//!
//! Layers, activations and costs build ordinary expressions on an
//! [`autodiff::Tape`]; backpropagation is the tape's generic reverse sweep, so nothing
//! in this crate writes a derivative. Parameters live in a named [`ParamStore`] that is
//! bound onto each training step's fresh tape.
//!
//! ```toml
//! [dependencies]
//! autodiff = { package = "backprop-autodiff", version = "0.1" }
//! nn = { package = "backprop-nn", version = "0.1" }
//! [profile.dev.package.backprop-autodiff]
//! opt-level = 3 # the engine optimised in debug builds too (about 10x faster there)
//! ```
//!
//! ```
//! use autodiff::{Tape, Tensor};
//! use nn::{Activation, Cost, Init, Model, Module, Optimizer, Quadratic, Sgd};
//!
//! let mut model = Model::<f32>::new(&[4, 3, 2], Activation::Sigmoid, Activation::Sigmoid, Init::ScaledNormal, 7);
//! let mut opt = Sgd::new(3.0);
//! let x = Tensor::from_vec(vec![0.0, 1.0, 0.5, 0.2, 1.0, 0.0, 0.3, 0.9], [2, 4]);
//! let labels = [1, 0];
//! let mut costs = Vec::new();
//! for _ in 0..20 {
//!     let tape = Tape::new();
//!     let bound = model.params().bind(&tape);
//!     let cost = Quadratic.cost(model.forward(&bound, tape.constant(x.clone())), &labels);
//!     costs.push(cost.item());
//!     let grads = bound.grads(cost.backward()).unwrap();
//!     opt.step(model.params_mut(), &grads).unwrap();
//! }
//! assert!(costs[19] < costs[0]);
//! ```
//!
//! # What is where
//!
//! Every item is at the crate's root (`nn::Model`, `nn::Sgd`), except the IDX file
//! format, in [`idx`].
//!
//! - **Models and layers**: [`Model`] (a perceptron or LeNet-5 that owns its
//!   parameters); the [`Module`] trait and [`Sequential`]; layers [`Linear`],
//!   [`Conv2d`], [`MaxPool2d`], [`AvgPool2d`], [`Flatten`], [`Unflatten`], [`Embedding`],
//!   [`LayerNorm`], [`Recompute`] (a block recomputed during backward); nanoGPT's
//!   transformer [`Gpt`] and its [`GptConfig`]; activations
//!   [`Activation`], [`Sigmoid`], [`ReLU`], [`Tanh`], [`Gelu`]; initialisation [`Init`].
//! - **Parameters and gradients**: [`ParamStore`], [`Bound`], [`Grads`] (below).
//! - **Costs**: the [`Cost`] trait and its [`Target`]; [`Quadratic`], [`CrossEntropy`],
//!   [`MeanSquaredError`], and the functions [`quadratic`], [`mean_squared_error`],
//!   [`one_hot`].
//! - **Optimizers**: the [`Optimizer`] trait and its [`OptimizerState`]; [`Sgd`],
//!   [`Adam`] (and AdamW, [`Adam::adamw`]), [`RmsProp`], [`Adagrad`], [`Adadelta`];
//!   learning-rate [`Schedule`]; gradient clipping by global norm, [`clip_grad_norm`];
//!   differential privacy: [`DpSgd`], [`DpStep`], [`clipped_sum`], [`ClippedSum`].
//! - **Per-sample gradients**: [`per_sample_grads`] and its [`PerSampleGrads`], each
//!   example's gradient by parameter name.
//! - **Data**: [`Dataset`], [`Batch`], [`Mnist`]; the IDX reader in [`idx`]; text for a
//!   character model: [`Shakespeare`], [`CharVocab`], [`Split`], [`TextBatch`].
//! - **Training**: [`Trainer`] and its [`EpochStats`]; the networks of the video,
//!   [`Network`] and their [`Recipe`]; metrics [`accuracy`], [`argmax_rows`],
//!   [`ConfusionMatrix`]; [`data_identity`], [`epoch_rng`], [`augment_rng`].
//! - **Checkpoints**: [`Checkpoint`]; [`write_atomically`], [`write_keeping_previous`],
//!   [`previous_path`].
//! - **Errors**: [`NnError`]. **Random numbers**: [`rand`], the version the crates take.
//!
//! # Parameters, and three kinds of gradients
//!
//! A [`ParamStore`] owns a model's parameters by name (`layers.0.weight`). Each
//! training step binds it to a fresh tape: [`ParamStore::bind`] gives a [`Bound`], the
//! parameters' [`Var`](autodiff::Var) handles on that tape, by name. The cost's
//! `backward()` returns [`autodiff::Gradients`], keyed by those handles and useful only
//! while the tape lives; [`Bound::grads`] turns it into [`Grads`], keyed by parameter
//! name, owned, and what [`Optimizer::step`] reads.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod activation;
mod adadelta;
mod adagrad;
mod batch_norm;
mod checkpoint;
mod clip;
mod conv;
mod data;
mod dp_sgd;
mod dropout;
mod embedding;
mod error;
mod gpt;
mod init;
mod layer_norm;
mod linear;
mod loss;
mod metrics;
mod model;
mod module;
mod optim;
mod params;
mod per_sample;
mod recipe;
mod recompute;
mod rmsprop;
mod schedule;
mod train;

// Models and layers.
pub use activation::{Activation, Gelu, ReLU, Sigmoid, Tanh};
pub use batch_norm::BatchNorm;
pub use conv::{AvgPool2d, Conv2d, Flatten, MaxPool2d, Standardize, Unflatten};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use gpt::Gpt;
pub use gpt::GptConfig;
pub use init::Init;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use model::Model;
pub use module::{Module, Sequential};
pub use recompute::Recompute;

// Parameters and gradients.
pub use params::{Bound, Grads, Mode, ParamStore};

// Costs.
pub use loss::{mean_squared_error, one_hot, quadratic, Cost, Target};
pub use loss::{CrossEntropy, MeanSquaredError, Quadratic};

// Optimizers.
pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use clip::clip_grad_norm;
pub use dp_sgd::{clipped_sum, ClippedSum, DpSgd, DpStep};
pub use optim::{Adam, Optimizer, OptimizerState, Sgd};
pub use rmsprop::RmsProp;
pub use schedule::Schedule;

// Per-sample gradients.
pub use per_sample::{per_sample_grads, PerSampleGrads};

// Data.
pub use data::idx;
pub use data::mnist::Mnist;
pub use data::shakespeare::{
    window_starts, CharVocab, Shakespeare, Split, TextBatch, VALIDATION_STREAM,
};
pub use data::{Batch, Dataset};

// Training.
pub use metrics::{accuracy, argmax_rows, ConfusionMatrix};
pub use recipe::{Network, Recipe};
pub use train::{augment_rng, data_identity, epoch_rng, step_seed, EpochStats, Trainer};

// Checkpoints.
pub use checkpoint::{previous_path, write_atomically, write_keeping_previous, Checkpoint};

pub use error::NnError;

/// The `rand` (0.9) of `autodiff` and this crate: functions taking an RNG need its
/// generators (`use nn::rand::{rngs::StdRng, SeedableRng};`), not a newer `rand`'s.
pub use autodiff::rand;
