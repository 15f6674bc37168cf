//! Fused kernels as machine code with the values in registers, on AVX-512 or AVX2 hosts.
//!
//! The tile programs of `avx512.rs` run each node of the expression as its own loop over a tile
//! in L1: every node loads its operands and stores its result, and on Zen 4 a `zmm` store takes
//! two cycles, so a gate kernel spends most of its time moving data through L1; Cranelift's
//! x64 backend stops at four lanes. Here the expression is traced once through the same lane
//! math ([`trellis_ir::lanes::Lanes`], so results are bit-identical to the other backends)
//! into a straight-line program over virtual vector and mask registers, which a linear scan
//! assigns to registers (spilling the value used furthest ahead to the stack when the vectors
//! run out), and iced-x86 encodes it as one loop: per row, per vector, load, compute, store.
//! Inputs and constants take no register: they are reloaded where used (three scratch
//! registers for that, and for spilled values).
//!
//! On AVX-512 ([`Isa::Avx512`]) values go to `zmm0..28` and masks to `k1..k6`; a program that
//! would need more than six masks at once is not built (the caller falls back to the tile
//! program). On AVX2 ([`Isa::Avx2`]) the masks become vectors first (`vector_masks`) and values
//! go to `ymm0..12`.
//!
//! One file per phase, each importing the ones before it: `trace` (the lane math into
//! [`trace::Ins`]) <- `vector_masks` (AVX2's rewrite) <- `alloc` (registers) <- `emit` (the
//! loop, shared) <- `zmm`, `ymm` (each instruction set's loop body) <- this file (the kernel,
//! its memory and the call).
mod alloc;
mod emit;
mod trace;
mod vector_masks;
mod ymm;
mod zmm;

use super::spec::{KernelSpec, RawOperands};
pub(crate) use alloc::Unsupported;
use alloc::{allocate, pin_constants};
use emit::{assemble, VectorCode};
use trace::{trace, Pool, Traced};
use vector_masks::vector_masks;
use ymm::YmmCode;
use zmm::ZmmCode;

/// Rows ahead to prefetch inputs from.
const AHEAD: usize = 4;
/// Vectors per iteration of the main loop (see `trace::trace`): independent chains for the
/// core to overlap. On AVX2 the LSTM cell (`cargo bench --bench jit -- "cell kernel"`) took
/// 105, 82 and 92 us at one, two and three (where its values no longer fit in the sixteen
/// registers).
const BLOCKS: usize = 2;

/// The vector instructions a kernel's code uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F and FMA: sixteen lanes, masks in mask registers.
    Avx512,
    /// AVX2 and FMA: eight lanes, masks as vectors.
    Avx2,
}

impl Isa {
    /// Lanes in one vector.
    fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
}

/// Sixteen pool words on a cache line of their own (a 32-byte constant never splits lines).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct PoolLine([u32; 16]);

/// A kernel's machine code, its constant pool, and how it addresses its operands.
pub(crate) struct AsmKernel {
    code: super::exec_mem::ExecMem,
    isa: Isa,
    /// Each constant's bits, [`VectorCode::POOL_ENTRY`] bytes apart (repeated to fill them).
    pool: Vec<PoolLine>,
    n_consts: usize,
    col_broadcast: Vec<bool>,
    /// Instructions in the loop body (for `Debug`).
    body_len: usize,
}

impl std::fmt::Debug for AsmKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} code, {} bytes, {} body instructions, {} constants",
            self.isa,
            self.code.len(),
            self.body_len,
            self.n_consts
        )
    }
}

/// The generated function's type.
type Entry =
    unsafe extern "sysv64" fn(usize, usize, *mut *mut f32, *const isize, *const u32, usize);

/// The program traced for `blocks` vectors, in the form `isa`'s registers take.
fn traced_for(isa: Isa, spec: &KernelSpec, blocks: usize, pool: &mut Pool) -> Traced {
    let tr = trace(spec, blocks, pool);
    match isa {
        Isa::Avx512 => tr,
        Isa::Avx2 => vector_masks(tr, pool),
    }
}

/// The machine code of `wide` and `one` for instruction set `C`, constants pinned in the
/// registers the values leave free; also the body's length and the pool laid out for `C`.
fn code_for<C: VectorCode>(
    n_inputs: usize,
    wide: &Traced,
    one: &Traced,
    pool: &Pool,
) -> Result<(Vec<u8>, usize, Vec<PoolLine>), Unsupported> {
    let all = C::ALLOCATABLE;
    let pinned = pin_constants(wide, allocate(wide, all, &[])?.peak, all);
    let regs = all - pinned.len() as u8;
    let wide_alloc = allocate(wide, regs, &pinned)?;
    let one_alloc = allocate(one, regs, &pinned)?;
    let bytes = assemble::<C>(n_inputs, &pinned, (wide, &wide_alloc), (one, &one_alloc))?;
    let copies = C::POOL_ENTRY as usize / 4;
    let words: Vec<u32> = pool
        .bits
        .iter()
        .flat_map(|&b| std::iter::repeat_n(b, copies))
        .collect();
    let lines = words
        .chunks(16)
        .map(|c| PoolLine(std::array::from_fn(|j| c.get(j).copied().unwrap_or(0))))
        .collect();
    Ok((bytes, wide_alloc.steps.len(), lines))
}

impl AsmKernel {
    /// Machine code for a validated spec on `isa`, or why there is none.
    pub(crate) fn new(spec: &KernelSpec, isa: Isa) -> Result<AsmKernel, Unsupported> {
        let mut pool = Pool::default();
        let wide = traced_for(isa, spec, BLOCKS, &mut pool);
        let one = traced_for(isa, spec, 1, &mut pool);
        let n_in = spec.col_broadcast.len();
        let (bytes, body_len, lines) = match isa {
            Isa::Avx512 => code_for::<ZmmCode>(n_in, &wide, &one, &pool)?,
            Isa::Avx2 => code_for::<YmmCode>(n_in, &wide, &one, &pool)?,
        };
        Ok(AsmKernel {
            code: super::exec_mem::ExecMem::new(&bytes)
                .map_err(|e| Unsupported::Encode(format!("mapping code: {e}")))?,
            isa,
            pool: lines,
            n_consts: pool.bits.len(),
            col_broadcast: spec.col_broadcast.clone(),
            body_len,
        })
    }

    /// Runs the kernel over a `rows x cols` grid, with the raw-pointer contract of
    /// [`crate::Kernel::run_raw`] (the operands as `raw`).
    ///
    /// # Safety
    /// That contract, and the host has the kernel's instruction set (and FMA).
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
        let lanes = self.isa.lanes();
        let tail = cols % lanes;
        // The tail as `r9` takes it: AVX-512 code its lane bits, AVX2 code the address of a
        // lane mask (all ones in the row's last `tail` lanes' places), 0 for no tail.
        let lane_mask: [u32; 8] = std::array::from_fn(|j| if j < tail { u32::MAX } else { 0 });
        let tail_arg = match (self.isa, tail) {
            (_, 0) => 0,
            (Isa::Avx512, t) => (1usize << t) - 1,
            (Isa::Avx2, _) => lane_mask.as_ptr() as usize,
        };
        let f: Entry = self.code.entry();
        // SAFETY: the code reads input `k` at `ptrs[k] + r * strides[k] + 4c` for `r < rows`,
        // `c < cols` (only `c = 0` for a column-broadcast input, whose pointer advances by its
        // row stride) and writes output `o` likewise, lanes past `cols` masked off by the tail
        // mask (masked-off lanes are neither read nor written, and never fault): exactly the
        // elements the caller's contract makes readable and writable; each row's vectors are
        // all loaded before that vector's outputs are stored, so an output that is exactly an
        // input's view is still read correctly; the prefetch pointers are only prefetched
        // from, which never faults; the pointer and stride arrays hold `2 n_in + n_outputs`
        // entries and the lane mask eight, all outliving the call; the cache builds code for
        // an instruction set only on hosts that have it.
        unsafe {
            f(
                rows,
                cols / lanes,
                ptrs.as_mut_ptr(),
                strides.as_ptr(),
                self.pool.as_ptr().cast::<u32>(),
                tail_arg,
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

    /// The program traced for one vector on `isa`, allocated to all its registers.
    fn allocated(isa: Isa, spec: &KernelSpec) -> Result<(Traced, alloc::Alloc), Unsupported> {
        let tr = traced_for(isa, spec, 1, &mut Pool::default());
        let regs = match isa {
            Isa::Avx512 => ZmmCode::ALLOCATABLE,
            Isa::Avx2 => YmmCode::ALLOCATABLE,
        };
        let a = allocate(&tr, regs, &[])?;
        Ok((tr, a))
    }

    /// Every built-in function and operator gets machine code on either instruction set (none
    /// needs more than six masks on AVX-512, and AVX2's programs have no masks left), so the
    /// fallbacks are not the common path.
    #[test]
    fn every_function_has_code() {
        let binary = |f: Binary| {
            let mut e = ScalarFn::new(2);
            let (x, y) = (e.input(0), e.input(1));
            let z = e.push(Scalar::Binary(f, x, y));
            e.output(z);
            KernelSpec::new(e)
        };
        let specs = Unary::ALL
            .iter()
            .map(|&f| (format!("{f:?}"), unary_spec(f)))
            .chain(Binary::ALL.iter().map(|&f| (format!("{f:?}"), binary(f))));
        for (name, spec) in specs {
            for isa in [Isa::Avx512, Isa::Avx2] {
                let (tr, _) =
                    allocated(isa, &spec).unwrap_or_else(|e| panic!("{name} {isa:?}: {e:?}"));
                if isa == Isa::Avx2 {
                    assert_eq!(tr.n_masks, 0, "{name}");
                    assert!(
                        tr.ins.iter().all(|i| trace::dest(i).1.is_none()),
                        "{name}: a mask register in AVX2 code"
                    );
                }
            }
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
            allocated(Isa::Avx512, &KernelSpec::new(e))
                .unwrap()
                .1
                .spill_slots
        };
        assert_eq!(spill_slots(20), 0);
        assert!(spill_slots(60) > 0);
    }

    /// The LSTM cell's values fit in registers on either instruction set (AVX2's sixteen
    /// too): no spill, and the loop body is the traced instructions with nothing added.
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
        let spec = KernelSpec::new(e);
        for isa in [Isa::Avx512, Isa::Avx2] {
            let (tr, alloc) = allocated(isa, &spec).unwrap();
            assert_eq!(alloc.spill_slots, 0, "{isa:?}");
            assert_eq!(alloc.steps.len(), tr.ins.len(), "{isa:?}");
        }
    }
}
