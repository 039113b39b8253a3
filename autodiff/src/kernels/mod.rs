//! The raw numeric loops and GEMM calls. Nothing here knows about the tape, and nothing
//! here is public: the ops in `ops/` are the interface. All of the crate's `unsafe`
//! lives in this module, each block with the argument for it beside it.

pub(crate) mod broadcast;
pub(crate) mod conv;
mod direct_conv;
pub(crate) mod elementwise;
mod few_columns;
pub(crate) mod gemm;
pub(crate) mod norm;
pub(crate) mod peak;
pub(crate) mod per_example;
pub(crate) mod permute;
pub(crate) mod pool;
pub(crate) mod reduce;
pub(crate) mod rows;
pub(crate) mod schedule;
pub(crate) mod simd;
pub(crate) mod softmax;
pub(crate) mod uninit;
