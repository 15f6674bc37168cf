//! Scalar primitives defined outside trellis: an open extension of the built-in functions.
//!
//! A [`Prim`] is a name, an f64 reference (what the interpreter computes) and a lane program
//! composed from the [`Lanes`] set (what the kernels run). The lane code is written once as
//! ordinary code over `Lanes` and recorded into a [`LaneFn`] when the primitive is defined;
//! both kernel backends replay the recording through their own `Lanes` (Cranelift emits it as
//! IR, the AVX-512 backend evaluates it a tile at a time), so an outside primitive fuses into
//! kernels like a built-in, and fusion reads its cost ([`LaneFn::transcendental_depth`]) the
//! same way. An op uses one in its scalar form as [`crate::Scalar::Prim`].
//!
//! Definitions are process-wide and never freed (each is a few hundred bytes): a `Prim` is a
//! `Copy` handle that scalar expressions and kernel cache keys hold.
use crate::lanes::{Cmp, Lanes};
use crate::{IrError, Result};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// A recorded lane value: a float lane group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LF(u32);
/// A recorded lane value: integer lanes (f32 bit patterns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LI(u32);
/// A recorded lane value: a comparison mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LM(u32);

/// One recorded [`Lanes`] call; operands index earlier ops of the same [`LaneFn`].
#[derive(Clone, Debug, PartialEq)]
pub enum LaneOp {
    /// The i-th argument of the primitive.
    Arg(u32),
    F(f32),
    I(i32),
    FToBits(u32),
    BitsToF(u32),
    Add(u32, u32),
    Sub(u32, u32),
    Mul(u32, u32),
    Div(u32, u32),
    Fma(u32, u32, u32),
    Neg(u32),
    Abs(u32),
    Sqrt(u32),
    Floor(u32),
    Max(u32, u32),
    Min(u32, u32),
    Cmp(Cmp, u32, u32),
    Ilt(u32, u32),
    MaskAnd(u32, u32),
    MaskOr(u32, u32),
    MaskNot(u32),
    Sel(u32, u32, u32),
    Flag(u32),
    Iadd(u32, u32),
    Isub(u32, u32),
    Iand(u32, u32),
    Ior(u32, u32),
    Shl(u32, u8),
    Ushr(u32, u8),
    Sshr(u32, u8),
    IToF(u32),
    /// [`Lanes::poly`]: a polynomial, the "transcendental" unit fusion counts.
    Poly(u32, Box<[f32]>),
    /// [`Lanes::estrin`] (`x`, `x^2`, coefficients): likewise.
    Estrin(u32, u32, Box<[f32]>),
}

/// A recorded lane program: ops in order, the last one the result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaneFn {
    pub n_args: usize,
    pub ops: Vec<LaneOp>,
}

/// Records [`Lanes`] calls into a [`LaneFn`]: what a primitive's lane code runs on when it is
/// defined (and what [`LaneFn::of_unary`] runs a built-in's on).
pub struct Recorder {
    f: LaneFn,
}

impl Recorder {
    fn new(n_args: usize) -> Self {
        Recorder {
            f: LaneFn {
                n_args,
                ops: Vec::new(),
            },
        }
    }
    fn push(&mut self, op: LaneOp) -> u32 {
        self.f.ops.push(op);
        (self.f.ops.len() - 1) as u32
    }
    /// Runs `body` on `n_args` argument lanes and returns its recording.
    pub fn record(n_args: usize, body: impl FnOnce(&mut Recorder, &[LF]) -> LF) -> LaneFn {
        let mut r = Recorder::new(n_args);
        let args: Vec<LF> = (0..n_args as u32)
            .map(|i| LF(r.push(LaneOp::Arg(i))))
            .collect();
        let out = body(&mut r, &args);
        let mut f = r.f;
        // The result is the last op: re-emit it when the body returned an earlier value.
        if out.0 as usize + 1 != f.ops.len() {
            let one = f.ops.len() as u32;
            f.ops.push(LaneOp::F(1.0));
            f.ops.push(LaneOp::Mul(out.0, one));
        }
        f
    }
}

macro_rules! rec {
    ($self:ident, $T:ident, $op:expr) => {
        $T($self.push($op))
    };
}

impl Lanes for Recorder {
    type F = LF;
    type I = LI;
    type M = LM;
    fn f(&mut self, c: f32) -> LF {
        rec!(self, LF, LaneOp::F(c))
    }
    fn i(&mut self, c: i32) -> LI {
        rec!(self, LI, LaneOp::I(c))
    }
    fn f_to_bits(&mut self, x: LF) -> LI {
        rec!(self, LI, LaneOp::FToBits(x.0))
    }
    fn bits_to_f(&mut self, x: LI) -> LF {
        rec!(self, LF, LaneOp::BitsToF(x.0))
    }
    fn add(&mut self, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Add(a.0, b.0))
    }
    fn sub(&mut self, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Sub(a.0, b.0))
    }
    fn mul(&mut self, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Mul(a.0, b.0))
    }
    fn div(&mut self, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Div(a.0, b.0))
    }
    fn fma(&mut self, a: LF, b: LF, c: LF) -> LF {
        rec!(self, LF, LaneOp::Fma(a.0, b.0, c.0))
    }
    fn neg(&mut self, x: LF) -> LF {
        rec!(self, LF, LaneOp::Neg(x.0))
    }
    fn abs(&mut self, x: LF) -> LF {
        rec!(self, LF, LaneOp::Abs(x.0))
    }
    fn sqrt(&mut self, x: LF) -> LF {
        rec!(self, LF, LaneOp::Sqrt(x.0))
    }
    fn floor(&mut self, x: LF) -> LF {
        rec!(self, LF, LaneOp::Floor(x.0))
    }
    fn max(&mut self, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Max(a.0, b.0))
    }
    fn min(&mut self, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Min(a.0, b.0))
    }
    fn cmp(&mut self, cc: Cmp, a: LF, b: LF) -> LM {
        rec!(self, LM, LaneOp::Cmp(cc, a.0, b.0))
    }
    fn ilt(&mut self, a: LI, b: LI) -> LM {
        rec!(self, LM, LaneOp::Ilt(a.0, b.0))
    }
    fn mask_and(&mut self, a: LM, b: LM) -> LM {
        rec!(self, LM, LaneOp::MaskAnd(a.0, b.0))
    }
    fn mask_or(&mut self, a: LM, b: LM) -> LM {
        rec!(self, LM, LaneOp::MaskOr(a.0, b.0))
    }
    fn mask_not(&mut self, a: LM) -> LM {
        rec!(self, LM, LaneOp::MaskNot(a.0))
    }
    fn sel(&mut self, m: LM, a: LF, b: LF) -> LF {
        rec!(self, LF, LaneOp::Sel(m.0, a.0, b.0))
    }
    fn flag(&mut self, m: LM) -> LF {
        rec!(self, LF, LaneOp::Flag(m.0))
    }
    fn iadd(&mut self, a: LI, b: LI) -> LI {
        rec!(self, LI, LaneOp::Iadd(a.0, b.0))
    }
    fn isub(&mut self, a: LI, b: LI) -> LI {
        rec!(self, LI, LaneOp::Isub(a.0, b.0))
    }
    fn iand(&mut self, a: LI, b: LI) -> LI {
        rec!(self, LI, LaneOp::Iand(a.0, b.0))
    }
    fn ior(&mut self, a: LI, b: LI) -> LI {
        rec!(self, LI, LaneOp::Ior(a.0, b.0))
    }
    fn shl(&mut self, a: LI, n: u8) -> LI {
        rec!(self, LI, LaneOp::Shl(a.0, n))
    }
    fn ushr(&mut self, a: LI, n: u8) -> LI {
        rec!(self, LI, LaneOp::Ushr(a.0, n))
    }
    fn sshr(&mut self, a: LI, n: u8) -> LI {
        rec!(self, LI, LaneOp::Sshr(a.0, n))
    }
    fn i_to_f(&mut self, a: LI) -> LF {
        rec!(self, LF, LaneOp::IToF(a.0))
    }
    fn poly(&mut self, x: LF, coeffs: &[f32]) -> LF {
        rec!(self, LF, LaneOp::Poly(x.0, coeffs.into()))
    }
    fn estrin(&mut self, x: LF, x2: LF, coeffs: &[f32]) -> LF {
        rec!(self, LF, LaneOp::Estrin(x.0, x2.0, coeffs.into()))
    }
}

/// A replayed value of any lane kind.
enum Val<L: Lanes> {
    F(L::F),
    I(L::I),
    M(L::M),
}
impl<L: Lanes> Clone for Val<L> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<L: Lanes> Copy for Val<L> {}

impl LaneFn {
    /// The recording of a built-in function's lane code (for its cost).
    pub fn of_unary(f: crate::Unary) -> LaneFn {
        Recorder::record(1, |r, a| f.lanes(r, a[0]))
    }
    /// The recording of a built-in two-argument function's lane code.
    pub fn of_binary(f: crate::Binary) -> LaneFn {
        Recorder::record(2, |r, a| f.lanes(r, a[0], a[1]))
    }

    /// The most polynomials ([`LaneOp::Poly`], [`LaneOp::Estrin`]: range-reduced
    /// transcendentals) on one dependency chain: 1 for exp or tanh, 2 for `log(1 + exp(x))`.
    /// What fusion's cut rule counts.
    pub fn transcendental_depth(&self) -> usize {
        let mut d: Vec<usize> = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let (ins, own) = operands(op);
            let m = ins.iter().map(|&i| d[i as usize]).max().unwrap_or(0);
            d.push(m + usize::from(own));
        }
        d.last().copied().unwrap_or(0)
    }

    /// Runs the recording on a backend's lanes: the same calls, in the same order, as the code
    /// that was recorded (so the results are those of that code on this backend).
    #[inline(always)]
    pub fn replay<L: Lanes>(&self, l: &mut L, args: &[L::F]) -> L::F {
        let mut v: Vec<Val<L>> = Vec::with_capacity(self.ops.len());
        let f = |v: &[Val<L>], i: u32| match v[i as usize] {
            Val::F(x) => x,
            _ => unreachable!("a recorded float operand"),
        };
        let n = |v: &[Val<L>], i: u32| match v[i as usize] {
            Val::I(x) => x,
            _ => unreachable!("a recorded integer operand"),
        };
        let m = |v: &[Val<L>], i: u32| match v[i as usize] {
            Val::M(x) => x,
            _ => unreachable!("a recorded mask operand"),
        };
        for op in &self.ops {
            let x = match *op {
                LaneOp::Arg(i) => Val::F(args[i as usize]),
                LaneOp::F(c) => Val::F(l.f(c)),
                LaneOp::I(c) => Val::I(l.i(c)),
                LaneOp::FToBits(a) => Val::I(l.f_to_bits(f(&v, a))),
                LaneOp::BitsToF(a) => Val::F(l.bits_to_f(n(&v, a))),
                LaneOp::Add(a, b) => Val::F(l.add(f(&v, a), f(&v, b))),
                LaneOp::Sub(a, b) => Val::F(l.sub(f(&v, a), f(&v, b))),
                LaneOp::Mul(a, b) => Val::F(l.mul(f(&v, a), f(&v, b))),
                LaneOp::Div(a, b) => Val::F(l.div(f(&v, a), f(&v, b))),
                LaneOp::Fma(a, b, c) => Val::F(l.fma(f(&v, a), f(&v, b), f(&v, c))),
                LaneOp::Neg(a) => Val::F(l.neg(f(&v, a))),
                LaneOp::Abs(a) => Val::F(l.abs(f(&v, a))),
                LaneOp::Sqrt(a) => Val::F(l.sqrt(f(&v, a))),
                LaneOp::Floor(a) => Val::F(l.floor(f(&v, a))),
                LaneOp::Max(a, b) => Val::F(l.max(f(&v, a), f(&v, b))),
                LaneOp::Min(a, b) => Val::F(l.min(f(&v, a), f(&v, b))),
                LaneOp::Cmp(cc, a, b) => Val::M(l.cmp(cc, f(&v, a), f(&v, b))),
                LaneOp::Ilt(a, b) => Val::M(l.ilt(n(&v, a), n(&v, b))),
                LaneOp::MaskAnd(a, b) => Val::M(l.mask_and(m(&v, a), m(&v, b))),
                LaneOp::MaskOr(a, b) => Val::M(l.mask_or(m(&v, a), m(&v, b))),
                LaneOp::MaskNot(a) => Val::M(l.mask_not(m(&v, a))),
                LaneOp::Sel(c, a, b) => Val::F(l.sel(m(&v, c), f(&v, a), f(&v, b))),
                LaneOp::Flag(a) => Val::F(l.flag(m(&v, a))),
                LaneOp::Iadd(a, b) => Val::I(l.iadd(n(&v, a), n(&v, b))),
                LaneOp::Isub(a, b) => Val::I(l.isub(n(&v, a), n(&v, b))),
                LaneOp::Iand(a, b) => Val::I(l.iand(n(&v, a), n(&v, b))),
                LaneOp::Ior(a, b) => Val::I(l.ior(n(&v, a), n(&v, b))),
                LaneOp::Shl(a, k) => Val::I(l.shl(n(&v, a), k)),
                LaneOp::Ushr(a, k) => Val::I(l.ushr(n(&v, a), k)),
                LaneOp::Sshr(a, k) => Val::I(l.sshr(n(&v, a), k)),
                LaneOp::IToF(a) => Val::F(l.i_to_f(n(&v, a))),
                LaneOp::Poly(a, ref c) => Val::F(l.poly(f(&v, a), c)),
                LaneOp::Estrin(a, b, ref c) => Val::F(l.estrin(f(&v, a), f(&v, b), c)),
            };
            v.push(x);
        }
        f(&v, (v.len() - 1) as u32)
    }
}

/// An op's operands, and whether it is a polynomial.
fn operands(op: &LaneOp) -> (Vec<u32>, bool) {
    use LaneOp::*;
    match *op {
        Arg(_) | F(_) | I(_) => (vec![], false),
        FToBits(a)
        | BitsToF(a)
        | Neg(a)
        | Abs(a)
        | Sqrt(a)
        | Floor(a)
        | MaskNot(a)
        | Flag(a)
        | Shl(a, _)
        | Ushr(a, _)
        | Sshr(a, _)
        | IToF(a) => (vec![a], false),
        Add(a, b)
        | Sub(a, b)
        | Mul(a, b)
        | Div(a, b)
        | Max(a, b)
        | Min(a, b)
        | Cmp(_, a, b)
        | Ilt(a, b)
        | MaskAnd(a, b)
        | MaskOr(a, b)
        | Iadd(a, b)
        | Isub(a, b)
        | Iand(a, b)
        | Ior(a, b) => (vec![a, b], false),
        Fma(a, b, c) | Sel(a, b, c) => (vec![a, b, c], false),
        Poly(a, _) => (vec![a], true),
        Estrin(a, b, _) => (vec![a, b], true),
    }
}

/// A primitive's definition (see the module docs).
#[derive(Debug)]
pub struct PrimDef {
    id: u32,
    name: String,
    arity: usize,
    eval: fn(&[f64]) -> f64,
    program: LaneFn,
    depth: usize,
}

/// A defined primitive: a `Copy` handle, equal when it is the same definition.
#[derive(Clone, Copy)]
pub struct Prim(&'static PrimDef);

impl PartialEq for Prim {
    fn eq(&self, o: &Self) -> bool {
        self.0.id == o.0.id
    }
}
impl Eq for Prim {}
impl Hash for Prim {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.id.hash(h)
    }
}
impl std::fmt::Debug for Prim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.name)
    }
}

static REGISTRY: Mutex<Vec<&'static PrimDef>> = Mutex::new(Vec::new());

impl Prim {
    /// Defines a primitive of `arity` (1 to 3) arguments: `eval` is the f64 reference, `lanes`
    /// the lane code, written over [`Lanes`] (it runs once, on a [`Recorder`]). Defining a name
    /// again with the same arity and lane code returns the first definition; with different
    /// ones it is an error naming the primitive.
    pub fn define(
        name: &str,
        arity: usize,
        eval: fn(&[f64]) -> f64,
        lanes: impl FnOnce(&mut Recorder, &[LF]) -> LF,
    ) -> Result<Prim> {
        if !(1..=3).contains(&arity) {
            return Err(IrError::Invalid(format!(
                "primitive {name}: arity {arity}, expected 1 to 3"
            )));
        }
        let program = Recorder::record(arity, lanes);
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = reg.iter().find(|d| d.name == name) {
            // NaN constants compare by their text, as everything else.
            if d.arity == arity && format!("{:?}", d.program) == format!("{program:?}") {
                return Ok(Prim(d));
            }
            return Err(IrError::Invalid(format!(
                "primitive {name} is already defined with other lane code or arity"
            )));
        }
        let depth = program.transcendental_depth();
        let def: &'static PrimDef = Box::leak(Box::new(PrimDef {
            id: reg.len() as u32,
            name: name.to_string(),
            arity,
            eval,
            program,
            depth,
        }));
        reg.push(def);
        Ok(Prim(def))
    }

    pub fn name(self) -> &'static str {
        &self.0.name
    }
    pub fn arity(self) -> usize {
        self.0.arity
    }
    /// The f64 reference on `args` (`arity` values).
    pub fn eval(self, args: &[f64]) -> f64 {
        (self.0.eval)(args)
    }
    /// The recorded lane program.
    pub fn program(self) -> &'static LaneFn {
        &self.0.program
    }
    /// [`LaneFn::transcendental_depth`] of the program.
    pub fn transcendental_depth(self) -> usize {
        self.0.depth
    }
    /// The primitive on a backend's lanes.
    #[inline(always)]
    pub fn lanes<L: Lanes>(self, l: &mut L, args: &[L::F]) -> L::F {
        self.0.program.replay(l, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Unary;

    #[test]
    fn depth_counts_chained_polynomials() {
        let d = |f: Unary| LaneFn::of_unary(f).transcendental_depth();
        assert_eq!(
            (d(Unary::Exp), d(Unary::Tanh), d(Unary::Sigmoid)),
            (1, 1, 1)
        );
        assert_eq!((d(Unary::Relu), d(Unary::Sqrt), d(Unary::Neg)), (0, 0, 0));
        assert_eq!(d(Unary::Softplus), 2, "exp, then log");
        let pow = LaneFn::of_binary(crate::Binary::Pow).transcendental_depth();
        assert_eq!(pow, 2, "log, then exp");
        assert_eq!(
            LaneFn::of_binary(crate::Binary::Mul).transcendental_depth(),
            0
        );
    }

    #[test]
    fn a_name_is_defined_once() {
        let a = Prim::define("prim_test_sq", 1, |x| x[0] * x[0], |l, x| l.mul(x[0], x[0]));
        let b = Prim::define("prim_test_sq", 1, |x| x[0] * x[0], |l, x| l.mul(x[0], x[0]));
        assert_eq!(a.unwrap(), b.unwrap());
        let c = Prim::define("prim_test_sq", 1, |x| x[0], |l, x| l.abs(x[0]));
        let msg = c.unwrap_err().to_string();
        assert!(msg.contains("prim_test_sq is already defined"), "{msg}");
        let e = Prim::define("prim_test_none", 0, |_| 0.0, |l, _| l.f(0.0)).unwrap_err();
        assert!(e.to_string().contains("arity 0"), "{e}");
    }
}
