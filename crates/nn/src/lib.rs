//! trellis-nn
