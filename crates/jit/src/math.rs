//! The kernel backends' side of the lane math: [`ClifLanes`], the [`Lanes`] primitives as
//! Cranelift IR (one `f32` or an `f32x4`). The functions themselves (exp, log, tanh, erf, ...)
//! are written once over [`Lanes`] in `trellis_ir::lanes`, and each elementwise function's
//! lane implementation is its row of `trellis_ir::functions`; the AVX-512 backend
//! (`crate::avx512`) instantiates the same code on sixteen-lane registers, so results are
//! bit-identical.
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
pub use trellis_ir::lanes::{Cmp, Lanes, Scale, SIN_COS_LIMIT};

/// [`Lanes`] as Cranelift IR: `ty` is `F32` or `F32X4`; every value is a `Value` (a mask is an
/// `i8` truth value on the scalar path, an all-ones/all-zeros `i32x4` on the vector path).
pub struct ClifLanes<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ty: Type,
    /// Use the `fma` instruction (the host has FMA); otherwise multiply then add.
    pub fma: bool,
}

impl<'a, 'b> ClifLanes<'a, 'b> {
    pub fn new(b: &'a mut FunctionBuilder<'b>, ty: Type, fma: bool) -> Self {
        debug_assert!(ty == types::F32 || ty == types::F32X4);
        ClifLanes { b, ty, fma }
    }

    fn vector(&self) -> bool {
        self.ty.is_vector()
    }

    /// The integer type with the lanes of `ty`.
    fn ity(&self) -> Type {
        if self.vector() {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// A four-lane constant from the function's constant pool.
    fn pool(&mut self, ty: Type, bits: u32) -> Value {
        let bytes: Vec<u8> = std::iter::repeat_n(bits.to_le_bytes(), 4)
            .flatten()
            .collect();
        let h = self
            .b
            .func
            .dfg
            .constants
            .insert(cranelift_codegen::ir::ConstantData::from(bytes));
        self.b.ins().vconst(ty, h)
    }
}

impl Lanes for ClifLanes<'_, '_> {
    type F = Value;
    type I = Value;
    type M = Value;

    fn f(&mut self, c: f32) -> Value {
        if self.vector() {
            // A constant-pool load (one instruction, often folded into its user) rather than a
            // scalar constant moved and shuffled into every lane.
            self.pool(self.ty, c.to_bits())
        } else {
            self.b.ins().f32const(c)
        }
    }
    fn i(&mut self, c: i32) -> Value {
        if self.vector() {
            self.pool(types::I32X4, c as u32)
        } else {
            self.b.ins().iconst(types::I32, i64::from(c))
        }
    }
    fn f_to_bits(&mut self, x: Value) -> Value {
        let t = self.ity();
        self.b.ins().bitcast(t, MemFlagsData::new(), x)
    }
    fn bits_to_f(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }
    fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }
    fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }
    fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }
    fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }
    fn neg(&mut self, x: Value) -> Value {
        self.b.ins().fneg(x)
    }
    fn abs(&mut self, x: Value) -> Value {
        self.b.ins().fabs(x)
    }
    fn sqrt(&mut self, x: Value) -> Value {
        self.b.ins().sqrt(x)
    }
    fn floor(&mut self, x: Value) -> Value {
        self.b.ins().floor(x)
    }
    /// Cranelift's `fmax`/`fmin` propagate NaN and order `-0 < +0`.
    fn max(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmax(a, b)
    }
    fn min(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmin(a, b)
    }
    fn cmp(&mut self, cc: Cmp, a: Value, b: Value) -> Value {
        let cc = match cc {
            Cmp::Lt => FloatCC::LessThan,
            Cmp::Le => FloatCC::LessThanOrEqual,
            Cmp::Gt => FloatCC::GreaterThan,
            Cmp::Ge => FloatCC::GreaterThanOrEqual,
            Cmp::Eq => FloatCC::Equal,
            // Unordered or not equal: true with a NaN.
            Cmp::Ne => FloatCC::NotEqual,
        };
        self.b.ins().fcmp(cc, a, b)
    }
    /// icmp masks have the same type as fcmp masks on both paths (i8 / i32x4).
    fn ilt(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().icmp(IntCC::SignedLessThan, a, b)
    }
    fn mask_and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn mask_or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn mask_not(&mut self, a: Value) -> Value {
        self.b.ins().bnot(a)
    }
    fn sel(&mut self, m: Value, a: Value, b: Value) -> Value {
        if self.vector() {
            let m = self.b.ins().bitcast(self.ty, MemFlagsData::new(), m);
            self.b.ins().bitselect(m, a, b)
        } else {
            self.b.ins().select(m, a, b)
        }
    }
    fn flag(&mut self, m: Value) -> Value {
        if self.vector() {
            let one = self.i(1.0f32.to_bits() as i32);
            let v = self.b.ins().band(m, one);
            self.bits_to_f(v)
        } else {
            let one = self.f(1.0);
            let zero = self.f(0.0);
            self.b.ins().select(m, one, zero)
        }
    }
    fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }
    fn isub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().isub(a, b)
    }
    fn iand(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }
    fn ior(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }
    fn shl(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().ishl_imm_u(a, i64::from(n))
    }
    fn ushr(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().ushr_imm_u(a, i64::from(n))
    }
    fn sshr(&mut self, a: Value, n: u8) -> Value {
        self.b.ins().sshr_imm_u(a, i64::from(n))
    }
    fn i_to_f(&mut self, a: Value) -> Value {
        let ft = self.ty;
        self.b.ins().fcvt_from_sint(ft, a)
    }
}
