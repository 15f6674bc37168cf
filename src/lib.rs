//! trellis: a graph-compiled automatic-differentiation framework with an LSTM front end.
//!
//! This facade re-exports the four crates; see `DESIGN.md` for how they fit together.
pub use trellis_autodiff as autodiff;
pub use trellis_ir as ir;
pub use trellis_jit as jit;
pub use trellis_nn as nn;
