//! Fused kernels as AVX-512 machine code with the values in registers.
//!
//! The tile programs of `avx512.rs` run each node of the expression as its own loop over a tile
//! in L1: every node loads its operands and stores its result, and on Zen 4 a `zmm` store takes
//! two cycles, so a gate kernel spends most of its time moving data through L1. Here the
//! expression is traced once through the same lane math ([`Lanes`], so results are
//! bit-identical to the other backends) into a straight-line program over virtual vector and
//! mask registers, which a linear scan assigns to `zmm0..zmm28` and `k1..k6` (spilling the value
//! used furthest ahead to the stack when the vectors run out), and iced-x86 encodes it as one
//! loop: per row, per sixteen lanes, load, compute, store. Inputs and constants take no
//! register: they are reloaded where used (`zmm29..31` are the scratch registers for that, and
//! for spilled values). A program that would need more than six masks at once is not built (the
//! caller falls back to the tile program).
use iced_x86::code_asm::registers::gpr32::{eax, r9d};
use iced_x86::code_asm::registers::gpr64::{r10, r11, r8, rax, rcx, rdi, rdx, rsi, rsp};
use iced_x86::code_asm::registers::k::*;
use iced_x86::code_asm::registers::zmm::*;
use iced_x86::code_asm::{
    byte_ptr, dword_ptr, qword_ptr, zmmword_ptr, AsmRegisterK, AsmRegisterZmm, CodeAssembler,
    IcedError,
};
use rustc_hash::FxHashMap;
use trellis_ir::lanes::{Cmp, Lanes};
use trellis_ir::{Binary, Scalar};

use super::spec::{live_nodes, KernelSpec, RawOperands};

/// A vector value of the traced program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct V(u32);
/// A mask value of the traced program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct K(u32);

/// Where a vector value comes from.
#[derive(Clone, Copy, Debug)]
enum Def {
    /// Input `k` at the current lanes, or the `block`-th sixteen after them (`bcast`: its one
    /// value for the row).
    Input { k: usize, bcast: bool, block: usize },
    /// Constant pool entry.
    Const(usize),
    /// Computed by an instruction.
    Computed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VBin {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    And,
    Or,
    Xor,
    IAdd,
    ISub,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VUn {
    Copy,
    Sqrt,
    Floor,
    IToF,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shift {
    Left,
    Logical,
    Arith,
}

/// One instruction of the traced program (SSA: each destination is defined once).
#[derive(Clone, Copy, Debug)]
enum Ins {
    Un(VUn, V, V),
    Bin(VBin, V, V, V),
    /// `d = k ? op(a, b) : src`.
    MaskBin(VBin, V, V, K, V, V),
    /// `d = a * b + c`, one rounding.
    Fma(V, V, V, V),
    Shift(Shift, V, V, u8),
    /// `d = a <pred> b` (a `vcmpps` predicate).
    Cmp(u8, K, V, V),
    /// `d = a < b` as signed integers.
    ICmpLt(K, V, V),
    KAnd(K, K, K),
    KOr(K, K, K),
    KNot(K, K),
    /// `d = k ? t : f`.
    Blend(V, K, V, V),
    /// `d = k ? a : 0`.
    MaskZ(V, K, V),
}

/// The constants of a kernel's code (bit patterns, broadcast from memory where used).
#[derive(Default)]
struct Pool {
    bits: Vec<u32>,
    index: FxHashMap<u32, usize>,
}

/// The lane math traced into [`Ins`]; implements [`Lanes`] so every function is written once.
struct Tracer<'p> {
    defs: Vec<Def>,
    n_masks: u32,
    ins: Vec<Ins>,
    pool: &'p mut Pool,
    /// The value of each constant used so far.
    consts: FxHashMap<u32, V>,
}

impl Tracer<'_> {
    fn value(&mut self, d: Def) -> V {
        self.defs.push(d);
        V(self.defs.len() as u32 - 1)
    }
    fn computed(&mut self) -> V {
        self.value(Def::Computed)
    }
    fn mask(&mut self) -> K {
        self.n_masks += 1;
        K(self.n_masks - 1)
    }
    fn bits(&mut self, b: u32) -> V {
        if let Some(&v) = self.consts.get(&b) {
            return v;
        }
        let pool = &mut *self.pool;
        let p = *pool.index.entry(b).or_insert_with(|| {
            pool.bits.push(b);
            pool.bits.len() - 1
        });
        let v = self.value(Def::Const(p));
        self.consts.insert(b, v);
        v
    }
    fn bin(&mut self, op: VBin, a: V, b: V) -> V {
        let d = self.computed();
        self.ins.push(Ins::Bin(op, d, a, b));
        d
    }
    fn un(&mut self, op: VUn, a: V) -> V {
        let d = self.computed();
        self.ins.push(Ins::Un(op, d, a));
        d
    }
    fn mask_bin(&mut self, op: VBin, src: V, k: K, a: V, b: V) -> V {
        let d = self.computed();
        self.ins.push(Ins::MaskBin(op, d, src, k, a, b));
        d
    }
    fn cmp_pred(&mut self, pred: u8, a: V, b: V) -> K {
        let d = self.mask();
        self.ins.push(Ins::Cmp(pred, d, a, b));
        d
    }
    fn shift(&mut self, op: Shift, a: V, n: u8) -> V {
        let d = self.computed();
        self.ins.push(Ins::Shift(op, d, a, n));
        d
    }
}

/// `vcmpps` predicates (the `_CMP_*` constants the tile programs use).
const EQ_OQ: u8 = 0x00;
const UNORD_Q: u8 = 0x03;
const NEQ_UQ: u8 = 0x04;
const GE_OQ: u8 = 0x1d;
const GT_OQ: u8 = 0x1e;
const LT_OQ: u8 = 0x11;
const LE_OQ: u8 = 0x12;

/// Each method is the instruction (sequence) `Zmm`'s method compiles to, so the two backends
/// agree bit for bit.
impl Lanes for Tracer<'_> {
    type F = V;
    type I = V;
    type M = K;

    fn f(&mut self, c: f32) -> V {
        self.bits(c.to_bits())
    }
    fn i(&mut self, c: i32) -> V {
        self.bits(c as u32)
    }
    fn f_to_bits(&mut self, x: V) -> V {
        x
    }
    fn bits_to_f(&mut self, x: V) -> V {
        x
    }
    fn add(&mut self, a: V, b: V) -> V {
        self.bin(VBin::Add, a, b)
    }
    fn sub(&mut self, a: V, b: V) -> V {
        self.bin(VBin::Sub, a, b)
    }
    fn mul(&mut self, a: V, b: V) -> V {
        self.bin(VBin::Mul, a, b)
    }
    fn div(&mut self, a: V, b: V) -> V {
        self.bin(VBin::Div, a, b)
    }
    fn fma(&mut self, a: V, b: V, c: V) -> V {
        let d = self.computed();
        self.ins.push(Ins::Fma(d, a, b, c));
        d
    }
    fn neg(&mut self, x: V) -> V {
        let s = self.bits(0x8000_0000);
        self.bin(VBin::Xor, x, s)
    }
    fn abs(&mut self, x: V) -> V {
        let m = self.bits(0x7fff_ffff);
        self.bin(VBin::And, x, m)
    }
    fn sqrt(&mut self, x: V) -> V {
        self.un(VUn::Sqrt, x)
    }
    fn floor(&mut self, x: V) -> V {
        self.un(VUn::Floor, x)
    }
    fn max(&mut self, a: V, b: V) -> V {
        let m = self.bin(VBin::Max, a, b);
        let eq = self.cmp_pred(EQ_OQ, a, b);
        let m = self.mask_bin(VBin::And, m, eq, a, b);
        let un = self.cmp_pred(UNORD_Q, a, b);
        self.mask_bin(VBin::Add, m, un, a, b)
    }
    fn min(&mut self, a: V, b: V) -> V {
        let m = self.bin(VBin::Min, a, b);
        let eq = self.cmp_pred(EQ_OQ, a, b);
        let m = self.mask_bin(VBin::Or, m, eq, a, b);
        let un = self.cmp_pred(UNORD_Q, a, b);
        self.mask_bin(VBin::Add, m, un, a, b)
    }
    fn cmp(&mut self, cc: Cmp, a: V, b: V) -> K {
        let pred = match cc {
            Cmp::Lt => LT_OQ,
            Cmp::Le => LE_OQ,
            Cmp::Gt => GT_OQ,
            Cmp::Ge => GE_OQ,
            Cmp::Eq => EQ_OQ,
            Cmp::Ne => NEQ_UQ,
        };
        self.cmp_pred(pred, a, b)
    }
    fn ilt(&mut self, a: V, b: V) -> K {
        let d = self.mask();
        self.ins.push(Ins::ICmpLt(d, a, b));
        d
    }
    fn mask_and(&mut self, a: K, b: K) -> K {
        let d = self.mask();
        self.ins.push(Ins::KAnd(d, a, b));
        d
    }
    fn mask_or(&mut self, a: K, b: K) -> K {
        let d = self.mask();
        self.ins.push(Ins::KOr(d, a, b));
        d
    }
    fn mask_not(&mut self, a: K) -> K {
        let d = self.mask();
        self.ins.push(Ins::KNot(d, a));
        d
    }
    fn sel(&mut self, m: K, a: V, b: V) -> V {
        let d = self.computed();
        self.ins.push(Ins::Blend(d, m, a, b));
        d
    }
    fn flag(&mut self, m: K) -> V {
        let one = self.f(1.0);
        let d = self.computed();
        self.ins.push(Ins::MaskZ(d, m, one));
        d
    }
    fn iadd(&mut self, a: V, b: V) -> V {
        self.bin(VBin::IAdd, a, b)
    }
    fn isub(&mut self, a: V, b: V) -> V {
        self.bin(VBin::ISub, a, b)
    }
    fn iand(&mut self, a: V, b: V) -> V {
        self.bin(VBin::And, a, b)
    }
    fn ior(&mut self, a: V, b: V) -> V {
        self.bin(VBin::Or, a, b)
    }
    fn shl(&mut self, a: V, n: u8) -> V {
        self.shift(Shift::Left, a, n)
    }
    fn ushr(&mut self, a: V, n: u8) -> V {
        self.shift(Shift::Logical, a, n)
    }
    fn sshr(&mut self, a: V, n: u8) -> V {
        self.shift(Shift::Arith, a, n)
    }
    fn i_to_f(&mut self, a: V) -> V {
        self.un(VUn::IToF, a)
    }
}

/// The expression of a spec traced into instructions for `blocks` consecutive vectors of
/// sixteen lanes; `outputs[b][o]` is output `o` of block `b`.
struct Traced {
    defs: Vec<Def>,
    n_masks: u32,
    ins: Vec<Ins>,
    outputs: Vec<Vec<V>>,
}

/// Traces the live nodes of `spec` the way the tile program evaluates them (same lane calls,
/// in the same cases), once per block, and interleaves the blocks instruction by instruction:
/// one vector's expression is a long dependency chain (a polynomial, a division, the next
/// polynomial), and independent neighbours let the core overlap the chains.
fn trace(spec: &KernelSpec, blocks: usize, pool: &mut Pool) -> Traced {
    let e = &spec.expr;
    let live = live_nodes(e);
    let mut t = Tracer {
        defs: Vec::new(),
        n_masks: 0,
        ins: Vec::new(),
        pool,
        consts: FxHashMap::default(),
    };
    let mut outputs = Vec::with_capacity(blocks);
    let mut ranges = Vec::with_capacity(blocks);
    for block in 0..blocks {
        let start = t.ins.len();
        let mut val: Vec<V> = Vec::with_capacity(e.nodes.len());
        for (i, node) in e.nodes.iter().enumerate() {
            if !live[i] {
                val.push(V(u32::MAX));
                continue;
            }
            let v = |k: u32| val[k as usize];
            let x = match *node {
                Scalar::Input(k) => t.value(Def::Input {
                    k: k as usize,
                    bcast: spec.col_broadcast[k as usize],
                    block,
                }),
                Scalar::Const(c) => t.f(c as f32),
                Scalar::Unary(f, a) => f.lanes(&mut t, v(a)),
                Scalar::Binary(Binary::Pow, a, b) if e.small_int(b).is_some() => {
                    t.powi(v(a), e.small_int(b).expect("checked"))
                }
                Scalar::Binary(f, a, b) => f.lanes(&mut t, v(a), v(b)),
                Scalar::Select(c, a, b) => t.select_nonzero(v(c), v(a), v(b)),
                Scalar::Prim(p, a) => {
                    let args: Vec<V> = a[..p.arity()].iter().map(|&k| v(k)).collect();
                    p.lanes(&mut t, &args)
                }
            };
            val.push(x);
        }
        // An output that is an input is copied into a register first: outputs are stored
        // after the body, and by then an in-place output may have overwritten the input.
        let outs: Vec<V> = e
            .outputs
            .iter()
            .map(|&o| match t.defs[val[o as usize].0 as usize] {
                Def::Input { .. } => t.un(VUn::Copy, val[o as usize]),
                _ => val[o as usize],
            })
            .collect();
        outputs.push(outs);
        ranges.push(start..t.ins.len());
    }
    // Every block traced the same calls, so the ranges have one length.
    let len = ranges[0].len();
    let mut interleaved = Vec::with_capacity(t.ins.len());
    for j in 0..len {
        for r in &ranges {
            interleaved.push(t.ins[r.start + j]);
        }
    }
    t.ins = interleaved;
    prune(&mut t, outputs.iter().flatten());
    Traced {
        defs: t.defs,
        n_masks: t.n_masks,
        ins: t.ins,
        outputs,
    }
}

/// Drops instructions no output depends on (a lane function may compute a value its caller
/// ignores), so that every value left is used.
fn prune<'a>(t: &mut Tracer, outputs: impl Iterator<Item = &'a V>) {
    let mut live_v = vec![false; t.defs.len()];
    let mut live_k = vec![false; t.n_masks as usize];
    for v in outputs {
        live_v[v.0 as usize] = true;
    }
    let mut keep = vec![false; t.ins.len()];
    for (i, ins) in t.ins.iter().enumerate().rev() {
        let (dv, dk) = dest(ins);
        if !(dv.is_some_and(|v| live_v[v.0 as usize]) || dk.is_some_and(|k| live_k[k.0 as usize])) {
            continue;
        }
        keep[i] = true;
        let (vs, ks) = operands(ins);
        for v in vs.into_iter().flatten() {
            live_v[v.0 as usize] = true;
        }
        for k in ks.into_iter().flatten() {
            live_k[k.0 as usize] = true;
        }
    }
    let mut i = 0;
    t.ins.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Vector registers the allocator hands out; the last three are scratch.
const ALLOCATABLE: u8 = 29;
const SCRATCH: [u8; 3] = [29, 30, 31];
/// Mask registers the allocator hands out (`k7` holds the row's tail mask).
const MASKS: [u8; 6] = [1, 2, 3, 4, 5, 6];
const TAIL_MASK: u8 = 7;
/// Rows ahead to prefetch inputs from.
const AHEAD: usize = 4;

const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14,
    zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27,
    zmm28, zmm29, zmm30, zmm31,
];
const KREG: [AsmRegisterK; 8] = [k0, k1, k2, k3, k4, k5, k6, k7];

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

/// Why a spec gets no machine code (the tile program runs it instead).
#[derive(Debug)]
pub(crate) enum Unsupported {
    /// More masks live at once than `k1..k6`.
    Masks,
    /// Too few vector registers left to spill into.
    Registers,
    /// iced-x86 refused an instruction (a bug here, reported rather than run).
    Encode(String),
}

impl Unsupported {
    /// True for the limits a kernel may meet; an encoding error is a bug here.
    pub(crate) fn is_expected(&self) -> bool {
        match self {
            Unsupported::Masks | Unsupported::Registers => true,
            Unsupported::Encode(why) => why.is_empty(),
        }
    }
}

impl From<IcedError> for Unsupported {
    fn from(e: IcedError) -> Self {
        Unsupported::Encode(e.to_string())
    }
}

/// Where an allocated vector value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Reg(u8),
    Spilled(u32),
}

/// The register assignment of a traced program, computed once and replayed for the full and the
/// masked (tail) loop body, which differ only in how inputs are loaded and outputs stored.
#[derive(Clone, Debug)]
enum Step {
    /// Store register `r` to spill slot `s`.
    Spill(u8, u32),
    /// Instruction `i` with its operands' and destination's locations resolved.
    Do(usize, Resolved),
}

/// Register locations of one instruction: `d`, `k`-style masks, and up to three vector operands
/// (`None` for an input or constant, loaded into a scratch register).
#[derive(Clone, Debug, Default)]
struct Resolved {
    d: u8,
    dk: u8,
    ops: [Option<Loc>; 3],
    ks: [u8; 2],
    /// How the tied forms are emitted (see [`Alloc::tie`]).
    tie: Tie,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Tie {
    /// The destination register already holds the tied operand.
    #[default]
    InPlace,
    /// Copy the tied operand into the destination first.
    Copy,
    /// FMA only: the destination holds `a` (emit the 213 form, `d = b * d + c`).
    A,
    /// FMA only: the destination holds `b` (213 form with `a`).
    B,
}

fn operands(i: &Ins) -> ([Option<V>; 3], [Option<K>; 2]) {
    match *i {
        Ins::Un(_, _, a) | Ins::Shift(_, _, a, _) => ([Some(a), None, None], [None; 2]),
        Ins::Bin(_, _, a, b) => ([Some(a), Some(b), None], [None; 2]),
        Ins::MaskBin(_, _, s, k, a, b) => ([Some(s), Some(a), Some(b)], [Some(k), None]),
        Ins::Fma(_, a, b, c) => ([Some(a), Some(b), Some(c)], [None; 2]),
        Ins::Cmp(_, _, a, b) | Ins::ICmpLt(_, a, b) => ([Some(a), Some(b), None], [None; 2]),
        Ins::KAnd(_, a, b) | Ins::KOr(_, a, b) => ([None; 3], [Some(a), Some(b)]),
        Ins::KNot(_, a) => ([None; 3], [Some(a), None]),
        Ins::Blend(_, k, t, f) => ([Some(t), Some(f), None], [Some(k), None]),
        Ins::MaskZ(_, k, a) => ([Some(a), None, None], [Some(k), None]),
    }
}

fn dest(i: &Ins) -> (Option<V>, Option<K>) {
    match *i {
        Ins::Un(_, d, _)
        | Ins::Bin(_, d, _, _)
        | Ins::MaskBin(_, d, ..)
        | Ins::Fma(d, ..)
        | Ins::Shift(_, d, ..)
        | Ins::Blend(d, ..)
        | Ins::MaskZ(d, ..) => (Some(d), None),
        Ins::Cmp(_, d, ..)
        | Ins::ICmpLt(d, ..)
        | Ins::KAnd(d, ..)
        | Ins::KOr(d, ..)
        | Ins::KNot(d, _) => (None, Some(d)),
    }
}

/// Linear-scan allocation of a traced program.
struct Alloc {
    steps: Vec<Step>,
    /// Each block's outputs' locations at the end of the body (`None`: a constant).
    outputs: Vec<Vec<Option<Loc>>>,
    spill_slots: u32,
    /// The most values in registers at once.
    peak: usize,
}

/// Allocates `tr`'s values to `zmm0 .. zmm{regs - 1}`; `pinned` constants (pool index,
/// register) live in registers above those for the whole call.
fn allocate(tr: &Traced, regs: u8, pinned: &[(usize, u8)]) -> Result<Alloc, Unsupported> {
    let t = tr;
    let n = t.ins.len();
    let end = n; // outputs are read after the last instruction
                 // Every use position of each computed value, in order.
    let mut uses: Vec<Vec<usize>> = vec![Vec::new(); t.defs.len()];
    let mut kuse_last = vec![0usize; t.n_masks as usize];
    for (i, ins) in t.ins.iter().enumerate() {
        let (vs, ks) = operands(ins);
        for v in vs.into_iter().flatten() {
            uses[v.0 as usize].push(i);
        }
        for k in ks.into_iter().flatten() {
            kuse_last[k.0 as usize] = i;
        }
    }
    for v in tr.outputs.iter().flatten() {
        uses[v.0 as usize].push(end);
    }
    let computed = |v: V| matches!(t.defs[v.0 as usize], Def::Computed);
    let last = |v: V| uses[v.0 as usize].last().copied().unwrap_or(0);
    let next_use = |v: V, after: usize| {
        let u = &uses[v.0 as usize];
        u[u.partition_point(|&p| p <= after)..]
            .first()
            .copied()
            .unwrap_or(usize::MAX)
    };

    let mut loc: Vec<Option<Loc>> = t
        .defs
        .iter()
        .map(|d| match d {
            Def::Const(p) => pinned
                .iter()
                .find(|(q, _)| q == p)
                .map(|&(_, reg)| Loc::Reg(reg)),
            _ => None,
        })
        .collect();
    let mut holder: Vec<Option<V>> = vec![None; regs as usize];
    let mut peak = 0;
    let mut kreg = vec![0u8; t.n_masks as usize];
    let mut kfree: Vec<u8> = MASKS.iter().rev().copied().collect();
    let mut steps = Vec::with_capacity(n + n / 4);
    let mut spill_slots = 0u32;

    for (i, ins) in t.ins.iter().enumerate() {
        let (vs, ks) = operands(ins);
        let (dv, dk) = dest(ins);
        let mut r = Resolved::default();
        for (slot, v) in vs.iter().enumerate() {
            r.ops[slot] = v.and_then(|v| loc[v.0 as usize]);
        }
        for (slot, k) in ks.iter().enumerate() {
            if let Some(k) = k {
                r.ks[slot] = kreg[k.0 as usize];
            }
        }
        // Masks whose last use is here free their registers before the destination is taken.
        for k in ks.into_iter().flatten() {
            if kuse_last[k.0 as usize] == i && !kfree.contains(&kreg[k.0 as usize]) {
                kfree.push(kreg[k.0 as usize]);
            }
        }
        if let Some(dk) = dk {
            let reg = kfree.pop().ok_or(Unsupported::Masks)?;
            kreg[dk.0 as usize] = reg;
            r.dk = reg;
        }
        let Some(dv) = dv else {
            steps.push(Step::Do(i, r));
            continue;
        };
        // A value dying here, in a register.
        let dies_in_reg = |v: Option<V>, loc: &Vec<Option<Loc>>| match v {
            Some(v) if computed(v) && last(v) == i => match loc[v.0 as usize] {
                Some(Loc::Reg(reg)) => Some(reg),
                _ => None,
            },
            _ => None,
        };
        // Tied forms: the destination starts as one operand's value.
        let tied: Option<(u8, Tie)> = match *ins {
            Ins::MaskBin(..) => dies_in_reg(vs[0], &loc).map(|reg| (reg, Tie::InPlace)),
            Ins::Fma(..) => dies_in_reg(vs[2], &loc)
                .map(|reg| (reg, Tie::InPlace))
                .or_else(|| dies_in_reg(vs[0], &loc).map(|reg| (reg, Tie::A)))
                .or_else(|| dies_in_reg(vs[1], &loc).map(|reg| (reg, Tie::B))),
            _ => None,
        };
        let is_tied_op = matches!(ins, Ins::MaskBin(..) | Ins::Fma(..));
        let operand_regs: Vec<u8> = r
            .ops
            .iter()
            .filter_map(|l| match l {
                Some(Loc::Reg(reg)) => Some(*reg),
                _ => None,
            })
            .collect();
        let free_dying = |holder: &mut Vec<Option<V>>, loc: &Vec<Option<Loc>>| {
            for v in vs.iter().flatten() {
                if computed(*v) && last(*v) == i {
                    if let Some(Loc::Reg(reg)) = loc[v.0 as usize] {
                        holder[reg as usize] = None;
                    }
                }
            }
        };
        let reg = if let Some((reg, tie)) = tied {
            free_dying(&mut holder, &loc);
            r.tie = tie;
            reg
        } else {
            // A tied form copying its operand first must not take an operand's register; other
            // instructions read every operand before writing, so they may.
            if !is_tied_op {
                free_dying(&mut holder, &loc);
            }
            let reg = match (0..regs).find(|&g| holder[g as usize].is_none()) {
                Some(g) => g,
                None => {
                    // Spill the value used furthest ahead (never an operand of this instruction).
                    let (g, victim) = (0..regs)
                        .filter(|g| !operand_regs.contains(g))
                        .map(|g| (g, holder[g as usize].expect("all taken")))
                        .max_by_key(|&(_, v)| next_use(v, i))
                        .ok_or(Unsupported::Registers)?;
                    steps.push(Step::Spill(g, spill_slots));
                    loc[victim.0 as usize] = Some(Loc::Spilled(spill_slots));
                    spill_slots += 1;
                    holder[g as usize] = None;
                    g
                }
            };
            if is_tied_op {
                free_dying(&mut holder, &loc);
                r.tie = Tie::Copy;
            }
            reg
        };
        holder[reg as usize] = Some(dv);
        peak = peak.max(holder.iter().filter(|h| h.is_some()).count());
        loc[dv.0 as usize] = Some(Loc::Reg(reg));
        r.d = reg;
        steps.push(Step::Do(i, r));
    }
    let outputs = tr
        .outputs
        .iter()
        .map(|block| block.iter().map(|v| loc[v.0 as usize]).collect())
        .collect();
    Ok(Alloc {
        steps,
        outputs,
        spill_slots,
        peak,
    })
}

/// General-purpose registers of the generated function (System V arguments).
/// `rdi` rows left, `rsi` full vectors per row, `rdx` row pointers (inputs, then outputs),
/// `rcx` row strides in bytes (same order), `r8` constant pool, `r9` tail mask;
/// `rax` byte offset in the row, `r10` vectors left in the row, `r11` a pointer.
struct Emitter {
    a: CodeAssembler,
    n_inputs: usize,
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

    /// Prefetches, for each input read in full, the lines this body reads [`AHEAD`] rows further
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

fn bin(
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

/// Vectors per iteration of the main loop (see [`trace`]); the rest of a row runs one vector
/// at a time, the last partial one under the tail mask.
const BLOCKS: usize = 2;

/// The machine code of a kernel: `fn(rows, full_vectors, row_ptrs, row_strides, pool, tail)`,
/// from the program traced for [`BLOCKS`] vectors (`wide`) and for one (`one`).
fn assemble(
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

/// The constants to keep in registers for the whole call, most used first, in the registers
/// the program's values leave free (`peak` at most in use at once, two spare): a polynomial
/// reads a constant per step, and reloading each one would double the instructions.
fn pin_constants(tr: &Traced, peak: usize) -> Vec<(usize, u8)> {
    let room = (ALLOCATABLE as usize).saturating_sub(peak + 2);
    let mut count: FxHashMap<usize, usize> = FxHashMap::default();
    for ins in &tr.ins {
        for v in operands(ins).0.into_iter().flatten() {
            if let Def::Const(p) = tr.defs[v.0 as usize] {
                *count.entry(p).or_default() += 1;
            }
        }
    }
    let mut by_use: Vec<(usize, usize)> = count.into_iter().collect();
    by_use.sort_by_key(|&(p, n)| (std::cmp::Reverse(n), p));
    by_use
        .into_iter()
        .take(room)
        .enumerate()
        .map(|(j, (p, _))| (p, ALLOCATABLE - 1 - j as u8))
        .collect()
}

/// A kernel's machine code, its constant pool, and how it addresses its operands.
pub(crate) struct AsmKernel {
    code: super::exec_mem::ExecMem,
    pool: Vec<u32>,
    col_broadcast: Vec<bool>,
    n_outputs: usize,
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
            n_outputs: spec.expr.outputs.len(),
            body_len,
        })
    }

    /// Runs the kernel over a `rows x cols` grid, with the raw-pointer contract of
    /// [`crate::Kernel::run_raw`].
    ///
    /// # Safety
    /// That contract, and the host has AVX-512F and FMA.
    pub(crate) unsafe fn run(
        &self,
        rows: usize,
        cols: usize,
        inputs: *const *const f32,
        in_row_strides: *const usize,
        outputs: *const *mut f32,
        out_row_strides: *const usize,
    ) {
        if rows == 0 || cols == 0 {
            return;
        }
        let n_in = self.col_broadcast.len();
        // SAFETY: the contract gives `n_in` input and `n_outputs` output entries.
        let raw = unsafe {
            RawOperands::new(
                inputs,
                in_row_strides,
                outputs,
                out_row_strides,
                n_in,
                self.n_outputs,
            )
        };
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
    use trellis_ir::{ScalarFn, Unary};

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
