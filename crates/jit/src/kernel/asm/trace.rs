//! The expression traced through the lane math into a straight-line program over virtual
//! vector and mask registers ([`Ins`]), one copy per block of sixteen lanes, interleaved.
use rustc_hash::FxHashMap;
use trellis_ir::lanes::{Cmp, Lanes};
use trellis_ir::{Binary, Scalar};

use super::super::spec::{live_nodes, KernelSpec};

/// A vector value of the traced program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct V(pub(super) u32);
/// A mask value of the traced program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct K(pub(super) u32);

/// Where a vector value comes from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Def {
    /// Input `k` at the current lanes, or the `block`-th sixteen after them (`bcast`: its one
    /// value for the row).
    Input { k: usize, bcast: bool, block: usize },
    /// Constant pool entry.
    Const(usize),
    /// Computed by an instruction.
    Computed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VBin {
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
    /// `a > b` as signed integers, all ones or zero (vector masks only).
    IGt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VUn {
    Copy,
    Sqrt,
    Floor,
    IToF,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shift {
    Left,
    Logical,
    Arith,
}

/// One instruction of the traced program (SSA: each destination is defined once).
#[derive(Clone, Copy, Debug)]
pub(super) enum Ins {
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
    /// `d = a <pred> b` as a vector of all-ones or zero lanes (vector masks only).
    CmpV(u8, V, V, V),
    /// `d = k ? t : f` with `k` a vector mask: `BlendV(d, k, t, f)` (vector masks only).
    BlendV(V, V, V, V),
}

/// The constants of a kernel's code (bit patterns, broadcast from memory where used).
#[derive(Default)]
pub(super) struct Pool {
    pub(super) bits: Vec<u32>,
    pub(super) index: FxHashMap<u32, usize>,
}

impl Pool {
    /// The index of the entry holding `b`, added if new.
    pub(super) fn intern(&mut self, b: u32) -> usize {
        let bits = &mut self.bits;
        *self.index.entry(b).or_insert_with(|| {
            bits.push(b);
            bits.len() - 1
        })
    }
}

/// The lane math traced into [`Ins`]; implements [`Lanes`] so every function is written once.
pub(super) struct Tracer<'p> {
    pub(super) defs: Vec<Def>,
    pub(super) n_masks: u32,
    pub(super) ins: Vec<Ins>,
    pub(super) pool: &'p mut Pool,
    /// The value of each constant used so far.
    pub(super) consts: FxHashMap<u32, V>,
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
        let p = self.pool.intern(b);
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
pub(super) const EQ_OQ: u8 = 0x00;
pub(super) const UNORD_Q: u8 = 0x03;
pub(super) const NEQ_UQ: u8 = 0x04;
pub(super) const GE_OQ: u8 = 0x1d;
pub(super) const GT_OQ: u8 = 0x1e;
pub(super) const LT_OQ: u8 = 0x11;
pub(super) const LE_OQ: u8 = 0x12;

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
pub(super) struct Traced {
    pub(super) defs: Vec<Def>,
    pub(super) n_masks: u32,
    pub(super) ins: Vec<Ins>,
    pub(super) outputs: Vec<Vec<V>>,
}

/// Traces the live nodes of `spec` the way the tile program evaluates them (same lane calls,
/// in the same cases), once per block, and interleaves the blocks instruction by instruction:
/// one vector's expression is a long dependency chain (a polynomial, a division, the next
/// polynomial), and independent neighbours let the core overlap the chains.
pub(super) fn trace(spec: &KernelSpec, blocks: usize, pool: &mut Pool) -> Traced {
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
pub(super) fn prune<'a>(t: &mut Tracer, outputs: impl Iterator<Item = &'a V>) {
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

pub(super) fn operands(i: &Ins) -> ([Option<V>; 3], [Option<K>; 2]) {
    match *i {
        Ins::Un(_, _, a) | Ins::Shift(_, _, a, _) => ([Some(a), None, None], [None; 2]),
        Ins::Bin(_, _, a, b) => ([Some(a), Some(b), None], [None; 2]),
        Ins::MaskBin(_, _, s, k, a, b) => ([Some(s), Some(a), Some(b)], [Some(k), None]),
        Ins::Fma(_, a, b, c) => ([Some(a), Some(b), Some(c)], [None; 2]),
        Ins::Cmp(_, _, a, b) | Ins::ICmpLt(_, a, b) | Ins::CmpV(_, _, a, b) => {
            ([Some(a), Some(b), None], [None; 2])
        }
        Ins::BlendV(_, k, t, f) => ([Some(k), Some(t), Some(f)], [None; 2]),
        Ins::KAnd(_, a, b) | Ins::KOr(_, a, b) => ([None; 3], [Some(a), Some(b)]),
        Ins::KNot(_, a) => ([None; 3], [Some(a), None]),
        Ins::Blend(_, k, t, f) => ([Some(t), Some(f), None], [Some(k), None]),
        Ins::MaskZ(_, k, a) => ([Some(a), None, None], [Some(k), None]),
    }
}

pub(super) fn dest(i: &Ins) -> (Option<V>, Option<K>) {
    match *i {
        Ins::Un(_, d, _)
        | Ins::Bin(_, d, _, _)
        | Ins::MaskBin(_, d, ..)
        | Ins::Fma(d, ..)
        | Ins::Shift(_, d, ..)
        | Ins::Blend(d, ..)
        | Ins::MaskZ(d, ..)
        | Ins::CmpV(_, d, ..)
        | Ins::BlendV(d, ..) => (Some(d), None),
        Ins::Cmp(_, d, ..)
        | Ins::ICmpLt(d, ..)
        | Ins::KAnd(d, ..)
        | Ins::KOr(d, ..)
        | Ins::KNot(d, _) => (None, Some(d)),
    }
}
