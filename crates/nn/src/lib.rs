//! trellis-nn

pub mod data;
pub mod error;

pub use error::{NnError, Result};
