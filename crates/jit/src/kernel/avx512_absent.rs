//! Off x86-64 no host runs AVX-512 tile programs or AVX-512 machine code: the cache never
//! builds either.
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
    pub(crate) fn new(_: &KernelSpec) -> Result<AsmKernel, Unsupported> {
        unreachable!("AVX-512 code is only emitted on x86-64 hosts that have AVX-512")
    }
    pub(crate) unsafe fn run(&self, _: usize, _: usize, _: &RawOperands) {
        match *self {}
    }
}
