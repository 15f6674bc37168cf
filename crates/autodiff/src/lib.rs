//! trellis-autodiff
