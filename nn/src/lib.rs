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
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod activation;
pub mod checkpoint;
pub mod conv;
pub mod data;
pub mod dp_sgd;
pub mod error;
pub mod init;
pub mod linear;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod module;
pub mod optim;
pub mod params;
pub mod per_sample;
pub mod recipe;
pub mod recompute;
pub mod schedule;
pub mod train;

pub use activation::{Activation, ReLU, Sigmoid, Tanh};
pub use checkpoint::Checkpoint;
pub use conv::{AvgPool2d, Conv2d, Flatten, MaxPool2d, Unflatten};
pub use data::mnist::Mnist;
pub use data::{Batch, Dataset};
pub use dp_sgd::{clipped_sum, ClippedSum, DpSgd, DpStep};
pub use error::NnError;
pub use init::Init;
pub use linear::Linear;
pub use loss::{mean_squared_error, one_hot, quadratic, Cost, Target};
pub use loss::{CrossEntropy, MeanSquaredError, Quadratic};
pub use metrics::{accuracy, ConfusionMatrix};
pub use model::Model;
pub use module::{Module, Sequential};
pub use optim::{Adam, Optimizer, OptimizerState, Sgd};
pub use params::{Bound, Grads, ParamStore};
pub use per_sample::{per_sample_grads, PerSampleGrads};
pub use recipe::{Network, Recipe};
pub use recompute::Recompute;
pub use schedule::Schedule;
pub use train::{EpochStats, Trainer};

/// The `rand` (0.9) of `autodiff` and this crate: functions taking an RNG need its
/// generators (`use nn::rand::{rngs::StdRng, SeedableRng};`), not a newer `rand`'s.
pub use autodiff::rand;
