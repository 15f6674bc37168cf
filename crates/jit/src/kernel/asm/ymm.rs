//! The loop body as AVX2 code: eight lanes in `ymm` registers, masks as vectors (the program
//! rewritten by `vector_masks`), the row's tail read and written with `vmaskmovps` under the
//! lane mask `r9` points to.
//!
//! Sixteen registers leave few for constants, and AVX2 has no broadcast memory operand, so the
//! pool holds each constant as a whole vector and an instruction reads a constant (or a spilled
//! value) as its memory operand where the encoding has one: a load folded into the
//! instruction, not a load and a register.
use iced_x86::code_asm::registers::gpr64::{r11, r8, r9, rax, rdx};
use iced_x86::code_asm::registers::ymm::*;
use iced_x86::code_asm::{
    dword_ptr, qword_ptr, ymmword_ptr, AsmMemoryOperand, AsmRegisterYmm, CodeAssembler,
};

use super::alloc::{Alloc, Loc, Resolved, Step, Tie, Unsupported};
use super::emit::{prefetch, spill_at, VectorCode};
use super::trace::{operands, Def, Ins, Shift, Traced, VBin, VUn, V};

const YMM: [AsmRegisterYmm; 16] = [
    ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14,
    ymm15,
];
/// Registers for operands that are not in one (inputs, constants, spilled values).
const SCRATCH: [u8; 3] = [13, 14, 15];

/// AVX2 and FMA code; `r9` holds the address of the tail's eight lane masks (all ones for the
/// lanes in the row), or 0.
pub(super) struct YmmCode;

/// An instruction's source: a register, or memory the instruction reads itself.
#[derive(Clone, Copy)]
enum Src {
    Reg(AsmRegisterYmm),
    Mem(AsmMemoryOperand),
}

impl YmmCode {
    /// Puts vector value `v` (at `l`, or an input/constant) in a register, using scratch
    /// register `s` if it is not in one already.
    fn operand(
        a: &mut CodeAssembler,
        tr: &Traced,
        v: V,
        l: Option<Loc>,
        s: usize,
        tail: bool,
    ) -> Result<AsmRegisterYmm, Unsupported> {
        let y = YMM[SCRATCH[s] as usize];
        if let Some(m) = Self::memory(tr, v, l) {
            a.vmovups(y, ymmword_ptr(m))?;
            return Ok(y);
        }
        match (l, tr.defs[v.0 as usize]) {
            (Some(Loc::Reg(r)), _) => return Ok(YMM[r as usize]),
            (None, Def::Input { k, bcast, block }) => {
                a.mov(r11, qword_ptr(rdx + 8 * k as i32))?;
                let at = ymmword_ptr(r11 + rax + Self::BYTES * block as i32);
                if bcast {
                    a.vbroadcastss(y, dword_ptr(r11))?;
                } else if tail {
                    // The mask, then the lanes it selects (the others read as zero, unread).
                    a.vmovups(y, ymmword_ptr(r9))?;
                    a.vmaskmovps(y, y, at)?;
                } else {
                    a.vmovups(y, at)?;
                }
            }
            _ => {
                unreachable!("constants and spilled values are in memory, computed ones allocated")
            }
        }
        Ok(y)
    }

    /// Where `v` is a whole vector in memory: a constant's pool entry or a spill slot.
    fn memory(tr: &Traced, v: V, l: Option<Loc>) -> Option<AsmMemoryOperand> {
        match (l, tr.defs[v.0 as usize]) {
            (Some(Loc::Spilled(slot)), _) => Some(spill_at::<Self>(slot)),
            (None, Def::Const(p)) => Some(r8 + Self::POOL_ENTRY * p as i32),
            _ => None,
        }
    }

    /// The operand of `ins` read from memory, if one may be: the encodings take memory only
    /// as their last source (for `a * b + c` the tied form decides which that is), and a
    /// commutative operation may swap its operands for it.
    fn folded(tr: &Traced, ins: &Ins, r: &Resolved) -> Option<usize> {
        let (vs, _) = operands(ins);
        let in_memory = |s: usize| vs[s].is_some_and(|v| Self::memory(tr, v, r.ops[s]).is_some());
        let first = |slots: &[usize]| slots.iter().copied().find(|&s| in_memory(s));
        match *ins {
            Ins::Un(..) => first(&[0]),
            Ins::Bin(op, ..) if commutes(op) => first(&[1, 0]),
            Ins::Bin(..) | Ins::CmpV(..) | Ins::BlendV(..) => first(&[1]),
            Ins::Fma(..) => match r.tie {
                Tie::InPlace | Tie::Copy => first(&[1, 0]),
                Tie::A | Tie::B => first(&[2]),
            },
            _ => None,
        }
    }
}

/// Whether `op(a, b) == op(b, a)` bit for bit (`vmaxps` and `vminps` are not: they return
/// the second operand on NaN or equal zeros).
fn commutes(op: VBin) -> bool {
    matches!(
        op,
        VBin::Add | VBin::Mul | VBin::And | VBin::Or | VBin::Xor | VBin::IAdd
    )
}

impl VectorCode for YmmCode {
    const BYTES: i32 = 32;
    const ALLOCATABLE: u8 = 13;
    const POOL_ENTRY: i32 = 32;

    fn setup(a: &mut CodeAssembler, pinned: &[(usize, u8)]) -> Result<(), Unsupported> {
        for &(p, reg) in pinned {
            a.vmovaps(
                YMM[reg as usize],
                ymmword_ptr(r8 + Self::POOL_ENTRY * p as i32),
            )?;
        }
        Ok(())
    }

    fn body(
        a: &mut CodeAssembler,
        n_inputs: usize,
        tr: &Traced,
        alloc: &Alloc,
        tail: bool,
    ) -> Result<(), Unsupported> {
        if !tail {
            prefetch::<Self>(a, n_inputs, tr)?;
        }
        for step in &alloc.steps {
            let (i, r) = match step {
                Step::Spill(g, slot) => {
                    a.vmovups(ymmword_ptr(spill_at::<Self>(*slot)), YMM[*g as usize])?;
                    continue;
                }
                Step::Do(i, r) => (*i, r),
            };
            let ins = tr.ins[i];
            let (vs, _) = operands(&ins);
            let fold = Self::folded(tr, &ins, r);
            let mut regs = [ymm0; 3];
            for s in 0..3 {
                if let Some(v) = vs[s].filter(|_| fold != Some(s)) {
                    regs[s] = Self::operand(a, tr, v, r.ops[s], s, tail)?;
                }
            }
            let mem = fold.and_then(|s| Self::memory(tr, vs[s]?, r.ops[s]));
            let d = YMM[r.d as usize];
            let [x, y, z] = regs;
            // The last source as the instruction reads it: from memory if folded.
            let src = |s: usize| match (fold, mem) {
                (Some(f), Some(m)) if f == s => Src::Mem(m),
                _ => Src::Reg(regs[s]),
            };
            match ins {
                Ins::Un(op, ..) => match (op, src(0)) {
                    (VUn::Copy, Src::Reg(x)) => a.vmovaps(d, x)?,
                    (VUn::Copy, Src::Mem(m)) => a.vmovups(d, ymmword_ptr(m))?,
                    (VUn::Sqrt, Src::Reg(x)) => a.vsqrtps(d, x)?,
                    (VUn::Sqrt, Src::Mem(m)) => a.vsqrtps(d, ymmword_ptr(m))?,
                    (VUn::Floor, Src::Reg(x)) => a.vroundps(d, x, 0x09)?,
                    (VUn::Floor, Src::Mem(m)) => a.vroundps(d, ymmword_ptr(m), 0x09)?,
                    (VUn::IToF, Src::Reg(x)) => a.vcvtdq2ps(d, x)?,
                    (VUn::IToF, Src::Mem(m)) => a.vcvtdq2ps(d, ymmword_ptr(m))?,
                },
                // A commutative operation reading its first operand from memory swaps them.
                Ins::Bin(op, ..) if fold == Some(0) => bin(a, op, d, y, src(0))?,
                Ins::Bin(op, ..) => bin(a, op, d, x, src(1))?,
                Ins::Fma(..) => match (r.tie, fold) {
                    (Tie::InPlace, Some(0)) => fma231(a, d, y, src(0))?,
                    (Tie::InPlace, _) => fma231(a, d, x, src(1))?,
                    (Tie::A, _) => fma213(a, d, y, src(2))?,
                    (Tie::B, _) => fma213(a, d, x, src(2))?,
                    (Tie::Copy, f) => {
                        a.vmovaps(d, z)?;
                        if f == Some(0) {
                            fma231(a, d, y, src(0))?
                        } else {
                            fma231(a, d, x, src(1))?
                        }
                    }
                },
                Ins::Shift(op, _, _, n) => {
                    let n = u32::from(n);
                    match op {
                        Shift::Left => a.vpslld(d, x, n)?,
                        Shift::Logical => a.vpsrld(d, x, n)?,
                        Shift::Arith => a.vpsrad(d, x, n)?,
                    }
                }
                Ins::CmpV(pred, ..) => match src(1) {
                    Src::Reg(y) => a.vcmpps(d, x, y, u32::from(pred))?,
                    Src::Mem(m) => a.vcmpps(d, x, ymmword_ptr(m), u32::from(pred))?,
                },
                // `vblendvps d, f, t, k` is `k ? t : f` (operands: k, t, f).
                Ins::BlendV(..) => match src(1) {
                    Src::Reg(y) => a.vblendvps(d, z, y, x)?,
                    Src::Mem(m) => a.vblendvps(d, z, ymmword_ptr(m), x)?,
                },
                Ins::MaskBin(..)
                | Ins::Cmp(..)
                | Ins::ICmpLt(..)
                | Ins::KAnd(..)
                | Ins::KOr(..)
                | Ins::KNot(..)
                | Ins::Blend(..)
                | Ins::MaskZ(..) => {
                    return Err(Unsupported::Encode(format!(
                        "{ins:?}: a mask register in AVX2 code"
                    )))
                }
            }
        }
        for (block, (vs, ls)) in tr.outputs.iter().zip(&alloc.outputs).enumerate() {
            for (o, (&v, &l)) in vs.iter().zip(ls).enumerate() {
                let y = Self::operand(a, tr, v, l, 0, tail)?;
                a.mov(r11, qword_ptr(rdx + 8 * (n_inputs + o) as i32))?;
                let at = ymmword_ptr(r11 + rax + Self::BYTES * block as i32);
                if tail {
                    let mask = YMM[SCRATCH[1] as usize];
                    a.vmovups(mask, ymmword_ptr(r9))?;
                    a.vmaskmovps(at, mask, y)?;
                } else {
                    a.vmovups(at, y)?;
                }
            }
        }
        Ok(())
    }
}

/// `d = x * y + d`.
fn fma231(
    a: &mut CodeAssembler,
    d: AsmRegisterYmm,
    x: AsmRegisterYmm,
    y: Src,
) -> Result<(), Unsupported> {
    match y {
        Src::Reg(y) => a.vfmadd231ps(d, x, y)?,
        Src::Mem(m) => a.vfmadd231ps(d, x, ymmword_ptr(m))?,
    }
    Ok(())
}

/// `d = x * d + z`.
fn fma213(
    a: &mut CodeAssembler,
    d: AsmRegisterYmm,
    x: AsmRegisterYmm,
    z: Src,
) -> Result<(), Unsupported> {
    match z {
        Src::Reg(z) => a.vfmadd213ps(d, x, z)?,
        Src::Mem(m) => a.vfmadd213ps(d, x, ymmword_ptr(m))?,
    }
    Ok(())
}

fn bin(
    a: &mut CodeAssembler,
    op: VBin,
    d: AsmRegisterYmm,
    x: AsmRegisterYmm,
    y: Src,
) -> Result<(), Unsupported> {
    macro_rules! with {
        ($y:expr) => {
            match op {
                VBin::Add => a.vaddps(d, x, $y)?,
                VBin::Sub => a.vsubps(d, x, $y)?,
                VBin::Mul => a.vmulps(d, x, $y)?,
                VBin::Div => a.vdivps(d, x, $y)?,
                VBin::Max => a.vmaxps(d, x, $y)?,
                VBin::Min => a.vminps(d, x, $y)?,
                VBin::And => a.vandps(d, x, $y)?,
                VBin::Or => a.vorps(d, x, $y)?,
                VBin::Xor => a.vxorps(d, x, $y)?,
                VBin::IAdd => a.vpaddd(d, x, $y)?,
                VBin::ISub => a.vpsubd(d, x, $y)?,
                VBin::IGt => a.vpcmpgtd(d, x, $y)?,
            }
        };
    }
    match y {
        Src::Reg(y) => with!(y),
        Src::Mem(m) => with!(ymmword_ptr(m)),
    }
    Ok(())
}
