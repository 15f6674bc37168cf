//! trellis-jit
