//! Lowering: a fused graph to the parts of a plan, in four phases, each a type made from the
//! previous one (see [`crate::compile`], which runs them in order):
//!
//! 1. [`Placement`] (`place`): leaves in persistent memory, concat inputs in their concat's
//!    memory; the memory map the later phases extend (views are windows of their operand).
//! 2. [`Selection`] (`select`): each node or fused group becomes steps (GEMM, kernel, gather,
//!    ..., fallback), each value its memory.
//! 3. [`Schedule`] (`schedule`): split runs, parameter-only steps, lifetimes, arena offsets,
//!    the memory limit.
//! 4. [`Assembly`] (`assemble`): memory allocated, windows made absolute and bounds-checked.
//!
//! Each file imports only the phase before it.
mod assemble;
mod place;
mod schedule;
mod select;

pub(crate) use assemble::Assembly;
pub(crate) use place::Placement;
pub(crate) use schedule::Schedule;
pub(crate) use select::Selection;
