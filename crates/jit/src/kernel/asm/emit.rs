//! The loop every kernel's machine code runs, whichever vector registers it uses: per row, the
//! main loop over a few vectors at once (the `wide` program), then single vectors, then the partial last vector under
//! the tail mask, then every row pointer advanced by its stride.
//!
//! General-purpose registers of the generated function (System V arguments):
//! `rdi` rows left, `rsi` full vectors per row, `rdx` row pointers (inputs, outputs, then where
//! each input is prefetched from), `rcx` their row strides in bytes (same order), `r8` constant
//! pool, `r9` the tail (0: none; see the instruction set's [`VectorCode::setup`]);
//! `rax` byte offset in the row, `r10` vectors left in the row, `r11` a pointer.
use iced_x86::code_asm::registers::gpr64::{r10, r11, r9, rax, rcx, rdi, rdx, rsi, rsp};
use iced_x86::code_asm::{byte_ptr, qword_ptr, CodeAssembler};

use super::alloc::{Alloc, Unsupported};
use super::trace::{Def, Traced};

/// An instruction set's part of the code: its registers and the loop body.
pub(super) trait VectorCode {
    /// Bytes in one vector register.
    const BYTES: i32;
    /// Vector registers the allocator hands out (`0..ALLOCATABLE`; those above are scratch).
    const ALLOCATABLE: u8;
    /// Bytes between constants in the pool `r8` points to (each repeated to fill them).
    const POOL_ENTRY: i32;
    /// Once per call, before the first row (`r9` and the pinned constants into registers).
    fn setup(a: &mut CodeAssembler, pinned: &[(usize, u8)]) -> Result<(), Unsupported>;
    /// One pass of the loop body over a vector's lanes at byte `rax` of each row (`tail`: the
    /// row's partial last vector), outputs stored.
    fn body(
        a: &mut CodeAssembler,
        n_inputs: usize,
        tr: &Traced,
        alloc: &Alloc,
        tail: bool,
    ) -> Result<(), Unsupported>;
}

/// Where spill slot `slot` lives.
pub(super) fn spill_at<C: VectorCode>(slot: u32) -> iced_x86::code_asm::AsmMemoryOperand {
    rsp + C::BYTES * slot as i32
}

/// Prefetches, for each input read in full, the cache lines this body reads
/// [`super::AHEAD`] rows further on: the gate rows of a recurrence step come from a projection
/// that left the caches long ago, strided, and the hardware prefetchers do not follow them
/// across pages.
pub(super) fn prefetch<C: VectorCode>(
    a: &mut CodeAssembler,
    n_inputs: usize,
    tr: &Traced,
) -> Result<(), Unsupported> {
    let n_ptrs = n_inputs + tr.outputs[0].len();
    let mut seen = Vec::new();
    for d in &tr.defs {
        if let Def::Input {
            k,
            bcast: false,
            block,
        } = *d
        {
            let line = C::BYTES * block as i32 / 64;
            if seen.contains(&(k, line)) {
                continue;
            }
            seen.push((k, line));
            a.mov(r11, qword_ptr(rdx + 8 * (n_ptrs + k) as i32))?;
            a.prefetcht0(byte_ptr(r11 + rax + 64 * line))?;
        }
    }
    Ok(())
}

/// The machine code of a kernel: `fn(rows, full_vectors, row_ptrs, row_strides, pool, tail)`,
/// from the program traced for several vectors (`wide`, the main loop) and for one (`one`, the
/// rest of the row).
pub(super) fn assemble<C: VectorCode>(
    n_inputs: usize,
    pinned: &[(usize, u8)],
    wide: (&Traced, &Alloc),
    one: (&Traced, &Alloc),
) -> Result<Vec<u8>, Unsupported> {
    let n_ptrs = n_inputs + one.0.outputs[0].len();
    let blocks = wide.0.outputs.len() as i32;
    let mut a = CodeAssembler::new(64)?;
    let frame = C::BYTES * wide.1.spill_slots.max(one.1.spill_slots) as i32;
    C::setup(&mut a, pinned)?;
    if frame > 0 {
        a.sub(rsp, frame)?;
    }
    let mut row = a.create_label();
    let mut wide_loop = a.create_label();
    let mut singles = a.create_label();
    let mut single_loop = a.create_label();
    let mut tail = a.create_label();
    let mut next = a.create_label();
    a.set_label(&mut row)?;
    a.xor(rax, rax)?;
    a.mov(r10, rsi)?;
    a.cmp(r10, blocks)?;
    a.jb(singles)?;
    a.set_label(&mut wide_loop)?;
    C::body(&mut a, n_inputs, wide.0, wide.1, false)?;
    a.add(rax, C::BYTES * blocks)?;
    a.sub(r10, blocks)?;
    a.cmp(r10, blocks)?;
    a.jae(wide_loop)?;
    a.set_label(&mut singles)?;
    a.test(r10, r10)?;
    a.jz(tail)?;
    a.set_label(&mut single_loop)?;
    C::body(&mut a, n_inputs, one.0, one.1, false)?;
    a.add(rax, C::BYTES)?;
    a.dec(r10)?;
    a.jnz(single_loop)?;
    a.set_label(&mut tail)?;
    a.test(r9, r9)?;
    a.jz(next)?;
    C::body(&mut a, n_inputs, one.0, one.1, true)?;
    a.set_label(&mut next)?;
    for p in 0..(n_ptrs + n_inputs) as i32 {
        a.mov(r11, qword_ptr(rcx + 8 * p))?;
        a.add(qword_ptr(rdx + 8 * p), r11)?;
    }
    a.dec(rdi)?;
    a.jnz(row)?;
    if frame > 0 {
        a.add(rsp, frame)?;
    }
    a.vzeroupper()?;
    a.ret()?;
    Ok(a.assemble(0)?)
}
