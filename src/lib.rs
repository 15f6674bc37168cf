//! trellis: a graph-compiled automatic-differentiation framework with an LSTM front end.
//!
//! This facade re-exports the four crates (`ir`, `autodiff`, `jit`, `nn`); ARCHITECTURE.md
//! describes how they fit together. The README below is the crate's front page: its Rust
//! blocks compile as doc tests, so the code a newcomer pastes stays true.
#![doc = include_str!("../README.md")]
pub use trellis_autodiff as autodiff;
pub use trellis_ir as ir;
pub use trellis_jit as jit;
pub use trellis_nn as nn;
