//! The allocated program encoded by iced-x86 as one function: per row, the main loop over
//! [`BLOCKS`] vectors, then single vectors, then the masked tail.
use iced_x86::code_asm::registers::gpr32::{eax, r9d};
use iced_x86::code_asm::registers::gpr64::{r10, r11, r8, rax, rcx, rdi, rdx, rsi, rsp};
use iced_x86::code_asm::registers::k::*;
use iced_x86::code_asm::registers::zmm::*;
use iced_x86::code_asm::{
    byte_ptr, dword_ptr, qword_ptr, zmmword_ptr, AsmRegisterK, AsmRegisterZmm, CodeAssembler,
    IcedError,
};

use super::alloc::{Alloc, Loc, Step, Tie, Unsupported, SCRATCH, TAIL_MASK};
use super::trace::{operands, Def, Ins, Shift, Traced, VBin, VUn, V};

pub(super) const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14,
    zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27,
    zmm28, zmm29, zmm30, zmm31,
];
pub(super) const KREG: [AsmRegisterK; 8] = [k0, k1, k2, k3, k4, k5, k6, k7];

/// `z{k}`: `z` written under mask register `k` (1..=7).
pub(super) fn under(z: AsmRegisterZmm, k: u8) -> AsmRegisterZmm {
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

/// General-purpose registers of the generated function (System V arguments).
/// `rdi` rows left, `rsi` full vectors per row, `rdx` row pointers (inputs, then outputs),
/// `rcx` row strides in bytes (same order), `r8` constant pool, `r9` tail mask;
/// `rax` byte offset in the row, `r10` vectors left in the row, `r11` a pointer.
pub(super) struct Emitter {
    pub(super) a: CodeAssembler,
    pub(super) n_inputs: usize,
}

impl Emitter {
    /// Puts vector value `v` (at `l`, or an input/constant) in a register, using scratch
    /// register `s` if it is not in one already.
    fn operand(
        &mut self,
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
                self.a.vmovups(z, zmmword_ptr(rsp + 64 * slot as i32))?;
            }
            (None, Def::Const(p)) => {
                self.a.vbroadcastss(z, dword_ptr(r8 + 4 * p as i32))?;
            }
            (None, Def::Input { k, bcast, block }) => {
                self.a.mov(r11, qword_ptr(rdx + 8 * k as i32))?;
                let at = zmmword_ptr(r11 + rax + 64 * block as i32);
                if bcast {
                    self.a.vbroadcastss(z, dword_ptr(r11))?;
                } else if tail {
                    self.a.vmovups(z.k7().z(), at)?;
                } else {
                    self.a.vmovups(z, at)?;
                }
            }
            (None, Def::Computed) => unreachable!("a computed value is allocated when defined"),
        }
        Ok(z)
    }

    /// Prefetches, for each input read in full, the lines this body reads [`super::AHEAD`] rows further
    /// on: the gate rows of a recurrence step come from a projection that left the caches long
    /// ago, strided, and the hardware prefetchers do not follow them across pages.
    fn prefetch(&mut self, tr: &Traced) -> Result<(), Unsupported> {
        let n_ptrs = self.n_inputs + tr.outputs[0].len();
        let mut seen = vec![false; self.n_inputs * tr.outputs.len()];
        for d in &tr.defs {
            if let Def::Input {
                k,
                bcast: false,
                block,
            } = *d
            {
                if std::mem::replace(&mut seen[k * tr.outputs.len() + block], true) {
                    continue;
                }
                self.a.mov(r11, qword_ptr(rdx + 8 * (n_ptrs + k) as i32))?;
                self.a.prefetcht0(byte_ptr(r11 + rax + 64 * block as i32))?;
            }
        }
        Ok(())
    }

    /// One pass of the loop body over sixteen lanes (`tail`: the masked last vector of a row).
    fn body(&mut self, tr: &Traced, alloc: &Alloc, tail: bool) -> Result<(), Unsupported> {
        if !tail {
            self.prefetch(tr)?;
        }
        for step in &alloc.steps {
            let (i, r) = match step {
                Step::Spill(g, slot) => {
                    self.a
                        .vmovups(zmmword_ptr(rsp + 64 * *slot as i32), ZMM[*g as usize])?;
                    continue;
                }
                Step::Do(i, r) => (*i, r),
            };
            let ins = tr.ins[i];
            let (vs, _) = operands(&ins);
            let mut regs = [zmm0; 3];
            for s in 0..3 {
                if let Some(v) = vs[s] {
                    regs[s] = self.operand(tr, v, r.ops[s], s, tail)?;
                }
            }
            let d = ZMM[r.d as usize];
            let [x, y, z] = regs;
            let k = |j: usize| KREG[r.ks[j] as usize];
            let a = &mut self.a;
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
            }
        }
        for (block, (vs, ls)) in tr.outputs.iter().zip(&alloc.outputs).enumerate() {
            for (o, (&v, &l)) in vs.iter().zip(ls).enumerate() {
                let z = self.operand(tr, v, l, 0, tail)?;
                self.a
                    .mov(r11, qword_ptr(rdx + 8 * (self.n_inputs + o) as i32))?;
                let at = zmmword_ptr(r11 + rax + 64 * block as i32);
                if tail {
                    self.a.vmovups(at.k7(), z)?;
                } else {
                    self.a.vmovups(at, z)?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn bin(
    a: &mut CodeAssembler,
    op: VBin,
    d: AsmRegisterZmm,
    x: AsmRegisterZmm,
    y: AsmRegisterZmm,
) -> Result<(), IcedError> {
    match op {
        VBin::Add => a.vaddps(d, x, y),
        VBin::Sub => a.vsubps(d, x, y),
        VBin::Mul => a.vmulps(d, x, y),
        VBin::Div => a.vdivps(d, x, y),
        VBin::Max => a.vmaxps(d, x, y),
        VBin::Min => a.vminps(d, x, y),
        VBin::And => a.vpandd(d, x, y),
        VBin::Or => a.vpord(d, x, y),
        VBin::Xor => a.vpxord(d, x, y),
        VBin::IAdd => a.vpaddd(d, x, y),
        VBin::ISub => a.vpsubd(d, x, y),
    }
}

/// Vectors per iteration of the main loop (see `trace::trace`); the rest of a row runs one vector
/// at a time, the last partial one under the tail mask.
pub(super) const BLOCKS: usize = 2;

/// The machine code of a kernel: `fn(rows, full_vectors, row_ptrs, row_strides, pool, tail)`,
/// from the program traced for [`BLOCKS`] vectors (`wide`) and for one (`one`).
pub(super) fn assemble(
    n_inputs: usize,
    pinned: &[(usize, u8)],
    wide: (&Traced, &Alloc),
    one: (&Traced, &Alloc),
) -> Result<Vec<u8>, Unsupported> {
    let n_ptrs = n_inputs + one.0.outputs[0].len();
    let mut e = Emitter {
        a: CodeAssembler::new(64)?,
        n_inputs,
    };
    let frame = 64 * wide.1.spill_slots.max(one.1.spill_slots) as i32;
    let a = &mut e.a;
    a.kmovw(KREG[TAIL_MASK as usize], r9d)?;
    for &(p, reg) in pinned {
        a.vbroadcastss(ZMM[reg as usize], dword_ptr(r8 + 4 * p as i32))?;
    }
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
    a.xor(eax, eax)?;
    a.mov(r10, rsi)?;
    a.cmp(r10, BLOCKS as i32)?;
    a.jb(singles)?;
    a.set_label(&mut wide_loop)?;
    e.body(wide.0, wide.1, false)?;
    let a = &mut e.a;
    a.add(rax, 64 * BLOCKS as i32)?;
    a.sub(r10, BLOCKS as i32)?;
    a.cmp(r10, BLOCKS as i32)?;
    a.jae(wide_loop)?;
    a.set_label(&mut singles)?;
    a.test(r10, r10)?;
    a.jz(tail)?;
    a.set_label(&mut single_loop)?;
    e.body(one.0, one.1, false)?;
    let a = &mut e.a;
    a.add(rax, 64)?;
    a.dec(r10)?;
    a.jnz(single_loop)?;
    a.set_label(&mut tail)?;
    a.test(r9d, r9d)?;
    a.jz(next)?;
    e.body(one.0, one.1, true)?;
    let a = &mut e.a;
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
    Ok(e.a.assemble(0)?)
}
