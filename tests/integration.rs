//! The root package's integration tests, compiled as one binary: each file of `tests/`
//! is a module here (`cargo test --test integration conv::` runs one). Thirty binaries,
//! each linking the engine and monomorphising it anew, were most of the test command's
//! time. Three stay binaries of their own: `panic_location` replaces the process's panic
//! hook, `resume_process` runs itself as a child process, and `new_user` builds a crate
//! outside the workspace.

/// Helpers the modules share (`use crate::common;`).
mod common;

#[path = "a96_recipe.rs"]
mod a96_recipe;

#[path = "attention.rs"]
mod attention;

#[path = "chain_rule.rs"]
mod chain_rule;

#[path = "checkpoint_keep.rs"]
mod checkpoint_keep;

#[path = "checkpointing.rs"]
mod checkpointing;

#[path = "conv.rs"]
mod conv;

#[path = "curvature.rs"]
mod curvature;

#[path = "demo_refuses.rs"]
mod demo_refuses;

#[path = "dependency_lines.rs"]
mod dependency_lines;

#[path = "doc_pages.rs"]
mod doc_pages;

#[path = "dp_sgd.rs"]
mod dp_sgd;

#[path = "draw_learn.rs"]
mod draw_learn;

#[path = "draw_page.rs"]
mod draw_page;

#[path = "draw_preprocess.rs"]
mod draw_preprocess;

#[path = "fuzz_loaders.rs"]
mod fuzz_loaders;

#[path = "idx_files.rs"]
mod idx_files;

#[path = "mnist_training.rs"]
mod mnist_training;

#[path = "nn_api.rs"]
mod nn_api;

#[path = "nudges.rs"]
mod nudges;

#[path = "oracle.rs"]
mod oracle;

#[path = "oracle_second_order.rs"]
mod oracle_second_order;

#[path = "per_sample.rs"]
mod per_sample;

#[path = "per_sample_example.rs"]
mod per_sample_example;

#[path = "pictures.rs"]
mod pictures;

#[path = "properties.rs"]
mod properties;

#[path = "regression_costs.rs"]
mod regression_costs;

#[path = "reliability.rs"]
mod reliability;

#[path = "scalar_second_order.rs"]
mod scalar_second_order;

#[path = "scalar_tape.rs"]
mod scalar_tape;

#[path = "second_order.rs"]
mod second_order;

#[path = "pytorch_example.rs"]
mod pytorch_example;

#[path = "shakespeare_example.rs"]
mod shakespeare_example;

#[path = "tensor_arithmetic.rs"]
mod tensor_arithmetic;

#[path = "tensor_ops.rs"]
mod tensor_ops;

#[path = "thread_count.rs"]
mod thread_count;
