//! Fused kernels as AVX-512 machine code with the values in registers.
//!
//! The tile programs of `avx512.rs` run each node of the expression as its own loop over a tile
//! in L1: every node loads its operands and stores its result, and on Zen 4 a `zmm` store takes
//! two cycles, so a gate kernel spends most of its time moving data through L1. Here the
//! expression is traced once through the same lane math ([`trellis_ir::lanes::Lanes`], so results are
//! bit-identical to the other backends) into a straight-line program over virtual vector and
//! mask registers, which a linear scan assigns to `zmm0..zmm28` and `k1..k6` (spilling the value
//! used furthest ahead to the stack when the vectors run out), and iced-x86 encodes it as one
//! loop: per row, per sixteen lanes, load, compute, store. Inputs and constants take no
//! register: they are reloaded where used (`zmm29..31` are the scratch registers for that, and
//! for spilled values). A program that would need more than six masks at once is not built (the
//! caller falls back to the tile program).
//!
//! One file per phase, each importing the ones before it: `trace` (the lane math into
//! [`trace::Ins`]) <- `alloc` (registers) <- `emit` (machine code) <- this file (the kernel,
//! its memory and the call).
mod alloc;
mod emit;
mod trace;

use super::spec::{KernelSpec, RawOperands};
pub(crate) use alloc::Unsupported;
use alloc::{allocate, pin_constants, ALLOCATABLE};
use emit::{assemble, BLOCKS};
use trace::{trace, Pool};

/// Rows ahead to prefetch inputs from.
const AHEAD: usize = 4;

/// A kernel's machine code, its constant pool, and how it addresses its operands.
pub(crate) struct AsmKernel {
    code: super::exec_mem::ExecMem,
    pool: Vec<u32>,
    col_broadcast: Vec<bool>,
    /// Instructions in the loop body (for `Debug`).
    body_len: usize,
}

impl std::fmt::Debug for AsmKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "avx512 code, {} bytes, {} body instructions, {} constants",
            self.code.len(),
            self.body_len,
            self.pool.len()
        )
    }
}

/// The generated function's type.
type Entry = unsafe extern "sysv64" fn(usize, usize, *mut *mut f32, *const isize, *const u32, u32);

impl AsmKernel {
    /// Machine code for a validated spec, or why there is none.
    pub(crate) fn new(spec: &KernelSpec) -> Result<AsmKernel, Unsupported> {
        let mut pool = Pool::default();
        let wide = trace(spec, BLOCKS, &mut pool);
        let one = trace(spec, 1, &mut pool);
        let pinned = pin_constants(&wide, allocate(&wide, ALLOCATABLE, &[])?.peak);
        let regs = ALLOCATABLE - pinned.len() as u8;
        let wide_alloc = allocate(&wide, regs, &pinned)?;
        let one_alloc = allocate(&one, regs, &pinned)?;
        let n_in = spec.col_broadcast.len();
        let bytes = assemble(n_in, &pinned, (&wide, &wide_alloc), (&one, &one_alloc))?;
        let body_len = wide_alloc.steps.len();
        Ok(AsmKernel {
            code: super::exec_mem::ExecMem::new(&bytes)
                .map_err(|e| Unsupported::Encode(format!("mapping code: {e}")))?,
            pool: pool.bits,
            col_broadcast: spec.col_broadcast.clone(),
            body_len,
        })
    }

    /// Runs the kernel over a `rows x cols` grid, with the raw-pointer contract of
    /// [`crate::Kernel::run_raw`] (the operands as `raw`).
    ///
    /// # Safety
    /// That contract, and the host has AVX-512F and FMA.
    pub(crate) unsafe fn run(&self, rows: usize, cols: usize, raw: &RawOperands) {
        if rows == 0 || cols == 0 {
            return;
        }
        let n_in = self.col_broadcast.len();
        let (ins, in_rs, outs, out_rs) = (raw.ins, raw.in_rs, raw.outs, raw.out_rs);
        let (rows, cols) = raw.grid(&self.col_broadcast, rows, cols);
        // Row pointers of the inputs and outputs, then where each input is prefetched from:
        // `AHEAD` rows on, or on one long row 4 KiB on. All advance by their row strides.
        let ahead = |k: usize| {
            let by = if rows == 1 { 1024 } else { AHEAD * in_rs[k] };
            ins[k].wrapping_add(by) as *mut f32
        };
        let mut ptrs: smallvec::SmallVec<[*mut f32; 32]> = ins
            .iter()
            .map(|&p| p as *mut f32)
            .chain(outs.iter().copied())
            .chain((0..n_in).map(ahead))
            .collect();
        let strides: smallvec::SmallVec<[isize; 32]> = in_rs
            .iter()
            .chain(out_rs)
            .chain(in_rs)
            .map(|&s| (s * 4) as isize)
            .collect();
        let tail = cols % 16;
        let f: Entry = self.code.entry();
        // SAFETY: the code reads input `k` at `ptrs[k] + r * strides[k] + 4c` for `r < rows`,
        // `c < cols` (only `c = 0` for a column-broadcast input, whose pointer advances by its
        // row stride) and writes output `o` likewise, lanes past `cols` masked off by the tail
        // mask: exactly the elements the caller's contract makes readable and writable; each
        // row's vectors are all loaded before that vector's outputs are stored, so an output
        // that is exactly an input's view is still read correctly; the prefetch pointers are
        // only prefetched from, which never faults; the pointer and stride arrays hold
        // `2 n_in + n_outputs` entries and outlive the call; the host has AVX-512F.
        unsafe {
            f(
                rows,
                cols / 16,
                ptrs.as_mut_ptr(),
                strides.as_ptr(),
                self.pool.as_ptr(),
                ((1u32 << tail) - 1) & 0xffff,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_ir::{Binary, Scalar, ScalarFn, Unary};

    fn unary_spec(f: Unary) -> KernelSpec {
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        let y = e.push(Scalar::Unary(f, x));
        e.output(y);
        KernelSpec::new(e)
    }

    /// Every built-in function and operator gets machine code (none needs more than six masks),
    /// so the tile programs are a fallback, not the common path.
    #[test]
    fn every_function_has_code() {
        for f in Unary::ALL {
            let tr = trace(&unary_spec(f), 1, &mut Pool::default());
            allocate(&tr, ALLOCATABLE, &[]).unwrap_or_else(|e| panic!("{f:?}: {e:?}"));
        }
        for f in Binary::ALL {
            let mut e = ScalarFn::new(2);
            let (x, y) = (e.input(0), e.input(1));
            let z = e.push(Scalar::Binary(f, x, y));
            e.output(z);
            allocate(
                &trace(&KernelSpec::new(e), 1, &mut Pool::default()),
                ALLOCATABLE,
                &[],
            )
            .unwrap_or_else(|e| panic!("{f:?}: {e:?}"));
        }
    }

    /// More live values than registers: the allocator spills, and no value is lost (the
    /// results are checked against the other backends in `tests/kernel.rs`).
    #[test]
    fn spills_only_when_values_outnumber_registers() {
        let spill_slots = |width: usize| {
            let mut e = ScalarFn::new(1);
            let x = e.input(0);
            let vals: Vec<u32> = (0..width)
                .map(|j| {
                    let c = e.constant(j as f64 + 0.5);
                    e.push(Scalar::Binary(Binary::Mul, x, c))
                })
                .collect();
            let mut acc = vals[width - 1];
            for &v in vals.iter().rev().skip(1) {
                acc = e.push(Scalar::Binary(Binary::Add, acc, v));
            }
            e.output(acc);
            allocate(
                &trace(&KernelSpec::new(e), 1, &mut Pool::default()),
                ALLOCATABLE,
                &[],
            )
            .unwrap()
            .spill_slots
        };
        assert_eq!(spill_slots(20), 0);
        assert!(spill_slots(60) > 0);
    }

    /// The LSTM cell's values fit in registers: no spill, and the loop body is the traced
    /// instructions with nothing added.
    #[test]
    fn an_lstm_cell_needs_no_spill() {
        let mut e = ScalarFn::new(5);
        let [i, f, g, o, c] = [0, 1, 2, 3, 4].map(|k| e.input(k));
        let si = e.push(Scalar::Unary(Unary::Sigmoid, i));
        let sf = e.push(Scalar::Unary(Unary::Sigmoid, f));
        let tg = e.push(Scalar::Unary(Unary::Tanh, g));
        let so = e.push(Scalar::Unary(Unary::Sigmoid, o));
        let fc = e.push(Scalar::Binary(Binary::Mul, sf, c));
        let ig = e.push(Scalar::Binary(Binary::Mul, si, tg));
        let c2 = e.push(Scalar::Binary(Binary::Add, fc, ig));
        let tc = e.push(Scalar::Unary(Unary::Tanh, c2));
        let h = e.push(Scalar::Binary(Binary::Mul, so, tc));
        e.output(c2);
        e.output(h);
        let tr = trace(&KernelSpec::new(e), 1, &mut Pool::default());
        let alloc = allocate(&tr, ALLOCATABLE, &[]).unwrap();
        assert_eq!(alloc.spill_slots, 0);
        assert_eq!(alloc.steps.len(), tr.ins.len());
    }
}
