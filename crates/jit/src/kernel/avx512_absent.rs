//! Off x86-64 no host runs AVX-512 tile programs or x86 machine code: the cache never builds
//! either.
use super::spec::{KernelSpec, RawOperands};

pub(crate) fn available() -> bool {
    false
}

/// Never built: [`super::KernelCache::with_backend`] refuses the AVX-512 backend first.
#[derive(Debug)]
pub(crate) enum Program {}

impl Program {
    pub(crate) fn new(_: &KernelSpec) -> Program {
        unreachable!("AVX-512 programs are only built on x86-64 hosts that have AVX-512")
    }
    pub(crate) unsafe fn run(&self, _: usize, _: usize, _: &RawOperands) {
        match *self {}
    }
}

/// The x86 vector instruction sets (never chosen off x86-64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2,
}

/// Never built, as [`Program`].
#[derive(Debug)]
pub(crate) enum AsmKernel {}

#[derive(Debug)]
pub(crate) enum Unsupported {}

impl Unsupported {
    pub(crate) fn is_expected(&self) -> bool {
        match *self {}
    }
}

impl AsmKernel {
    pub(crate) fn new(_: &KernelSpec, _: Isa) -> Result<AsmKernel, Unsupported> {
        unreachable!("x86 code is only emitted on x86-64 hosts")
    }
    pub(crate) unsafe fn run(&self, _: usize, _: usize, _: &RawOperands) {
        match *self {}
    }
}
