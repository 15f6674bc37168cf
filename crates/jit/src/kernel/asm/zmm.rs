//! The loop body as AVX-512 code: sixteen lanes in `zmm` registers, masks in `k` registers,
//! the row's tail under `k7`.
use iced_x86::code_asm::registers::gpr32::r9d;
use iced_x86::code_asm::registers::gpr64::{r11, r8, rax, rdx};
use iced_x86::code_asm::registers::k::*;
use iced_x86::code_asm::registers::zmm::*;
use iced_x86::code_asm::{
    dword_ptr, qword_ptr, zmmword_ptr, AsmRegisterK, AsmRegisterZmm, CodeAssembler,
};

use super::alloc::{Alloc, Loc, Step, Tie, Unsupported};
use super::emit::{prefetch, spill_at, VectorCode};
use super::trace::{operands, Def, Ins, Shift, Traced, VBin, VUn, V};

const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14,
    zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27,
    zmm28, zmm29, zmm30, zmm31,
];
const KREG: [AsmRegisterK; 8] = [k0, k1, k2, k3, k4, k5, k6, k7];
/// Registers for operands that are not in one (inputs, constants, spilled values).
const SCRATCH: [u8; 3] = [29, 30, 31];
/// The mask register holding the row's tail mask.
const TAIL_MASK: u8 = 7;

/// `z{k}`: `z` written under mask register `k` (1..=7).
fn under(z: AsmRegisterZmm, k: u8) -> AsmRegisterZmm {
    match k {
        1 => z.k1(),
        2 => z.k2(),
        3 => z.k3(),
        4 => z.k4(),
        5 => z.k5(),
        6 => z.k6(),
        _ => z.k7(),
    }
}

/// AVX-512F code; `r9` holds the tail's lane bits.
pub(super) struct ZmmCode;

impl ZmmCode {
    /// Puts vector value `v` (at `l`, or an input/constant) in a register, using scratch
    /// register `s` if it is not in one already.
    fn operand(
        a: &mut CodeAssembler,
        tr: &Traced,
        v: V,
        l: Option<Loc>,
        s: usize,
        tail: bool,
    ) -> Result<AsmRegisterZmm, Unsupported> {
        let z = ZMM[SCRATCH[s] as usize];
        match (l, tr.defs[v.0 as usize]) {
            (Some(Loc::Reg(r)), _) => return Ok(ZMM[r as usize]),
            (Some(Loc::Spilled(slot)), _) => {
                a.vmovups(z, zmmword_ptr(spill_at::<Self>(slot)))?;
            }
            (None, Def::Const(p)) => {
                a.vbroadcastss(z, dword_ptr(r8 + Self::POOL_ENTRY * p as i32))?;
            }
            (None, Def::Input { k, bcast, block }) => {
                a.mov(r11, qword_ptr(rdx + 8 * k as i32))?;
                let at = zmmword_ptr(r11 + rax + Self::BYTES * block as i32);
                if bcast {
                    a.vbroadcastss(z, dword_ptr(r11))?;
                } else if tail {
                    a.vmovups(z.k7().z(), at)?;
                } else {
                    a.vmovups(z, at)?;
                }
            }
            (None, Def::Computed) => unreachable!("a computed value is allocated when defined"),
        }
        Ok(z)
    }
}

impl VectorCode for ZmmCode {
    const BYTES: i32 = 64;
    const ALLOCATABLE: u8 = 29;
    const POOL_ENTRY: i32 = 4;

    fn setup(a: &mut CodeAssembler, pinned: &[(usize, u8)]) -> Result<(), Unsupported> {
        a.kmovw(KREG[TAIL_MASK as usize], r9d)?;
        for &(p, reg) in pinned {
            a.vbroadcastss(
                ZMM[reg as usize],
                dword_ptr(r8 + Self::POOL_ENTRY * p as i32),
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
                    a.vmovups(zmmword_ptr(spill_at::<Self>(*slot)), ZMM[*g as usize])?;
                    continue;
                }
                Step::Do(i, r) => (*i, r),
            };
            let ins = tr.ins[i];
            let (vs, _) = operands(&ins);
            let mut regs = [zmm0; 3];
            for s in 0..3 {
                if let Some(v) = vs[s] {
                    regs[s] = Self::operand(a, tr, v, r.ops[s], s, tail)?;
                }
            }
            let d = ZMM[r.d as usize];
            let [x, y, z] = regs;
            let k = |j: usize| KREG[r.ks[j] as usize];
            match ins {
                Ins::Un(op, ..) => match op {
                    VUn::Copy => a.vmovaps(d, x)?,
                    VUn::Sqrt => a.vsqrtps(d, x)?,
                    VUn::Floor => a.vrndscaleps(d, x, 0x09)?,
                    VUn::IToF => a.vcvtdq2ps(d, x)?,
                },
                Ins::Bin(op, ..) => bin(a, op, d, x, y)?,
                Ins::MaskBin(op, ..) => {
                    if r.tie == Tie::Copy && d != x {
                        a.vmovaps(d, x)?;
                    }
                    bin(a, op, under(d, r.ks[0]), y, z)?;
                }
                Ins::Fma(..) => match r.tie {
                    Tie::InPlace => a.vfmadd231ps(d, x, y)?,
                    Tie::A => a.vfmadd213ps(d, y, z)?,
                    Tie::B => a.vfmadd213ps(d, x, z)?,
                    Tie::Copy => {
                        a.vmovaps(d, z)?;
                        a.vfmadd231ps(d, x, y)?;
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
                Ins::Cmp(pred, ..) => a.vcmpps(KREG[r.dk as usize], x, y, u32::from(pred))?,
                Ins::ICmpLt(..) => a.vpcmpd(KREG[r.dk as usize], x, y, 1u32)?,
                Ins::KAnd(..) => a.kandw(KREG[r.dk as usize], k(0), k(1))?,
                Ins::KOr(..) => a.korw(KREG[r.dk as usize], k(0), k(1))?,
                Ins::KNot(..) => a.knotw(KREG[r.dk as usize], k(0))?,
                // `vblendmps d{k}, f, t` is `k ? t : f`.
                Ins::Blend(..) => a.vblendmps(under(d, r.ks[0]), y, x)?,
                Ins::MaskZ(..) => a.vmovaps(under(d, r.ks[0]).z(), x)?,
                Ins::CmpV(..) | Ins::BlendV(..) => {
                    return Err(Unsupported::Encode(format!("{ins:?} in AVX-512 code")))
                }
            }
        }
        for (block, (vs, ls)) in tr.outputs.iter().zip(&alloc.outputs).enumerate() {
            for (o, (&v, &l)) in vs.iter().zip(ls).enumerate() {
                let z = Self::operand(a, tr, v, l, 0, tail)?;
                a.mov(r11, qword_ptr(rdx + 8 * (n_inputs + o) as i32))?;
                let at = zmmword_ptr(r11 + rax + Self::BYTES * block as i32);
                if tail {
                    a.vmovups(at.k7(), z)?;
                } else {
                    a.vmovups(at, z)?;
                }
            }
        }
        Ok(())
    }
}

fn bin(
    a: &mut CodeAssembler,
    op: VBin,
    d: AsmRegisterZmm,
    x: AsmRegisterZmm,
    y: AsmRegisterZmm,
) -> Result<(), Unsupported> {
    match op {
        VBin::Add => a.vaddps(d, x, y)?,
        VBin::Sub => a.vsubps(d, x, y)?,
        VBin::Mul => a.vmulps(d, x, y)?,
        VBin::Div => a.vdivps(d, x, y)?,
        VBin::Max => a.vmaxps(d, x, y)?,
        VBin::Min => a.vminps(d, x, y)?,
        VBin::And => a.vpandd(d, x, y)?,
        VBin::Or => a.vpord(d, x, y)?,
        VBin::Xor => a.vpxord(d, x, y)?,
        VBin::IAdd => a.vpaddd(d, x, y)?,
        VBin::ISub => a.vpsubd(d, x, y)?,
        // Integer comparisons produce mask registers here (`ICmpLt`).
        VBin::IGt => return Err(Unsupported::Encode("IGt in AVX-512 code".into())),
    }
    Ok(())
}
