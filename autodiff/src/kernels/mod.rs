//! The raw numeric loops and GEMM calls. Nothing here knows about the tape.

pub(crate) mod broadcast;
pub mod conv;
pub mod gemm;
mod narrow;
pub(crate) mod permute;
pub mod pool;
pub(crate) mod reduce;
pub mod simd;
pub(crate) mod softmax;
